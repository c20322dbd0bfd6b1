"""Clock or pizza: which of the two modular-addition algorithms a checkpoint implements.

Zhong, Liu, Tegmark & Andreas 2023 ("The clock and the pizza: two stories in mechanistic
explanation of neural networks", Sec. 4) find that the same one-layer architecture learns either
the **clock** (Nanda et al. 2023: embeddings on circles, angles *added* by multiplying the two
operands' rotations; needs attention that keeps a and b apart) or the **pizza** (the two
embeddings are *averaged*, E_a + E_b = 2 cos(w(a−b)/2) · (cos w(a+b)/2, sin w(a+b)/2), and the
MLP reads the answer off the direction; natural under constant attention). Their two measures:

    gradient_symmetricity  = mean over (a, b, c) of  cos( ∂Q_abc/∂E_a , ∂Q_abc/∂E_b )

  Q_abc the logit of class c on input (a, b), E_a and E_b the token embeddings at the two operand
  positions (the bridge's ``hook_embed``), cos the cosine similarity. The pizza sees a and b only
  through E_a + E_b, so both gradients are equal: 1 (exactly, for any weights, at attention rate
  0). The ideal clock is bilinear in the two rotations, Q = Re(z_a z_b e^{-iwc}), whose gradients
  have cosine cos(w(a−b)): mean 0. Paper: 0.9937 for their pizza, 0.3336 for their clock.

    distance_irrelevance   = mean_d std{ Q_ab,label : a − s·b ≡ d }  /  std{ Q_ab,label }

  over the task's inputs (population standard deviations; s = +1 for a + b, −1 for a − b, so d
  is a − b for addition as in the paper), the spread of the correct logit among inputs at one
  "distance", relative to its spread overall. The pizza's correct logit is a function of the
  distance (its amplitude |cos(w(a−b)/2)|): 0. The clock's does not depend on it: 1. Paper:
  0.17 (pizza) and 0.85 (clock); they call [0, 0.4] pizza-like and [0.4, 1] clock-like.

Where the paper samples 100 random triples (a, b, c), this probe takes every input (a, b) of the
task, each with one class c drawn uniformly by a generator seeded with 0: the same expectation,
a smaller sampling error, and the same number every time. Inputs where either gradient is zero
(dead ReLUs) are left out of the mean. Both measures are read in the coordinates where the task
is addition (`probes.coordinates`: discrete logs for × and ÷, over Z_{p−1}); gradient
symmetricity does not depend on coordinates, distance irrelevance does. Distance irrelevance
does not apply to the polynomial tasks (no a ± b structure): its row holds NaN.

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300, with_model=True)  # reads_model
    >>> sorted(probe(inp).measure)       # rows: step, measure, value
    ['distance_irrelevance', 'gradient_symmetricity']
"""

from __future__ import annotations

import torch

from probes.coordinates import powers
from probes.grid import CheckpointOnGrid
from probes.table import tidy

MEASURES = ("gradient_symmetricity", "distance_irrelevance")
SUM_MEASURES = ("distance_irrelevance",)  # needs the a +/- b direction: NaN for the polynomial tasks
CHUNK = 4096  # inputs per backward pass


def correct_logits(inp: CheckpointOnGrid) -> torch.Tensor:
    """[p, p] float64: the logit of the right answer at every (a, b) (labels -1 where no input: 0)."""
    return inp.logits.double().gather(-1, inp.labels.clamp_min(0)[..., None])[..., 0]


def distance_irrelevance(correct: torch.Tensor, mask: torch.Tensor, sign: int) -> float:
    """mean over distances d of std{correct[a, b] : a − sign·b ≡ d (mod n)} / std{correct[a, b]},
    over the inputs in ``mask`` [n, n] (population std; distances with no input are skipped).
    NaN if the correct logit does not vary at all."""
    n = correct.shape[0]
    idx = torch.arange(n)
    distance = (idx[:, None] - sign * idx[None, :]) % n
    values, groups = correct[mask], distance[mask]
    overall = values.std(unbiased=False)
    if not overall > 0:
        return float("nan")
    spreads = [values[groups == d].std(unbiased=False) for d in range(n) if bool((groups == d).any())]
    return float(torch.stack(spreads).mean() / overall)


def embedding_gradients(model: torch.nn.Module, tokens: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """[n, 2, d_model]: ∂Q/∂E at the a and b positions for each input ``tokens`` [n, 3] and its class
    ``classes`` [n] (each input's logit is its own function of its own embeddings, so one backward
    pass of the summed logits gives every input's gradients)."""
    out = []
    with torch.enable_grad():
        for start in range(0, len(tokens), CHUNK):
            embedded = model.embed(tokens[start:start + CHUNK]).detach().requires_grad_(True)
            logits = model.from_embeddings(embedded)
            chosen = logits.gather(1, classes[start:start + CHUNK, None]).sum()
            (grad,) = torch.autograd.grad(chosen, embedded)
            out.append(grad[:, :2].detach().double())
    return torch.cat(out)


def gradient_symmetricity(grads: torch.Tensor) -> float:
    """Mean cosine similarity of grads[:, 0] and grads[:, 1] ([n, 2, d]); pairs with a zero
    gradient are left out (NaN if every pair has one)."""
    ga, gb = grads[:, 0], grads[:, 1]
    norms = ga.norm(dim=1) * gb.norm(dim=1)
    live = norms > 0
    if not bool(live.any()):
        return float("nan")
    return float(((ga * gb).sum(1)[live] / norms[live]).mean())


def operand_tokens(inp: CheckpointOnGrid) -> tuple[torch.Tensor, int]:
    """(token at each grid coordinate [n], the ``=`` token): the coordinates themselves, or g^i in
    log coordinates."""
    if inp.coordinates == "log":
        modulus = inp.p + 1
        return powers(modulus, inp.generator), modulus
    return torch.arange(inp.p), inp.p


def probe(inp: CheckpointOnGrid, key_freqs=(), settings=None):
    """Rows ``step, measure, value``: gradient_symmetricity and distance_irrelevance (NaN where the
    task is not a ± b in ``inp``'s coordinates)."""
    if inp.model is None:
        raise ValueError("clock_pizza needs the checkpoint's module (CheckpointOnGrid.model)")
    token_of, eq = operand_tokens(inp)
    a, b = inp.data_mask.nonzero(as_tuple=True)
    tokens = torch.stack([token_of[a], token_of[b], torch.full_like(a, eq)], dim=1)
    draw = torch.Generator().manual_seed(0)
    classes = token_of[torch.randint(0, inp.p, (len(a),), generator=draw)]
    rows = [("gradient_symmetricity", gradient_symmetricity(embedding_gradients(inp.model, tokens, classes)))]
    # no a +/- b structure (sign 0): the distance is undefined, the row NaN (not applicable)
    irrelevance = distance_irrelevance(correct_logits(inp), inp.data_mask, inp.sign) if inp.sign != 0 else float("nan")
    rows.append(("distance_irrelevance", irrelevance))
    return tidy(inp.step, rows, ("measure",))
