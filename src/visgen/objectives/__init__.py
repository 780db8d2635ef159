"""Training objectives: losses, weightings and time samplers."""

from visgen.objectives.losses import (
    ddpm_loss,
    diffusion_loss,
    dsm_loss,
    flow_matching_loss,
    noisy_sample,
)
from visgen.objectives.timesteps import (
    Discrete,
    Ladder,
    LogitNormal,
    Shifted,
    Uniform,
    resolution_shift,
    shift_time,
)
from visgen.objectives.weighting import loss_weight, target_scale

__all__ = [
    "Discrete",
    "Ladder",
    "LogitNormal",
    "Shifted",
    "Uniform",
    "ddpm_loss",
    "diffusion_loss",
    "dsm_loss",
    "flow_matching_loss",
    "loss_weight",
    "noisy_sample",
    "resolution_shift",
    "shift_time",
    "target_scale",
]
