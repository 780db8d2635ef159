"""Time grids for samplers: 1-D tensors decreasing from the start time to the end time.

Every sampler integrates over an explicit grid ``ts`` (t = 1 noise → t = 0 data) and
:func:`check_grid` is the one place grids are validated.
"""

from __future__ import annotations

import torch

from visgen._checks import check_positive

__all__ = ["check_grid", "uniform"]


def check_grid(ts, name: str = "ts") -> torch.Tensor:
    """Validate a sampling grid: 1-D, ≥ 2 points, strictly decreasing, inside [0, 1], finite."""
    if not isinstance(ts, torch.Tensor):
        try:
            ts = torch.as_tensor(ts, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a 1-D tensor of times, got {type(ts).__name__}"
            ) from err
    if ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D grid with at least 2 times (1 step), got shape {tuple(ts.shape)}"
        )
    if not torch.isfinite(ts).all():
        raise ValueError(f"{name} contains NaN or infinite times")
    if (ts < 0).any() or (ts > 1).any():
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 1 noise, t = 0 data), got [{ts.min():.4g}, {ts.max():.4g}]"
        )
    if not (ts[1:] < ts[:-1]).all():
        raise ValueError(
            f"{name} must be strictly decreasing (from noise to data), got {ts.tolist()}"
        )
    return ts


def uniform(n: int, t_start: float = 1.0, t_end: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    """n steps uniform in t: n + 1 times from t_start down to t_end."""
    check_positive(n, "n", integer=True)
    if not 0 <= t_end < t_start <= 1:
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")
    return torch.linspace(t_start, t_end, n + 1, dtype=dtype)
