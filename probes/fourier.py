"""The Fourier basis over Z_p and the measurements made with it.

Nanda et al. 2023 ("Progress measures for grokking via mechanistic interpretability") show
that a transformer trained on a + b mod p embeds each token as cos(w_k x), sin(w_k x) for a few
*key frequencies* w_k = 2 pi k / p, multiplies them in the MLP, and reads out
cos(w_k (a + b - c)). Everything here measures how much of a weight or activation lives on
which frequency.

Basis (orthonormal), rows in this order::

    index 0        constant       1 / sqrt(p)
    index 2k - 1   cos k          sqrt(2/p) cos(2 pi k x / p)      k = 1 .. (p-1)//2
    index 2k       sin k          sqrt(2/p) sin(2 pi k x / p)
    index p - 1    cos p/2        (-1)^x / sqrt(p)                 even p only (the Nyquist term)

Frequency k groups the pair (cos k, sin k); "frequency 0" is the constant. For an even order
(p - 1 in the discrete-log coordinates of x and / mod p, `probes.coordinates`) the Nyquist term
is frequency K = p/2 on its own: sin(pi x) is zero, so it has a cosine and no sine. It is a real
character of Z_p (for x mod p in log coordinates, the Legendre symbol), so every measure counts
it like any other frequency and Parseval holds for every p. K = p // 2 frequencies in all.

Measurements (all pure functions of tensors):
    frequency_norms(M)        ||F M||, grouped per frequency:  n_k = sqrt(|cos_k M|^2 + |sin_k M|^2)
    neuron_frequency_fractions(acts [p, p, n])
                              per neuron, the fraction of its (centred) variance over the (a, b)
                              grid that lies in 2-D Fourier terms built only from frequency k
                              and the constant:  sum_{x, y in {0, cos k, sin k}} A[x, y]^2 / sum A^2
    gini(x)                   Gini coefficient  sum_ij |x_i - x_j| / (2 n sum_i x_i)
    logit_fit(logits [p, p, p])
                              alpha_w = <L, cos(w(a + b - c))> / |cos(w(a + b - c))|^2 and the
                              fraction of the centred logits' variance explained by given w's,
                              computed from the sums over a + b = s (O(p^3) adds, O(p^2)
                              memory), never the p^2 x p x K cube.

Example:
    >>> import torch
    >>> F = fourier_basis(113)                  # [113, 113], orthonormal rows
    >>> torch.allclose(F @ F.T, torch.eye(113, dtype=F.dtype), atol=1e-5)
    True
    >>> frequency_norms(torch.randn(113, 8)).shape      # [57]: constant, then k = 1 .. 56
    torch.Size([57])
    >>> neuron_frequency_fractions(torch.randn(113, 113, 16)).shape   # [56, d_mlp]
    torch.Size([56, 16])
"""

from __future__ import annotations

import functools
import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.grid import CheckpointOnGrid
from probes.settings import NEURON_THRESHOLD, ProbeSettings
from probes.table import tidy

NEURON_FRACTION_BINS = 20  # the histogram of each neuron's best fraction: 20 bins of 0.05 over [0, 1]


def n_frequencies(p: int) -> int:
    """K = p // 2, the number of non-constant frequencies: (p - 1)/2 cos/sin pairs for odd p;
    for even p, p/2 - 1 pairs and the Nyquist cosine (frequency p/2)."""
    return p // 2


def frequency_rows(p: int, k: int) -> range:
    """The rows of frequency k >= 1 among the non-constant basis rows (basis rows 1 .. p-1, and
    the rows of `sum_direction_basis`): cos k and sin k, or the Nyquist cosine alone (k = p/2)."""
    return range(2 * (k - 1), min(2 * k, p - 1))


@functools.lru_cache(maxsize=16)
def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[p, p] orthonormal basis; row i is basis vector i (order in the module docstring).

    For even p the last row is the Nyquist vector (-1)^x / sqrt(p), frequency p/2.
    Cached: do not modify the returned tensor.
    """
    x = torch.arange(p, dtype=dtype)
    rows = [torch.full((p,), 1.0 / math.sqrt(p), dtype=dtype)]
    for k in range(1, (p - 1) // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p) * math.sqrt(2.0 / p))
        rows.append(torch.sin(2 * math.pi * k * x / p) * math.sqrt(2.0 / p))
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * x) / math.sqrt(p))
    return torch.stack(rows)


def basis_names(p: int) -> list[str]:
    names = ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        names += [f"cos {k}", f"sin {k}"]
    return names + ([f"cos {p // 2}"] if p % 2 == 0 else [])


def fourier_1d(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Coefficients of ``x`` along axis ``dim`` (length p) in the basis: F @ x along that axis."""
    x = x.double().movedim(dim, 0)
    F = fourier_basis(x.shape[0], x.dtype)
    out = F @ x.reshape(x.shape[0], -1)
    return out.reshape(x.shape).movedim(0, dim)


def fourier_2d(grid: torch.Tensor) -> torch.Tensor:
    """grid: [p, p, ...] over (a, b) -> coefficients [p, p, ...]: F @ grid @ F^T on the first two axes."""
    return fourier_1d(fourier_1d(grid, 0), 1)


def group_by_frequency(coeff_sq: torch.Tensor) -> torch.Tensor:
    """[p, ...] squared coefficients -> [K + 1, ...]: constant, then cos^2 + sin^2 per k (the
    Nyquist cos^2 alone as the last, for even p)."""
    p = coeff_sq.shape[0]
    n_pairs = (p - 1) // 2
    pairs = coeff_sq[1 : 2 * n_pairs + 1].reshape(n_pairs, 2, *coeff_sq.shape[1:]).sum(1)
    return torch.cat([coeff_sq[:1], pairs, coeff_sq[2 * n_pairs + 1 :]])


def frequency_norms(M: Float[Tensor, "p ..."]) -> Float[Tensor, " k1"]:
    """M: [p, d] (a function of the token, e.g. W_E[:p]) -> [K + 1] norms, index k = frequency k.

    n_k = sqrt(sum_d (cos_k . M[:, d])^2 + (sin_k . M[:, d])^2), i.e. the Frobenius norm of the
    part of M in frequency k; n_0 is the constant part. sum_k n_k^2 = |M|_F^2.
    """
    coeff = fourier_1d(M, 0)
    return group_by_frequency(coeff.pow(2)).sum(dim=tuple(range(1, coeff.dim()))).sqrt()


def diagonal_sums(grid: Float[Tensor, "p p ..."], sign: int = 1) -> Float[Tensor, "p ..."]:
    """grid: [p, p, ...] over (a, b) -> [p, ...]: S[s] = sum over a + sign*b = s (mod p) of grid[a, b].

    The 1-D Fourier transform of S is the 2-D transform of the grid along the direction a + sign*b
    (e.g. <grid, cos(w(a + b))> = <S, cos(w s)>), which is how the functions of a + b that the
    Fourier algorithm builds are measured without a full 2-D transform. O(p^2) adds, no copies.
    """
    p = grid.shape[0]
    x = grid.reshape(p, p, -1)
    acc = torch.zeros(p, x.shape[-1], dtype=x.dtype)
    for a in range(p):
        if sign == 1:  # s = a + b: b < p - a gives s = a .. p-1, the rest wraps to 0 .. a-1
            acc[a:] += x[a, : p - a]
            acc[:a] += x[a, p - a :]
        else:  # t = b - a = -s: b >= a gives t = 0 .. p-a-1, the rest wraps to p-a .. p-1
            acc[: p - a] += x[a, a:]
            acc[p - a :] += x[a, :a]
    if sign != 1:
        acc = acc[(-torch.arange(p)) % p]
    return acc.reshape(p, *grid.shape[2:])


# A neuron whose variance is below this fraction of its mean square is constant up to rounding:
# its "fractions" would be ratios of rounding noise, so it gets 0 for every frequency.
CONSTANT_REL_VARIANCE = 1e-10


def _centred_sum_sq(x: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [N, n] -> float64 ([n] sum over rows of (x - mean)^2, [n] sum of x^2), in chunks (no
    [N, n] temporary)."""
    mean = x.sum(0) / x.shape[0]
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):  # each chunk summed in x's precision, chunks in float64
        total += (x[i : i + chunk] - mean).square_().sum(0).double()
    return total, total + x.shape[0] * mean.double().square()


def neuron_frequency_fractions(acts: Float[Tensor, "p p n"]) -> Float[Tensor, "k n"]:
    """acts: [p, p, n] (one value per (a, b) input and neuron) -> [K, n]; row k-1 = frequency k.

    Each neuron's grid is centred (mean over (a, b) removed) and split over the 2-D Fourier basis
    {const, cos k, sin k}_a x {const, cos k', sin k'}_b; the fraction for frequency k is the
    power in the terms built only from frequency k and the constant,

        f_k = (G[k, 0] + G[0, k] + G[k, k]) / sum_{(x, y) != (0, 0)} G[x, y],

    G[x, y] the summed squared coefficients of block (x, y) (Nanda et al. 2023, Sec. 5; their
    0.85 cut-off defines the neuron clusters). A neuron that is constant over the grid (variance
    below `CONSTANT_REL_VARIANCE` of its mean square, e.g. a dead ReLU) gets 0 everywhere.

    For odd p this needs no 2-D transform: the (k, k) block is spanned by cos/sin(w(a + b)) and
    cos/sin(w(a - b)), so G[k, k] = (|F S_+|_k^2 + |F S_-|_k^2) / p with S_+/- the
    `diagonal_sums` of the grid; G[k, 0] and G[0, k] come from the row and column sums the same
    way (|F r|_k^2 / p), and the denominator is the variance times p^2 (Parseval). Even p uses
    the full 2-D transform; there the Nyquist frequency p/2 is a frequency like the others.
    """
    p, n = acts.shape[0], acts.shape[-1]
    if p % 2 == 0:
        return _fractions_2d(acts)
    x = acts.reshape(p, p, n)
    dtype = torch.float64
    F = fourier_basis(p, dtype)
    sums = torch.stack([x.sum(1), x.sum(0), diagonal_sums(x, 1), diagonal_sums(x, -1)]).to(dtype)  # [4, p, n]
    power = group_by_frequency((F @ sums).pow(2).transpose(0, 1))[1:] / p  # [K, 4, n]
    out = power.sum(1)  # G[k, 0] + G[0, k] + G[k, k]
    total, square = _centred_sum_sq(x.reshape(p * p, n))  # total = sum of all G but G[0, 0] (Parseval)
    varies = total > CONSTANT_REL_VARIANCE * square
    return torch.where(varies, out / total.clamp_min(1e-300), torch.zeros_like(out))


def _fractions_2d(acts: Float[Tensor, "p p n"]) -> Float[Tensor, "k n"]:
    """`neuron_frequency_fractions` by the full 2-D transform A = F acts F^T (any p)."""
    p, n = acts.shape[0], acts.shape[-1]
    dtype = acts.dtype if acts.dtype in (torch.float32, torch.float64) else torch.float64
    F = fourier_basis(p, dtype)
    A = (F @ acts.to(dtype).reshape(p, p * n)).reshape(p, p, n)  # transform over a
    A = torch.matmul(F, A)  # over b: [p, p, n] batched over a
    G = group_by_frequency(group_by_frequency(A.pow(2)).transpose(0, 1)).transpose(0, 1).double()  # [K+1, K+1, n]
    mean_sq = G[0, 0].clone()
    G[0, 0] = 0.0  # the (const, const) term is the mean: dropping it is centring the grid
    total = G.sum(dim=(0, 1))
    k = torch.arange(1, G.shape[0])
    out = G[k, k] + G[0, k] + G[k, 0]  # [K, n]
    varies = total > CONSTANT_REL_VARIANCE * (total + mean_sq)
    return torch.where(varies, out / total.clamp_min(1e-300), torch.zeros_like(out))


def neuron_clusters(fractions: Float[Tensor, "k n"], threshold: float = NEURON_THRESHOLD) -> Int[Tensor, " n"]:
    """fractions: [K, n] -> [n] cluster id per neuron: its best frequency k (1..K) if that explains
    at least ``threshold`` of its variance, else 0 ("unexplained"). argmax runs over every k."""
    best_fraction, best = fractions.max(dim=0)
    return torch.where(best_fraction >= threshold, best + 1, torch.zeros_like(best))


def gini(x: Float[Tensor, "*n"]) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, (n-1)/n when one holds everything.

    G = sum_i sum_j |x_i - x_j| / (2 n sum_i x_i), computed from the sorted values.
    """
    x = x.double().flatten().sort().values
    n = x.numel()
    if n == 0 or x.sum() <= 0:
        return 0.0
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * ranks - n - 1) * x).sum() / (n * x.sum()))


def key_frequencies_by_norm(norms: Float[Tensor, " k1"], rel_threshold: float, min_share_factor: float) -> list[int]:
    """Frequencies k >= 1 whose squared norm is at least ``rel_threshold`` x the largest AND at
    least ``min_share_factor`` x the uniform share 1/K of the total: the second condition keeps a
    flat (random) spectrum from claiming its largest entries as "key"."""
    sq = norms[1:].double().pow(2)
    if sq.sum() <= 0:
        return []
    share = sq / sq.sum()
    K = sq.numel()
    keep = (sq >= rel_threshold * sq.max()) & (share >= min_share_factor / K)
    return [int(k) + 1 for k in torch.nonzero(keep).flatten()]


@functools.lru_cache(maxsize=8)
def sum_direction_basis(p: int, sign: int = 1) -> torch.Tensor:
    """[p - 1, p*p]: unit vectors cos(w_k (a + sign*b)), sin(w_k (a + sign*b)) over the (a, b)
    grid (a-major), for k = 1..K in basis order (`frequency_rows(p, k)` picks frequency k's; for
    even p the Nyquist frequency has its cosine only). Orthonormal: they are the characters of
    Z_p, evaluated at a + sign*b. Cached: do not modify."""
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    rows = []
    for k in range(1, n_frequencies(p) + 1):
        angle = 2 * math.pi * k * (a + sign * b) / p
        for f in (torch.cos, torch.sin) if 2 * k != p else (torch.cos,):
            v = f(angle).flatten()
            rows.append(v / v.norm())
    return torch.stack(rows)


@functools.lru_cache(maxsize=8)
def _cos_sin_tables(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(w_k x), sin(w_k x) as [p, K] for x = 0..p-1, k = 1..K (cached; do not modify)."""
    w = 2 * math.pi * torch.arange(1, n_frequencies(p) + 1, dtype=torch.float64) / p
    x = torch.arange(p, dtype=torch.float64)[:, None]
    return torch.cos(w * x), torch.sin(w * x)


def logit_fit(logits: Float[Tensor, "p p p"], sign: int = 1) -> tuple[Float[Tensor, " k"], Float[Tensor, " k"]]:
    """logits: [p, p, p] over (a, b, c) -> (alpha [K], explained [K]).

    alpha_w = <L, cos(w(a + sign*b - c))> / |cos(w(a + sign*b - c))|^2 over the whole cube, with L
    centred over c. The term depends on (a, b) only through s = a + sign*b, so the (a, b) sum
    folds into the `diagonal_sums` S[s, c], and cos(w(s - c)) = cos(ws) cos(wc) + sin(ws) sin(wc)
    makes the rest two [p, p] x [p, K] products: O(p^3) adds, O(p^2) extra memory, never the
    p^2 x p x K cube of cosines.
    explained[w-1] = alpha_w^2 |cos(...)|^2 / |L - mean_c L|^2: the fraction of the centred
    logits' variance carried by that term (the terms are orthogonal, so fractions add).
    |cos(w(s - c))|^2 over the cube is p^3 / 2, or p^3 at the Nyquist frequency of an even p.
    """
    p = logits.shape[0]
    K = n_frequencies(p)
    L = logits.double()
    L = L - L.mean(dim=2, keepdim=True)
    S = diagonal_sums(L, sign)  # [p (s), p (c)]
    cos_x, sin_x = _cos_sin_tables(p)
    inner = (cos_x * (S @ cos_x)).sum(0) + (sin_x * (S @ sin_x)).sum(0)  # [K]
    norm_sq = torch.full((K,), p**3 / 2.0, dtype=torch.float64)  # |cos(w(s - c))|^2 over the cube
    if p % 2 == 0:
        norm_sq[-1] = float(p**3)  # the Nyquist term is +-1 everywhere
    alpha = inner / norm_sq
    total = L.pow(2).sum()
    explained = alpha.pow(2) * norm_sq / total if total > 0 else torch.zeros(K, dtype=torch.float64)
    return alpha, explained


# ------------------------------------------------------------------------ per-checkpoint probe
def W_L(W_out: Float[Tensor, "d_mlp d_model"], W_U: Float[Tensor, "d_model p"]) -> Float[Tensor, "d_mlp p"]:
    """[d_mlp, p] = W_out [d_mlp, d_model] @ W_U [d_model, p]: each neuron's direct effect on the
    logits per unit of its activation (Nanda et al. 2023's neuron-logit map)."""
    return W_out.double() @ W_U.double()


def W_L_active(W_out: Float[Tensor, "d_mlp d_model"], W_U: Float[Tensor, "d_model p"],
               acts: Float[Tensor, "p p d_mlp"]) -> Float[Tensor, "d_mlp p"]:
    """[d_mlp, p]: `W_L` with each neuron's row multiplied by the spread of its activation over the
    inputs, s_n = sqrt(mean_(a,b) (act_n - mean act_n)^2): the size of what the neuron writes into
    the logits, not per unit of activation.

    W_L alone is not a function of what the network computes: a ReLU neuron whose input weights are
    scaled by c > 0 and output weights by 1/c computes the same function (relu(cx) = c relu(x)),
    while its row of W_L shrinks by c. Weight decay balances the two sides of every neuron, so in a
    trained network W_L's spectrum is the logits'; in a hand-built or unbalanced one, frequencies
    whose neurons run at large activations get small W_L norms and fall below the wl rule's
    threshold (planted × circuits at p = 59 and 83 lost two of three frequencies that way).
    s_n W_L[n] is invariant under the rescaling: s_n scales by c and W_L[n] by 1/c."""
    return activation_spread(acts)[:, None] * W_L(W_out, W_U)


def activation_spread(acts: Float[Tensor, "p p d_mlp"]) -> Float[Tensor, " d_mlp"]:
    """Each neuron's activation spread over the inputs, s_n = sqrt(mean_(a,b) (act_n - mean act_n)^2):
    the row weights of `W_L_active`."""
    flat = acts.reshape(-1, acts.shape[-1]).double()
    return (flat - flat.mean(0)).pow(2).mean(0).sqrt()


def _layer_keys(fractions: Float[Tensor, "k n"], wl: Float[Tensor, " k1"], settings: ProbeSettings) -> dict[str, list[int]]:
    """One block's key frequencies by the neurons rule (from its neurons' fractions) and the wl rule
    (from the Fourier norms of its activation-weighted W_L, `W_L_active`)."""
    clusters = neuron_clusters(fractions, settings.neuron_threshold)
    sizes = torch.bincount(clusters, minlength=fractions.shape[0] + 1)
    min_size = max(1, math.ceil(settings.min_cluster_frac * clusters.numel()))
    return {"neurons": [k for k in range(1, sizes.numel()) if sizes[k] >= min_size],
            "wl": key_frequencies_by_norm(wl, settings.norm_rel_threshold, settings.norm_min_share)}


def key_frequencies(inp: CheckpointOnGrid, settings: ProbeSettings, fractions=None, embed=None, wl=None) -> dict:
    """The key frequencies of one checkpoint by each rule, for the model and for each block.

    neurons: frequencies whose neuron cluster (neurons with >= ``neuron_threshold`` of their
             variance in that frequency) holds >= ``min_cluster_frac`` of the block's neurons;
    embed:   `key_frequencies_by_norm` of the embedding's Fourier norms;
    wl:      `key_frequencies_by_norm` of the Fourier norms of the block's W_L = W_out W_U (over
             the output logit axis: the block's neurons' direct effect on the logits), each
             neuron's row weighted by the spread of its activation (`W_L_active`: invariant to the
             ReLU rescaling that leaves the function unchanged and W_L's norms not).

    Returns {"neurons": [...], "embed": [...], "wl": [...], "layers": [{"neurons": [...], "wl": [...]}
    per block]}. The model's neurons and wl sets are the union over its blocks (a frequency is key if
    some block computes with it); for one block they are that block's. ``fractions`` and ``wl``:
    per block, as `neuron_frequency_fractions` and `frequency_norms` give them, if already computed.
    """
    layers = inp.layers
    fractions = [neuron_frequency_fractions(b.neuron_acts) for b in layers] if fractions is None else fractions
    wl = [frequency_norms(W_L_active(b.W_out, inp.W_U, b.neuron_acts).T) for b in layers] if wl is None else wl
    embed = frequency_norms(inp.W_E) if embed is None else embed
    per_layer = [_layer_keys(f, n, settings) for f, n in zip(fractions, wl, strict=True)]
    return {
        "neurons": sorted(set().union(*(keys["neurons"] for keys in per_layer))),
        "embed": key_frequencies_by_norm(embed, settings.norm_rel_threshold, settings.norm_min_share),
        "wl": sorted(set().union(*(keys["wl"] for keys in per_layer))),
        "layers": per_layer,
    }


def probe(inp: CheckpointOnGrid, key_freqs: tuple[int, ...], settings: ProbeSettings):
    """Fourier measurements of one checkpoint as tidy rows ``step, measure, layer, frequency, bin,
    value``. Measures of one block carry its ``layer`` (0 = the first; a one-layer model has only
    layer 0); measures of the whole model leave it empty.

    measure (key columns; the others are empty):
      embed_norm (frequency 0..K)  Fourier norm of W_E[:p] per frequency (0 = the constant term)
      embed_gini                   Gini of the embedding norms n_1..n_K (constant excluded)
      key_embed (frequency k)      1 for each frequency the embed rule calls key
    and for each block (layer):
      wl_norm (frequency 0..K)     Fourier norm of the block's W_L = W_out W_U over the logit axis
      wl_gini                      Gini of those norms n_1..n_K
      wl_active_norm (frequency)   the same norms of the activation-weighted W_L (`W_L_active`),
                                   which the wl rule reads
      cluster_size (frequency k)   the block's neurons whose best frequency k explains >=
                                   neuron_threshold of their variance; the row with no frequency
                                   counts the rest (the "unexplained" neurons)
      neuron_fraction_hist (bin)   histogram of each of the block's neurons' best fraction:
                                   `NEURON_FRACTION_BINS` equal bins over [0, 1], bin 0 first
      key_neurons, key_wl (k)      1 for each frequency that rule calls key in this block (the
                                   model's set is the union over blocks, `key_frequencies`)
    and where the task is a +/- b in ``inp``'s coordinates (for the polynomial tasks, ``sign`` 0,
    one row each with no frequency and value NaN: not applicable):
      logit_alpha (frequency k)    coefficient of cos(w_k(a +/- b - c)) in the logits, k = 1..K
      logit_explained (k)          fraction of centred logit variance that term carries
      logit_explained_key          the same summed over ``key_freqs``
    """
    rows: list[tuple[str, int | None, int | None, int | None, float]] = []
    embed = frequency_norms(inp.W_E)
    rows += [("embed_norm", None, k, None, float(v)) for k, v in enumerate(embed)]
    rows.append(("embed_gini", None, None, None, gini(embed[1:])))
    fractions, wls = [], []
    for layer, block in enumerate(inp.layers):
        neuron_logit = W_L(block.W_out, inp.W_U)
        raw = frequency_norms(neuron_logit.T)
        rows += [("wl_norm", layer, k, None, float(v)) for k, v in enumerate(raw)]
        rows.append(("wl_gini", layer, None, None, gini(raw[1:])))
        wl = frequency_norms((activation_spread(block.neuron_acts)[:, None] * neuron_logit).T)  # `W_L_active`
        rows += [("wl_active_norm", layer, k, None, float(v)) for k, v in enumerate(wl)]
        f = neuron_frequency_fractions(block.neuron_acts)
        sizes = torch.bincount(neuron_clusters(f, settings.neuron_threshold), minlength=n_frequencies(inp.p) + 1)
        rows += [("cluster_size", layer, k or None, None, float(v)) for k, v in enumerate(sizes)]
        hist = torch.histc(f.max(dim=0).values.float(), bins=NEURON_FRACTION_BINS, min=0.0, max=1.0)
        rows += [("neuron_fraction_hist", layer, None, i, float(v)) for i, v in enumerate(hist)]
        fractions.append(f)
        wls.append(wl)
    keys = key_frequencies(inp, settings, fractions, embed, wls)
    rows += [("key_embed", None, k, None, 1.0) for k in keys["embed"]]
    for layer, per_rule in enumerate(keys["layers"]):
        rows += [(f"key_{rule}", layer, k, None, 1.0) for rule, freqs in per_rule.items() for k in freqs]
    if inp.sign != 0:
        alpha, explained = logit_fit(inp.logits, inp.sign)
        rows += [("logit_alpha", None, k + 1, None, float(v)) for k, v in enumerate(alpha)]
        rows += [("logit_explained", None, k + 1, None, float(v)) for k, v in enumerate(explained)]
        rows.append(("logit_explained_key", None, None, None, float(sum(explained[k - 1] for k in key_freqs))))
    else:  # no a +/- b direction to fit along: one NaN row each, "not applicable"
        rows += [(m, None, None, None, float("nan")) for m in SUM_MEASURES]
    return tidy(inp.step, rows, KEYS)


KEYS = ("measure", "layer", "frequency", "bin")
SUM_MEASURES = ("logit_alpha", "logit_explained", "logit_explained_key")  # need the a +/- b direction
