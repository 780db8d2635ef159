r"""Loss weightings, stated on the x0 scale and converted to whichever target is regressed.

For a prediction error Δ, ‖Δ_target‖² = c_target(t) ‖Δ_x0‖² with

* ε:  c = SNR = α²/σ²   (so the plain ε-loss is the SNR-weighted x0-loss),
* v:  c = (α² + σ²)²/σ²,
* velocity: c = (α' − σ' α/σ)²,   score: c = α²/σ⁴.

A weighting w_x0(t) on the x0 scale becomes w_x0/c_target on the target's scale, which keeps
``snr``, ``min_snr`` (Hang et al. 2023, arXiv 2303.09556) and ``edm`` (Karras et al. 2022,
eq. 8, λ = (σ² + σ_d²)/(σ σ_d)²) meaningful whatever the network predicts.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice
from visgen.param import PREDICTIONS

__all__ = ["WEIGHTINGS", "loss_weight", "target_scale"]

WEIGHTINGS = ("none", "snr", "min_snr", "edm")


def target_scale(target: str, t: torch.Tensor, schedule) -> torch.Tensor:
    """c_target(t): squared error on `target` per unit squared error on x0."""
    check_choice(target, "target", PREDICTIONS)
    a, s = schedule.alpha(t), schedule.sigma(t)
    if target == "x0":
        return torch.ones_like(t)
    if target == "eps":
        return (a / s) ** 2
    if target == "v":
        return (a**2 + s**2) ** 2 / s**2
    if target == "score":
        return a**2 / s**4
    return (schedule.d_alpha(t) - schedule.d_sigma(t) * a / s) ** 2


def loss_weight(
    name: str,
    t: torch.Tensor,
    schedule,
    target: str,
    *,
    gamma: float = 5.0,
    sigma_data: float = 0.5,
) -> torch.Tensor:
    """Per-sample weight (B,) for the squared error on `target` at times t.

    ``none``: 1 on the target's own scale. ``snr``: the ε-loss. ``min_snr``: min(SNR, γ) on
    the x0 scale. ``edm``: (σ̃² + σ_d²)/(σ̃ σ_d)² with σ̃ = σ/α on the x0 scale.
    """
    check_choice(name, "weighting", WEIGHTINGS)
    if name == "none":
        return torch.ones_like(t)
    snr = (schedule.alpha(t) / schedule.sigma(t)) ** 2
    if name == "snr":
        w = snr
    elif name == "min_snr":
        w = torch.clamp(snr, max=gamma)
    else:
        sig = schedule.sigma(t) / schedule.alpha(t)
        w = (sig**2 + sigma_data**2) / (sig * sigma_data) ** 2
    return w / target_scale(target, t, schedule)
