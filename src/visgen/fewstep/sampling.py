r"""Few-step sampling of a generator that predicts x0 from x_t (a consistency-type model).

The multistep consistency sampler (Song et al. 2023, arXiv 2303.01469, Alg. 1): predict the
clean sample, re-noise it to the next level with fresh noise, predict again,

.. math:: \hat x_0 = f_θ(x_{t_i}, t_i), \qquad x_{t_{i+1}} = α_{t_{i+1}} \hat x_0 + σ_{t_{i+1}} z.

Any few-step student exposed as an x0-predicting :class:`~visgen.param.Denoiser` (consistency
models, DMD/ADD/LADD generators, multi-boundary models at their boundaries) is sampled with
it, so methods are compared at equal NFE with one sampler.
"""

from __future__ import annotations

import torch

from visgen.param import Denoiser
from visgen.sampling.grids import check_grid

__all__ = ["sample_consistency"]


@torch.no_grad()
def sample_consistency(
    den: Denoiser, x: torch.Tensor, ts, cond=None, *, generator=None, callback=None
) -> torch.Tensor:
    """Multistep consistency sampling over ``ts`` (decreasing, ending at 0).

    The network is evaluated at every time of ``ts`` except the last (0): ``len(ts) − 1`` NFE.
    ``[1, 0]`` is one-step generation; ``[1, 0.5, 0]`` re-noises once to t = 0.5. Levels must
    be visited in decreasing order and each re-noising goes to the *next* level (a
    lecture-6 pitfall).
    """
    ts = check_grid(ts)
    if ts[-1] != 0:
        raise ValueError(f"ts must end at 0 (the data), got {ts[-1].item()}")
    times = ts.tolist()
    alphas, sigmas = den.schedule.alpha(ts).tolist(), den.schedule.sigma(ts).tolist()
    for i, t in enumerate(times[:-1]):
        pred = den(x, t, cond)
        if callback is not None:
            callback(i, t, x, pred)
        x0 = pred.x0
        if times[i + 1] == 0:
            return x0
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = alphas[i + 1] * x0 + sigmas[i + 1] * z
    raise AssertionError("unreachable: ts ends at 0")
