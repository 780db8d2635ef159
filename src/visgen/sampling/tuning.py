r"""Time grids optimised for a model, a solver and a budget: LD3's objective (Tong et al. 2025,
"Learning to Discretize Denoising Diffusion ODEs", arXiv 2405.15506, §3).

A few-step solver's error depends mostly on *where* it evaluates the model. LD3 treats the k
points of the grid as parameters and minimises the global truncation error on a calibration
set of noises x_T,

.. math:: \mathcal L(t_1, …, t_{k−1}) = \mathbb E_{x_T}\, \lVert Ψ_{t_{1:k}}(x_T) − Ψ^*(x_T)\rVert^2,

where Ψ is the solver on the grid (ending with the denoising step at t = 0) and Ψ* a converged
teacher solve of the same ODE from the same x_T. The grid is tied to the model, the solver
and the NFE, and any solver of :data:`~visgen.sampling.solvers.SOLVERS` can use it.

CPU simplifications: the hard objective above (LD3's soft variant also moves x_T inside a small
ball), and no back-propagation through the sampler: the grid is parametrised in log-SNR
λ = log(α/σ) and optimised by Nelder–Mead (scipy) in two stages, started from each standard
grid of the same cost (the objective is not convex) — first a three-parameter warp λ_i = λ_0 + (λ_e − λ_0) I_{i/(k−1)}(a, b) (the regularised incomplete beta function:
monotone, uniform-in-λ at a = b = 1, last point λ_e free), then every point from there. The
warp stage alone generalises best when evaluations are scarce; the free stage refines it.
Measured (``benchmarks/solvers.py``, BENCHMARKS.md): on the course's Gaussian-mixture problem
the best tuned grid has 0.14–0.20× the error of diffusers' best of 350 scheduler configurations
at 5–20 NFE (0.34× at 4); on the digits MLP 0.31–0.62× at 4–20 NFE; on the digits U-Net
0.46–0.99× at 4–20 NFE (0.88× and 0.91× at 4 and 5 NFE, where it lost before the starts that
end one step earlier were added).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import betainc, expit

from visgen.param import Denoiser
from visgen.sampling import grids
from visgen.sampling.solvers import SOLVERS, Solver, grid_for_nfe, sample, steps_for_nfe
from visgen.schedules import get_schedule

__all__ = ["NOISE_EPS", "grid_error", "noise_start", "optimize_grid"]

NOISE_EPS = 1e-5


def noise_start(schedule) -> float:
    """t = 1 where λ(1) is finite, else 1 − ``NOISE_EPS`` (λ ≈ −11.5 for flow matching)."""
    lam = get_schedule(schedule).logsnr(torch.tensor(1.0, dtype=torch.float64))
    return (
        1.0 if bool(torch.isfinite(lam)) and abs(lam.item()) <= grids.LOGSNR_MAX else 1 - NOISE_EPS
    )


def grid_error(den: Denoiser, solver: Solver, ts: torch.Tensor, x, reference, cond=None) -> float:
    """RMS over the batch of ‖Ψ_ts(x) − reference‖ (inf when the solve is not finite)."""
    out = solver.fn(den, x, ts, cond)
    err = (out - reference).flatten(1).pow(2).sum(1).mean().sqrt().item()
    return err if math.isfinite(err) else math.inf


def optimize_grid(
    den: Denoiser,
    solver: str,
    nfe: int,
    x: torch.Tensor,
    cond=None,
    *,
    reference: torch.Tensor | None = None,
    evaluations: int | None = None,
    t_start: float | None = None,
) -> torch.Tensor:
    """LD3's grid for ``solver`` at ``nfe`` evaluations (ending at clean data), fitted on the
    calibration states ``x`` at ``t_start``.

    ``t_start`` (default :func:`noise_start`): t = 1, or just below it where λ(1) = −∞ (flow
    matching), so that pure noise is the start state to within 1e-5 and the optimiser, not a
    fixed clip, decides where the first step lands. ``reference``: the converged solution
    from x (default: UniPC with 200 NFE on the λ-uniform grid from ``t_start``).
    ``evaluations``: solver runs allowed (default 80 + 40 per free point). Returns a float64
    grid from ``t_start`` to 0 that :func:`~visgen.sampling.solvers.sample` accepts for
    ``nfe``: the best of the standard grids if the search finds nothing better.
    """
    info = SOLVERS[solver] if isinstance(solver, str) else solver
    steps = steps_for_nfe(nfe, info)
    schedule = den.schedule
    t_start = noise_start(schedule) if t_start is None else t_start
    if steps == 1:
        return torch.tensor([t_start, 0.0], dtype=torch.float64)  # one denoising step
    if reference is None:
        fine = grid_for_nfe(200, "unipc", schedule, "logsnr", t_start=t_start)
        reference = sample(den, x, 200, "unipc", fine, cond)
    lam_0 = schedule.logsnr(torch.tensor(t_start, dtype=torch.float64)).item()
    span = grids.LOGSNR_MAX - lam_0  # the last point may go up to λ = LOGSNR_MAX
    free = steps - 1  # λ_1..λ_{k−1}; then t = 0
    budget = evaluations if evaluations is not None else 80 + 40 * free
    evaluated = []  # (error, grid) of every grid tried

    def error_of(lam: np.ndarray) -> float:
        ts = schedule.t_from_logsnr(torch.as_tensor(lam, dtype=torch.float64)).double()
        ts = torch.cat([ts.new_tensor([t_start]), ts, ts.new_zeros(1)])
        if not (bool((ts[1:] < ts[:-1]).all()) and ts[-2] > 0):
            return math.inf
        err = grid_error(den, info, ts, x, reference, cond)
        evaluated.append((err, ts))
        return err

    u = np.arange(1, free + 1) / free

    def warp(p):  # (log a, log b, logit of λ_e's place in (λ_0, λ_0 + span))
        return lam_0 + span * expit(p[2]) * betainc(math.exp(p[0]), math.exp(p[1]), u)

    def points(z):  # softmax increments; the last one is the slack below λ_0 + span
        w = np.exp(z - z.max())
        return lam_0 + span * np.cumsum(w / w.sum())[:-1]

    # stage 0: the standard grids of the same cost, started at t_start, each also ending one
    # step earlier (the grid of one more step without its clipped last point): at 4–5 NFE a
    # step from t_end ≈ 0 to 0 is nearly wasted, and a network's best grid may jump to 0
    # from far above it (diffusers' "trailing" spacing does)
    standard = []
    for kind in ("logsnr", "uniform", "edm"):
        longer = grid_for_nfe(nfe + info.per_step, info, schedule, kind)
        for interior in (grid_for_nfe(nfe, info, schedule, kind)[1:-1], longer[1:-2]):
            lam = schedule.logsnr(interior).numpy()
            standard.append((error_of(lam), lam))
    # stage 1: from the three best standard grids (the search is not convex: several starts),
    # the Beta warp closest to it, then Nelder–Mead on its three parameters
    for _, lam in sorted(standard, key=lambda e: e[0])[:3]:
        fit = minimize(lambda p, lam=lam: float(((warp(p) - lam) ** 2).sum()),
                       np.array([0.0, 0.0, 0.0]), method="Nelder-Mead")  # fmt: skip
        minimize(lambda p: error_of(warp(p)), fit.x, method="Nelder-Mead",
                 options={"maxfev": max(budget // 9, 15), "xatol": 1e-3, "fatol": 0.0})  # fmt: skip
    # stage 2: every point, from the best grid so far
    remaining = budget - len(evaluated)
    if remaining > free + 2:
        lam = schedule.logsnr(min(evaluated, key=lambda e: e[0])[1][1:-1]).numpy()
        increments = np.diff(np.concatenate([[lam_0], lam, [lam_0 + span]]))
        z0 = np.log(np.maximum(increments, 1e-9 * span))
        minimize(lambda z: error_of(points(z)), z0, method="Nelder-Mead",
                 options={"maxfev": remaining, "xatol": 1e-4, "fatol": 0.0})  # fmt: skip
    return min(evaluated, key=lambda e: e[0])[1]
