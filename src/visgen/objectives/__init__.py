"""Training objectives: losses, weightings, time samplers, label dropout and REPA alignment."""

from visgen.nn.embeddings import drop_labels
from visgen.objectives.losses import (
    ddpm_loss,
    diffusion_loss,
    dsm_loss,
    flow_matching_loss,
    noisy_sample,
)
from visgen.objectives.repa import encoder_tokens, repa_loss, spatial_normalize
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
    "drop_labels",
    "dsm_loss",
    "encoder_tokens",
    "flow_matching_loss",
    "loss_weight",
    "noisy_sample",
    "repa_loss",
    "resolution_shift",
    "shift_time",
    "spatial_normalize",
    "target_scale",
]
