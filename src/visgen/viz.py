"""Pictures of samples: image grids (PIL) and matplotlib figures without pyplot's global state.

Figures are built with ``matplotlib.figure.Figure`` directly, so nothing here changes the
user's backend and figures are garbage-collected like any object.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from visgen._checks import check_tensor

__all__ = [
    "LIMITS_2D",
    "animation_bytes",
    "figure",
    "image_grid",
    "png_bytes",
    "save_image_grid",
    "scatter",
]

ANIMATION_FORMATS = {"gif": "GIF", "png": "PNG", "webp": "WEBP"}

LIMITS_2D = (-3.2, 3.2)


def image_grid(images, nrow: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [−1, 1] into one uint8 array (H', W', 3).

    ``nrow`` images per row (default ⌈√N⌉), ``pad`` grey pixels between tiles, then a
    nearest-neighbour upscale by ``scale`` (8×8 digits are unreadable at 1:1).
    """
    x = check_tensor(images, "images", min_dim=4).detach().float().cpu()
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).expand(n, 3, h, w)
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.full((3, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 128, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    out = grid.permute(1, 2, 0).numpy()
    return out.repeat(scale, 0).repeat(scale, 1) if scale > 1 else out


def save_image_grid(images, path, nrow: int | None = None, scale: int = 4) -> Path:
    """Write :func:`image_grid` as a PNG file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, nrow, scale=scale)).save(path)
    return path


def animation_bytes(
    videos, nrow: int | None = None, *, scale: int = 4, fps: float = 4.0, fmt: str = "gif"
) -> bytes:
    """Videos (N, F, C, H, W) in [−1, 1] as one looping animation: frame f tiles frame f of
    every video like :func:`image_grid`. ``fmt``: ``gif`` (every browser), ``png`` (APNG) or
    ``webp`` (lossless), written by Pillow — small enough to inline in an HTML report."""
    x = check_tensor(videos, "videos", min_dim=5).detach()
    if x.dim() != 5:
        raise ValueError(f"videos must be (N, F, C, H, W), got shape {tuple(x.shape)}")
    if fmt not in ANIMATION_FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}; expected one of {', '.join(ANIMATION_FORMATS)}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    frames = [Image.fromarray(image_grid(x[:, f], nrow, scale=scale)) for f in range(x.shape[1])]
    buf = io.BytesIO()
    options = {"lossless": True} if fmt == "webp" else {}
    frames[0].save(buf, format=ANIMATION_FORMATS[fmt], save_all=True, append_images=frames[1:],
                   duration=round(1000 / fps), loop=0, **options)  # fmt: skip
    return buf.getvalue()


def figure(ncols: int = 1, nrows: int = 1, size: float = 3.0, **kw):
    """A matplotlib ``Figure`` and its axes (a flat list), ``size`` inches per panel."""
    fig = Figure(figsize=(size * ncols, size * nrows), layout="constrained", **kw)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.flat)


def scatter(ax, x, title: str | None = None, limits=LIMITS_2D, **kw) -> None:
    """A 2D point cloud (N, 2) on square axes with the toy data's limits."""
    x = torch.as_tensor(x).detach().cpu().numpy()
    ax.scatter(x[:, 0], x[:, 1], s=kw.pop("s", 2), alpha=kw.pop("alpha", 0.5), lw=0, **kw)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """A figure rendered to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
