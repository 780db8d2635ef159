"""visgen: reference implementations of the methods of a course on visual generative modelling.

Conventions (docs/ARCHITECTURE.md): continuous time t ∈ [0, 1] with t = 0 data and t = 1 noise,
x_t = α_t x0 + σ_t ε; images (B, C, H, W) in [-1, 1]; models are called model(x, t, cond).
"""

from visgen.config import budget, fast_mode, is_fast, set_threads
from visgen.param import Denoiser, Prediction, convert
from visgen.schedules import get_schedule

__version__ = "0.1.0"

__all__ = [
    "Denoiser",
    "Prediction",
    "budget",
    "convert",
    "fast_mode",
    "get_schedule",
    "is_fast",
    "set_threads",
]
