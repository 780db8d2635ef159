r"""Probability-flow ODE samplers: dx/dt = v(x, t) = α'_t x̂0 + σ'_t ε̂ (Song et al. 2021, eq. 13).

Each sampler is ``sample_<name>(den, x, ts, cond=None, *, callback=None) -> x``: ``x`` is the
state at ``ts[0]`` and the result the state at ``ts[-1]``. NFE is counted by the Denoiser
(``den.nfe``). ``callback(i, t, x, prediction)`` sees every model evaluation of step i.
"""

from __future__ import annotations

import torch

from visgen.param import Denoiser
from visgen.sampling.grids import check_grid

__all__ = ["sample_euler", "sample_heun"]


@torch.no_grad()
def sample_euler(den: Denoiser, x: torch.Tensor, ts, cond=None, *, callback=None) -> torch.Tensor:
    """Euler's method on the PF-ODE: x_s = x_t + (s − t) v(x_t, t). Order 1; n steps = n NFE."""
    ts = check_grid(ts).tolist()
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        pred = den(x, t, cond)
        if callback is not None:
            callback(i, t, x, pred)
        x = x + (s - t) * pred.velocity
    return x


@torch.no_grad()
def sample_heun(den: Denoiser, x: torch.Tensor, ts, cond=None, *, callback=None) -> torch.Tensor:
    """Heun's method (explicit trapezoid; Karras et al. 2022, Alg. 1). Order 2, 2 NFE per step.

    A step that ends at t = 0 takes the Euler update, as in EDM: the velocity is not defined
    at σ = 0. n steps cost 2n NFE, or 2n − 1 when the grid ends at 0.
    """
    ts = check_grid(ts).tolist()
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        pred = den(x, t, cond)
        if callback is not None:
            callback(i, t, x, pred)
        v = pred.velocity
        x_euler = x + (s - t) * v
        x = x_euler if s == 0 else x + (s - t) * 0.5 * (v + den(x_euler, s, cond).velocity)
    return x
