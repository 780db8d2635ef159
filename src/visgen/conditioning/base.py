"""What every adapter of lecture 11 shares: a frozen base generator and a weight checksum.

ControlNet and IP-Adapter train new weights around networks they never change. A frozen part
is named by a cached asset (:func:`visgen.train.asset`) whose cache key is pinned in the
adapter's config, so a FAST adapter is never loaded around a full base. Building an adapter
from its config builds the frozen parts' *architecture* only (resolving a spec trains
nothing); :meth:`load_pretrained`, which :func:`visgen.train.train_cached` calls before
training an adapter, loads their trained weights; a trained adapter's checkpoint holds them
anyway. Tests may pass a module instead of a name (such an adapter is not rebuildable from its
config). :func:`checksum` proves a base unchanged.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from visgen.nn import build_model
from visgen.train.assets import ASSETS, asset, asset_key

__all__ = ["checksum", "frozen", "pretrained_weights"]


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


def frozen(part, key: str | None, kinds: tuple[type, ...], what: str) -> tuple[nn.Module, dict]:
    """(the network, frozen and in eval mode; its config entries ``{what}``, ``{what}_key``).

    ``part`` is an asset name — its architecture is built from the recipe, untrained, and the
    asset's cache key is checked against ``key`` when given — or a module of one of ``kinds``.
    """
    if isinstance(part, str):
        current = asset_key(part)
        if key is not None and key != current:
            raise ValueError(
                f"this adapter was trained around {what} {key}, but asset {part!r} is now "
                f"{current} (FAST vs full budget, or a changed recipe)"
            )
        model = build_model(ASSETS.lookup(part)()["model"])
        entry = {what: part, f"{what}_key": current}
    elif isinstance(part, nn.Module):
        model, entry = part, {what: None, f"{what}_key": None}
    else:
        raise TypeError(f"{what} must be an asset name or a network, got {type(part).__name__}")
    if not isinstance(model, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"{what} must be a {names}, got {type(model).__name__}")
    return model.eval().requires_grad_(False), entry


def pretrained_weights(name: str) -> dict[str, torch.Tensor]:
    """The trained weights of asset ``name`` (trained now if the cache lacks it)."""
    return asset(name, progress=False).model.state_dict()
