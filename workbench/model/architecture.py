"""The architecture's fixed parts: the context length, the activations, and the attention rate's mixing (Zhong et al. 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

N_CTX = 3


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def activation(name: str):
    """The MLP nonlinearity ``act_fn`` names (the bridge's own function for each name)."""
    return _ACTIVATIONS[name]


def rated_pattern(pattern: Float[Tensor, "... q k"], rate: float) -> Float[Tensor, "... q k"]:
    """The attention pattern at attention rate ``rate`` (Zhong et al. 2023, Sec. 5):
    ``rate * pattern + (1 - rate) * J`` with J the all-ones matrix on the causal positions (their
    M' = alpha M + (1 - alpha) J, with the causal mask kept). ``pattern`` is the causal softmax
    [..., q, k]: its q rows are the last q of the k positions. At rate 0 the ``=`` row weighs
    a, b and ``=`` by 1 each (constant attention: the output is symmetric in a and b); at rate 1
    ``pattern`` itself is returned."""
    if rate == 1.0:
        return pattern
    nq, nk = pattern.shape[-2:]
    ones = torch.ones(nk, nk, dtype=pattern.dtype, device=pattern.device).tril()[nk - nq:]
    return rate * pattern + (1.0 - rate) * ones
