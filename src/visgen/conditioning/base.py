"""What every adapter of lecture 11 shares: a frozen base generator and a weight checksum.

ControlNet and IP-Adapter train new weights around a generator they never change. The base is
named by a cached asset (:func:`visgen.train.asset`), whose cache key is pinned in the adapter's
config so a FAST adapter is never loaded around a full base; tests may pass a module instead
(such an adapter is not rebuildable from its config). :func:`checksum` proves a base unchanged.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from visgen.train.assets import asset, asset_key

__all__ = ["checksum", "frozen_base"]


def checksum(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes, shapes and bytes)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def frozen_base(base, base_key: str | None, kinds: tuple[type, ...]) -> tuple[nn.Module, dict]:
    """(the base network, frozen and in eval mode; its config entries for the adapter).

    ``base`` is an asset name (its cache key is checked against ``base_key`` when given) or a
    module of one of ``kinds``.
    """
    if isinstance(base, str):
        key = asset_key(base)
        if base_key is not None and base_key != key:
            raise ValueError(
                f"this adapter was trained around base {base_key}, but asset {base!r} is now "
                f"{key} (FAST vs full budget, or a changed recipe)"
            )
        model, entry = asset(base, progress=False).model, {"base": base, "base_key": key}
    elif isinstance(base, nn.Module):
        model, entry = base, {"base": None, "base_key": None}
    else:
        raise TypeError(f"base must be an asset name or a network, got {type(base).__name__}")
    if not isinstance(model, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"base must be a {names}, got {type(model).__name__}")
    return model.eval().requires_grad_(False), entry
