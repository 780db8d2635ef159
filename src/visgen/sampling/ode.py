r"""Probability-flow ODE samplers in t: dx/dt = v(x, t) = α'_t x̂0 + σ'_t ε̂ (Song et al. 2021, eq. 13).

Each sampler is ``sample_<name>(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False)
-> x``: ``x`` is the state at ``ts[0]`` and the result the state at ``ts[-1]`` (or, with
``denoise_to_zero``, x̂0 there: one more NFE). NFE is counted by the Denoiser (``den.nfe``).
``callback(i, t, x, prediction)`` sees the first model evaluation of step i. The exponential
integrators in λ (DDIM, DPM-Solver, UniPC) are in :mod:`visgen.sampling.ddim`,
:mod:`~visgen.sampling.dpm_solver` and :mod:`~visgen.sampling.unipc`.
"""

from __future__ import annotations

import torch

from visgen.param import Denoiser
from visgen.sampling._common import denoise_to_zero as _denoise
from visgen.sampling.grids import schedule_on_grid

__all__ = ["sample_euler", "sample_heun"]


@torch.no_grad()
def sample_euler(
    den: Denoiser, x: torch.Tensor, ts, cond=None, *, callback=None, denoise_to_zero=False
) -> torch.Tensor:
    """Euler's method on the PF-ODE: x_s = x_t + (s − t) v(x_t, t). Order 1; n steps = n NFE."""
    g = schedule_on_grid(den.schedule, ts)
    for i in range(len(g.t) - 1):
        t, s = g.t[i], g.t[i + 1]
        pred = den(x, t, cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, t, x, pred)
        x = x + (s - t) * pred.velocity
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_heun(
    den: Denoiser, x: torch.Tensor, ts, cond=None, *, callback=None, denoise_to_zero=False
) -> torch.Tensor:
    """Heun's method (explicit trapezoid; Karras et al. 2022, Alg. 1). Order 2, 2 NFE per step.

    A step that ends at t = 0 takes the Euler update, as in EDM: the velocity is not defined
    at σ = 0. n steps cost 2n NFE, or 2n − 1 when the grid ends at 0.
    """
    g = schedule_on_grid(den.schedule, ts)
    for i in range(len(g.t) - 1):
        t, s = g.t[i], g.t[i + 1]
        pred = den(x, t, cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, t, x, pred)
        v = pred.velocity
        x_euler = x + (s - t) * v
        if s == 0:
            x = x_euler
        else:
            v_next = den(x_euler, s, cond, coefficients=g.coefficients[i + 1]).velocity
            x = x + (s - t) * 0.5 * (v + v_next)
    return _denoise(den, x, g, cond) if denoise_to_zero else x
