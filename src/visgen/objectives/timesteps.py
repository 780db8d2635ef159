r"""Training-time distributions: which t a loss sees is a loss weighting in disguise
(Kingma & Gao 2023; Esser et al. 2024, §3.1).

Each sampler is a callable ``sampler(n, generator=None, dtype=torch.float32) -> t`` (n,).
"""

from __future__ import annotations

import math

import torch

from visgen._checks import check_positive

__all__ = [
    "Discrete",
    "Ladder",
    "LogitNormal",
    "Shifted",
    "Uniform",
    "resolution_shift",
    "shift_time",
]


class Uniform:
    """t ~ U[t_min, t_max]."""

    def __init__(self, t_min: float = 0.0, t_max: float = 1.0):
        if not 0 <= t_min < t_max <= 1:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = t_min, t_max

    def __call__(self, n, generator=None, dtype=torch.float32):
        return self.t_min + (self.t_max - self.t_min) * torch.rand(
            n, generator=generator, dtype=dtype
        )


class LogitNormal:
    """t = sigmoid(m + s·u), u ~ N(0, 1) (SD3, Esser et al. 2024, eq. 19; JiT uses m = s = 0.8 in
    the t = 1-noise convention, i.e. biased towards noise)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        check_positive(std, "std")
        self.mean, self.std = mean, std

    def __call__(self, n, generator=None, dtype=torch.float32):
        return torch.sigmoid(
            self.mean + self.std * torch.randn(n, generator=generator, dtype=dtype)
        )


def shift_time(t, shift: float):
    """SD3's resolution shift t' = s t / (1 + (s − 1) t) (Esser et al. 2024, eq. 23).

    Monotone, fixes 0 and 1, identity for s = 1; s > 1 moves mass towards noise.
    """
    check_positive(shift, "shift")
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(num_values: int, base_num_values: int = 64 * 64) -> float:
    """The shift s = sqrt(n / n_base) that keeps the per-image SNR of n values equal to that of
    ``base_num_values`` values at the unshifted time (Esser et al. 2024, §5.3.2)."""
    check_positive(num_values, "num_values", integer=True)
    check_positive(base_num_values, "base_num_values", integer=True)
    return math.sqrt(num_values / base_num_values)


class Shifted:
    """Any time sampler followed by :func:`shift_time`."""

    def __init__(self, base, shift: float):
        check_positive(shift, "shift")
        self.base, self.shift = base, shift

    def __call__(self, n, generator=None, dtype=torch.float32):
        return shift_time(self.base(n, generator, dtype), self.shift)


class Discrete:
    """DDPM's k ~ U{0, …, T−1} mapped to continuous time by ``schedule.t_of_index``."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, n, generator=None, dtype=torch.float32):
        k = torch.randint(0, self.schedule.T, (n,), generator=generator)
        return self.schedule.t_of_index(k).to(dtype)


class Ladder:
    """One of L noise levels t_i = i/(L − 1), uniformly (NCSN's geometric σ ladder on ``VE``)."""

    def __init__(self, levels: int = 10):
        check_positive(levels, "levels", integer=True)
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        self.levels = levels

    def __call__(self, n, generator=None, dtype=torch.float32):
        return torch.randint(0, self.levels, (n,), generator=generator).to(dtype) / (
            self.levels - 1
        )
