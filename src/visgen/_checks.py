"""Argument validation shared by the library: every message names the argument."""

from __future__ import annotations

import torch


def _is_number(t) -> bool:
    return isinstance(t, (float, int)) and not isinstance(t, bool)


def _check_number_time(t: float, name: str) -> None:
    if t != t:
        raise ValueError(f"{name} contains NaN")
    if not 0 <= t <= 1:
        raise ValueError(f"{name} must lie in [0, 1] (t = 0 is data, t = 1 is noise); got {t!r}")


def as_time(t, name: str = "t", *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert `t` to a float tensor and check it lies in [0, 1] and holds no NaN."""
    if _is_number(t):  # a sampler's scalar time: validated in Python, one tensor op
        _check_number_time(t, name)
        if like is None:
            return torch.tensor(t, dtype=torch.float64)
        return torch.tensor(t, dtype=like.dtype, device=like.device)
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype() if like is None else like.dtype)
    else:
        try:
            t = torch.as_tensor(t, dtype=torch.float64 if like is None else like.dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a float or a tensor of times in [0, 1], got {t!r}"
            ) from err
    if like is not None and t.device != like.device:
        t = t.to(like.device)
    if ((t >= 0) & (t <= 1)).all():  # one check on the hot path (False for NaN too)
        return t
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    if (t < 0).any() or (t > 1).any():
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 0 is data, t = 1 is noise); got values in "
            f"[{t.min().item():.4g}, {t.max().item():.4g}]"
        )
    return t


def check_tensor(x, name: str, *, min_dim: int = 1, finite: bool = True) -> torch.Tensor:
    """Check that `x` is a floating tensor with at least `min_dim` dims and no NaN/inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}"
        )
    if finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_choice(value: str, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}"
        )
    return value


def check_positive(value, name: str, *, integer: bool = False):
    if integer and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def batch_time(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """Time as a (B,) tensor on x's device and dtype; a scalar is broadcast over the batch."""
    if _is_number(t):
        _check_number_time(t, name)
        return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    t = as_time(t, name, like=x)
    if t.dim() == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}"
        )
    return t


def expand_to(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample coefficient (B,) or scalar to broadcast against x (B, ...)."""
    if c.dim() == 0:
        return c
    return c.reshape(c.shape[0], *([1] * (x.dim() - 1)))
