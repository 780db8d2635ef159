r"""Sparse attention over video tokens: spatial and temporal heads (Sparse VideoGen), block
sparsity and sliding-tile attention, with density and FLOP accounting.

Video tokens are ordered frame-major: token n = (f, r, c) of a clip of F frames with an
H × W grid per frame (P = HW tokens per frame). Full 3-D attention costs 4·d·(FP)² FLOPs per
head; a mask M keeps a fraction ``density(M)`` of the query–key pairs, and a kernel that skips
the masked pairs costs that fraction (counted by :func:`masked_flops`).

* **Sparse VideoGen** (Xi et al. 2025, arXiv 2502.01776, §3–4): a *spatial* head attends to
  the tokens of the same frame (and a window of neighbouring frames, :func:`spatial_mask`), a
  *temporal* head to the tokens at the same position (and a window of neighbouring positions
  in raster order) in every frame (:func:`temporal_mask`). Which head is which changes with
  the input and the step, so the type is chosen **online** (:func:`profile_heads`): for a
  few sampled queries compute the exact attention and each mask's, and keep the mask with the
  smaller error. Reordering tokens position-major (:func:`position_major`) turns a temporal
  mask into a block-diagonal one, so both kinds are *block-sparse* (the paper's layout
  transformation).
* **Block sparsity** (:func:`block_mask`, :func:`block_density`): a kernel works on tiles of
  b × b query–key pairs and skips a tile only if the whole tile is masked.
* **The oracle** (:func:`topk_mask`): per query the keys of largest attention weight, as many
  as a mask of the given density keeps on average. It needs the full score matrix (it saves
  nothing) and keeps the most attention **mass** any mask with that many keys per query can
  keep — a strict bound on mass, not on the output error: where the rows are nearly uniform
  a mask that spreads its keys evenly can average the values better than the top keys do.
* **Sliding-tile attention** (Zhang et al. 2025, arXiv 2502.04507, §3): tokens are grouped
  into 3-D tiles of (t_f, t_h, t_w) tokens, and a query tile attends to every key tile within
  a 3-D window of tiles around it — sliding-window attention at tile granularity, so every
  kept tile is full (:func:`sliding_tile_mask`).

On a CPU a boolean mask in ``scaled_dot_product_attention`` computes every pair anyway (no
speedup, measured): the savings here are counted, not timed. The one layout that does run
faster on any device is a mask that is a reshape — :func:`frame_attention` computes the
same-frame (window 1) spatial mask as per-frame attention.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from visgen._checks import check_positive, check_tensor
from visgen.efficient.flops import attention_flops
from visgen.efficient.pab import _attribute
from visgen.efficient.quant import relative_error

__all__ = [
    "block_density",
    "block_mask",
    "density",
    "frame_attention",
    "masked_attention",
    "masked_flops",
    "position_major",
    "profile_heads",
    "profile_video_dit",
    "sliding_tile_mask",
    "spatial_mask",
    "temporal_mask",
    "topk_mask",
    "video_attention_inputs",
    "video_heads_problem",
    "video_positions",
]


def _grid(frames: int, height: int, width: int) -> None:
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        check_positive(value, name, integer=True)


def video_positions(frames: int, height: int, width: int) -> torch.Tensor:
    """(F·H·W, 3) integer (frame, row, column) of every token, frame-major raster order."""
    _grid(frames, height, width)
    f, r, c = torch.meshgrid(
        torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij"
    )
    return torch.stack([f.reshape(-1), r.reshape(-1), c.reshape(-1)], 1)


def spatial_mask(frames: int, height: int, width: int, window: int = 1) -> torch.Tensor:
    """Sparse VideoGen's spatial head: key frame within ``window`` − 1 frames of the query's
    (window 1 = the same frame). (N, N) boolean, N = F·H·W."""
    check_positive(window, "window", integer=True)
    f = video_positions(frames, height, width)[:, 0]
    return (f[:, None] - f[None, :]).abs() < window


def temporal_mask(frames: int, height: int, width: int, window: int = 1) -> torch.Tensor:
    """Sparse VideoGen's temporal head: key position within ``window`` − 1 raster positions of
    the query's, in any frame (window 1 = the same position). (N, N) boolean."""
    check_positive(window, "window", integer=True)
    pos = video_positions(frames, height, width)
    p = pos[:, 1] * width + pos[:, 2]
    return (p[:, None] - p[None, :]).abs() < window


def sliding_tile_mask(frames: int, height: int, width: int, tile=(1, 2, 2), window=(3, 3, 3)):
    """Sliding-tile attention: tokens in tiles of ``tile`` = (t_f, t_h, t_w) tokens; a query
    attends to the keys whose tile lies within ``window`` = (w_f, w_h, w_w) tiles (odd)
    centred on its own tile (clipped at the clip's border). (N, N) boolean."""
    tile, window = tuple(tile), tuple(window)
    if len(tile) != 3 or len(window) != 3:
        raise ValueError("tile and window must be (frames, rows, columns) triples")
    for t, size, name in zip(tile, (frames, height, width), ("frames", "height", "width")):
        check_positive(t, "tile", integer=True)
        if size % t:
            raise ValueError(
                f"tile {tile} must divide the clip ({frames}, {height}, {width}) in {name}"
            )
    for w in window:
        check_positive(w, "window", integer=True)
        if w % 2 == 0:
            raise ValueError(f"window sizes must be odd (centred on the query tile), got {window}")
    tiles = video_positions(frames, height, width) // torch.tensor(tile)
    near = (tiles[:, None, :] - tiles[None, :, :]).abs() <= torch.tensor(window) // 2
    return near.all(-1)


def position_major(frames: int, height: int, width: int) -> torch.Tensor:
    """The permutation that reorders frame-major tokens position-major (all frames of
    position 0, then of position 1, …): ``x[:, perm]``; a temporal mask becomes
    block-diagonal with blocks of F tokens."""
    _grid(frames, height, width)
    return torch.arange(frames * height * width).reshape(frames, height * width).T.reshape(-1)


def density(mask: torch.Tensor) -> float:
    """Kept query–key pairs / all pairs."""
    return float(mask.float().mean())


def block_mask(mask: torch.Tensor, block: int) -> torch.Tensor:
    """The tiles of ``block`` × ``block`` pairs a block-sparse kernel must compute: those
    holding at least one kept pair. (N/b, N/b) boolean."""
    check_positive(block, "block", integer=True)
    n = mask.shape[-1]
    if mask.shape[-2:] != (n, n) or n % block:
        raise ValueError(f"mask must be square (…, N, N) with N divisible by block {block}")
    tiles = mask.reshape(*mask.shape[:-2], n // block, block, n // block, block)
    return tiles.any(-1).any(-2)


def block_density(mask: torch.Tensor, block: int) -> float:
    """The density a block-sparse kernel pays: computed tiles / all tiles (≥ density)."""
    return density(block_mask(mask, block))


def topk_mask(q: torch.Tensor, k: torch.Tensor, density: float) -> torch.Tensor:
    """The oracle mask: for every query of (B, heads, N, d) heads the ⌈density·N⌉ keys of
    largest score q·k (= largest attention weight). (B, heads, N, N) boolean."""
    check_tensor(q, "q", min_dim=3)
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    scores = q @ k.transpose(-1, -2)
    keep = scores.topk(math.ceil(density * scores.shape[-1]), -1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, keep, True)


def masked_flops(mask: torch.Tensor, head_dim: int, batch: int = 1) -> int:
    """Attention FLOPs of the kept pairs (mask (…, N, N), summed over any head axis)."""
    return attention_flops(int(mask.sum()) * batch, head_dim)


def masked_attention(q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q Kᵀ/√d + log M) V for (B, heads, N, d) tensors; ``mask`` (N, N),
    (heads, N, N) or (B, heads, N, N) boolean (True = keep). Every row must keep at least
    one key."""
    check_tensor(q, "q", min_dim=3)
    if mask is not None and not bool(mask.any(-1).all()):
        raise ValueError("mask leaves a query with no key")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def frame_attention(q, k, v, frames: int) -> torch.Tensor:
    """The same-frame spatial mask computed as attention within each frame (a reshape, no
    mask): equal to ``masked_attention(q, k, v, spatial_mask(...))`` and FLOP-cheaper."""
    b, h, n, d = q.shape
    if n % frames:
        raise ValueError(f"frames {frames} must divide the number of tokens {n}")

    def split(x):
        return x.reshape(b, h, frames, n // frames, d)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.reshape(b, h, n, d)


@torch.no_grad()
def profile_heads(q, k, v, masks: dict, *, queries: int = 32, generator=None):
    """Sparse VideoGen's online profiling: the best mask per head.

    For ``queries`` sampled query tokens the exact attention output and the output under
    each of ``masks`` (name → (N, N) boolean) are compared (mean squared error over the
    batch, the sampled queries and the channels); each head gets the mask of least error.
    Costs queries/N of one full attention per mask. Returns (names per head, errors
    {name: (heads,) MSE}).
    """
    check_tensor(q, "q", min_dim=4)
    if not masks:
        raise ValueError("masks must name at least one candidate mask")
    n = q.shape[-2]
    idx = torch.randperm(n, generator=generator)[: min(queries, n)]
    exact = F.scaled_dot_product_attention(q[:, :, idx], k, v)
    errors = {}
    for name, mask in masks.items():
        approx = F.scaled_dot_product_attention(q[:, :, idx], k, v, attn_mask=mask[idx])
        errors[name] = (approx - exact).pow(2).mean((0, 2, 3))
    names = list(errors)
    best = torch.stack([errors[name] for name in names]).argmin(0)
    return [names[i] for i in best.tolist()], errors


def video_heads_problem(
    frames: int = 8,
    height: int = 4,
    width: int = 4,
    kinds=("spatial", "temporal") * 4,
    *,
    dim: int = 32,
    sharpness: float = 4.0,
    batch: int = 2,
    generator: torch.Generator | None = None,
):
    """Queries, keys, values (batch, heads, F·H·W, dim) for heads built to be spatial (q and
    k share a random embedding of the frame) or temporal (of the position), plus noise of
    unit size; ``sharpness`` scales the embeddings. Returns (q, k, v)."""
    pos = video_positions(frames, height, width)
    frame_code = torch.randn(frames, dim, generator=generator) / dim**0.25
    place_code = torch.randn(height * width, dim, generator=generator) / dim**0.25
    qs, ks = [], []
    for kind in kinds:
        if kind == "spatial":
            code = frame_code[pos[:, 0]]
        elif kind == "temporal":
            code = place_code[pos[:, 1] * width + pos[:, 2]]
        else:
            raise ValueError(f"kinds must be 'spatial' or 'temporal', got {kind!r}")
        noise = torch.randn(2, batch, len(pos), dim, generator=generator) / dim**0.25
        qs.append(sharpness * code + noise[0])
        ks.append(sharpness * code + noise[1])
    q, k = torch.stack(qs, 1), torch.stack(ks, 1)
    v = torch.randn(q.shape, generator=generator)
    return q, k, v


@torch.no_grad()
def video_attention_inputs(model, x, t, cond=None) -> list[tuple]:
    """The (q, k, v) heads (B, heads, F·P, head_dim) of every full-3-D-attention block of a
    video DiT (:class:`visgen.video.dit.VideoDiT`, lecture 9) in one forward pass on the clip
    x_t (B, F, C, H, W): what a sparse kernel of that block would read."""
    full = [b for b in getattr(model, "blocks", ()) if getattr(b, "kind", None) == "full"]
    if not full:
        raise TypeError("model must be a video DiT with full-attention blocks (kind 'full')")
    captured = []
    with contextlib.ExitStack() as stack:
        for block in full:

            def qkv(*args, original=block.qkv, **kwargs):
                captured.append(original(*args, **kwargs))
                return captured[-1]

            stack.enter_context(_attribute(block, "qkv", qkv))
        model(x, t, cond)
    return captured


@torch.no_grad()
def profile_video_dit(
    model, x, t, cond=None, *, masks: dict | None = None, queries: int = 32,
    oracle_density: float = 0.3, generator=None,
) -> list[dict]:  # fmt: skip
    """Sparse VideoGen on a trained video DiT: for every full-attention block, profile each
    head among the candidate ``masks`` (name → (N, N) boolean; default: ``spatial`` = the
    same frame, ``temporal`` = the same position) with :func:`profile_heads` on this step's
    own queries and keys, and measure the block's attention output under the chosen masks
    against full attention. Returns one dict per block: ``heads`` (the names), ``density``
    of the chosen masks, ``error`` (relative, all heads), ``error_<name>`` with one candidate
    for every head, ``error_oracle`` and ``mass_oracle``: the error of :func:`topk_mask` at
    ``oracle_density`` and the attention mass it keeps (mean over queries: no mask with that
    many keys per query keeps more), and ``entropy``: the attention rows' mean entropy over
    log N (1 = uniform over the clip)."""
    cfg = model.cfg
    side = cfg.size // cfg.patch_size
    frames = x.shape[1]
    if masks is None:
        masks = {"spatial": spatial_mask(frames, side, side),
                 "temporal": temporal_mask(frames, side, side)}  # fmt: skip
    rows = []
    for q, k, v in video_attention_inputs(model, x, t, cond):
        names, _ = profile_heads(q, k, v, masks, queries=queries, generator=generator)
        chosen = torch.stack([masks[n] for n in names])
        exact = masked_attention(q, k, v)

        def error(mask, exact=exact, q=q, k=k, v=v):
            return relative_error(masked_attention(q, k, v, mask), exact)

        weights = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, -1)
        entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean()
        oracle = topk_mask(q, k, oracle_density)
        rows.append({"heads": names, "density": density(chosen), "error": error(chosen),
                     **{f"error_{name}": error(mask) for name, mask in masks.items()},
                     "error_oracle": error(oracle),
                     "mass_oracle": float((weights * oracle).sum(-1).mean()),
                     "entropy": float(entropy / math.log(q.shape[-2]))})  # fmt: skip
    return rows
