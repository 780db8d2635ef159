r"""Exact oracles: closed-form marginals, scores, denoisers and PF-ODE solutions.

For data :math:`p_0 = \sum_k w_k \mathcal N(\mu_k, s_k^2 I)` and any schedule (α_t, σ_t) the
noisy marginal is again a mixture:

.. math::
    p_t = \sum_k w_k \mathcal N(\alpha_t \mu_k, (\alpha_t^2 s_k^2 + \sigma_t^2) I), \quad
    E[x_0 | x_t] = \sum_k r_k(x_t)\Big[\mu_k + \frac{\alpha_t s_k^2 (x_t - \alpha_t\mu_k)}
    {\alpha_t^2 s_k^2 + \sigma_t^2}\Big],

with responsibilities r_k ∝ w_k N(x_t; α_t μ_k, …). A finite data set is the special case
s_k = 0: its posterior mean is the *ideal denoiser* (Karras et al. 2022, App. B.3;
Kadkhodaie et al. 2024), a softmax-weighted average of training points.
Everything is batched, differentiable and works in float64 for tight tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from visgen._checks import batch_time, check_tensor
from visgen.param import Denoiser
from visgen.schedules import Schedule, get_schedule

__all__ = [
    "DiracMixture",
    "GaussianMixture",
    "eight_gaussians",
    "gaussian_pfode",
    "reference_pfode",
]


class GaussianMixture:
    """Isotropic Gaussian mixture Σ_k w_k N(μ_k, s_k² I) with optional class labels.

    Args:
        means: (K, D) component means.
        stds: (K,) per-component standard deviations, or a float for all (0 allowed: Diracs).
        weights: (K,) non-negative weights (normalised here); uniform if omitted.
        labels: (K,) integer class of each component. A condition ``cond`` of shape (B,)
            restricts sample b to the components of class ``cond[b]`` (the class-conditional
            sub-mixture); ``cond[b] = -1`` (or ``cond=None``) means the full mixture.
    """

    def __init__(self, means, stds=1.0, weights=None, labels=None):
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        check_tensor(means, "means")
        K = means.shape[0]
        stds = torch.as_tensor(stds, dtype=means.dtype)
        stds = stds.expand(K).clone() if stds.dim() == 0 else stds
        if stds.shape != (K,):
            raise ValueError(f"stds must be a float or have shape ({K},), got {tuple(stds.shape)}")
        if (stds < 0).any() or torch.isnan(stds).any():
            raise ValueError("stds must be non-negative")
        weights = (
            torch.full((K,), 1.0 / K, dtype=means.dtype)
            if weights is None
            else torch.as_tensor(weights, dtype=means.dtype)
        )
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape ({K},), got {tuple(weights.shape)}")
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != (K,):
                raise ValueError(f"labels must have shape ({K},), got {tuple(labels.shape)}")
            if (labels < 0).any():
                raise ValueError("labels must be non-negative (-1 is reserved for 'unconditional')")
        self.means, self.stds, self.labels = means, stds, labels
        self.weights = weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def to(self, dtype: torch.dtype) -> GaussianMixture:
        """A copy in another floating dtype (float64 for tight tests)."""
        return type(self)(
            self.means.to(dtype), self.stds.to(dtype), self.weights.to(dtype), self.labels
        )

    def conditional(self, y: int) -> GaussianMixture:
        """The sub-mixture of class `y` (weights renormalised)."""
        if self.labels is None:
            raise ValueError("this mixture has no labels; pass labels= to condition on a class")
        keep = self.labels == y
        if not keep.any():
            raise ValueError(f"no component has label {y}")
        return GaussianMixture(
            self.means[keep], self.stds[keep], self.weights[keep], self.labels[keep]
        )

    # --- sampling ----------------------------------------------------------------------
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        cond=None,
        return_labels: bool = False,
    ):
        """n samples of the data distribution (t = 0); with ``cond`` (B = n labels) per class.

        Returns x (n, D), and with ``return_labels=True`` also each sample's class label
        (component index when the mixture has no labels).
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        logw = torch.log(self.weights).expand(n, -1)
        mask = self._cond_mask(cond, n)
        if mask is not None:
            logw = logw.masked_fill(~mask, -math.inf)
        k = torch.multinomial(torch.softmax(logw, 1), 1, generator=generator).squeeze(1)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        x = self.means[k] + self.stds[k, None] * z
        if return_labels:
            return x, (k if self.labels is None else self.labels[k])
        return x

    # --- closed forms ------------------------------------------------------------------
    def _cond_mask(self, cond, batch: int):
        if cond is None:
            return None
        cond = torch.as_tensor(cond, dtype=torch.long)
        if cond.shape != (batch,):
            raise ValueError(f"cond must have shape ({batch},), got {tuple(cond.shape)}")
        if self.labels is None:
            raise ValueError("cond given but this mixture has no labels")
        if (cond >= self.num_classes).any() or (cond < -1).any():
            raise ValueError(f"cond labels must be in [-1, {self.num_classes - 1}]")
        return (self.labels[None, :] == cond[:, None]) | (cond[:, None] == -1)

    def _responsibilities(self, x, t, schedule, cond):
        """log r_k (B, K) up to the normaliser, per-component marginal variances, α."""
        schedule = get_schedule(schedule)
        x = check_tensor(x, "x", min_dim=2)
        if x.shape[1] != self.dim or x.dim() != 2:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        t = batch_time(t, x)
        means, stds, weights = (a.to(x.dtype) for a in (self.means, self.stds, self.weights))
        alpha, sigma = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
        var = alpha**2 * stds[None, :] ** 2 + sigma**2  # (B, K)
        d2 = (
            (x**2).sum(1, keepdim=True)
            - 2 * alpha * (x @ means.T)
            + alpha**2 * (means**2).sum(1)[None]
        )
        d2 = d2.clamp_min(0)
        logits = (
            torch.log(weights)[None]
            - 0.5 * d2 / var
            - 0.5 * self.dim * torch.log(2 * math.pi * var)
        )
        mask = self._cond_mask(cond, x.shape[0])
        if mask is not None:
            logits = logits.masked_fill(~mask, -math.inf)
        return logits, var, alpha, means, stds

    def log_prob(self, x, t, schedule, cond=None) -> torch.Tensor:
        """log p_t(x) (B,), exactly."""
        logits, *_ = self._responsibilities(x, t, schedule, cond)
        return torch.logsumexp(logits, 1)

    def posterior_mean(self, x, t, schedule, cond=None) -> torch.Tensor:
        """E[x0 | x_t = x] (B, D): the optimal x0-predictor (Tweedie)."""
        logits, var, alpha, means, stds = self._responsibilities(x, t, schedule, cond)
        r = torch.softmax(logits, 1)  # (B, K)
        gain = alpha * stds[None] ** 2 / var  # (B, K)
        # Σ_k r_k [μ_k + gain_k (x − α μ_k)]
        return r @ means + (r * gain).sum(1, keepdim=True) * x - alpha * ((r * gain) @ means)

    def posterior_variance(self, x, t, schedule, cond=None) -> torch.Tensor:
        """tr Cov(x0 | x_t = x) (B,): the irreducible x0-MSE (summed over dims) at x.

        Each component's posterior is N(m_k, τ_k² I) with τ_k² = s_k² σ²/(α² s_k² + σ²), so
        tr Cov = Σ_k r_k (D τ_k² + ‖m_k‖²) − ‖Σ_k r_k m_k‖². The irreducible ε-MSE is
        (α/σ)² times this.
        """
        logits, var, alpha, means, stds = self._responsibilities(x, t, schedule, cond)
        r = torch.softmax(logits, 1)
        gain = alpha * stds[None] ** 2 / var
        m = means[None] + gain[..., None] * (
            x[:, None] - alpha[..., None] * means[None]
        )  # (B, K, D)
        tau2 = stds[None] ** 2 * (var - alpha**2 * stds[None] ** 2) / var
        second = (r * (self.dim * tau2 + (m**2).sum(2))).sum(1)
        return second - ((r[..., None] * m).sum(1) ** 2).sum(1)

    def score(self, x, t, schedule, cond=None) -> torch.Tensor:
        """∇_x log p_t(x) (B, D) = Σ_k r_k (α μ_k − x)/v_k."""
        logits, var, alpha, means, _ = self._responsibilities(x, t, schedule, cond)
        rv = torch.softmax(logits, 1) / var
        return alpha * (rv @ means) - rv.sum(1, keepdim=True) * x

    def denoiser(self, schedule: Schedule | str = "linear") -> Denoiser:
        """The exact denoiser as a :class:`~visgen.param.Denoiser` (x0-prediction).

        Its ``cond`` argument takes class labels (B,), −1 for unconditional.
        """
        schedule = get_schedule(schedule)
        return Denoiser(_PosteriorMeanModel(self, schedule), schedule, "x0")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.means.shape[0]}, D={self.dim})"


class _PosteriorMeanModel:
    """``model(x, t, cond) = E[x0 | x_t]`` for an analytic mixture, any data shape."""

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        self.mixture, self.schedule = mixture, schedule

    def __call__(self, x, t, cond=None):
        flat = x.reshape(x.shape[0], -1)
        return self.mixture.posterior_mean(flat, t, self.schedule, cond).reshape(x.shape)


class DiracMixture(GaussianMixture):
    """A finite data set as a mixture of Diracs; its posterior mean is the ideal denoiser.

    D*(x_t) = Σ_j softmax_j(−‖x_t − α_t x_j‖² / 2σ_t²) x_j. As σ → 0 it returns
    the nearest training point (memorisation); as σ → ∞ the (class) mean.

    Args:
        points: (N, ...) training samples of any shape (images included).
        labels: optional (N,) class labels for the class-conditional ideal denoiser.
    """

    def __init__(self, points, labels=None):
        points = torch.as_tensor(points)
        if points.dim() < 2:
            raise ValueError(f"points must have shape (N, ...), got {tuple(points.shape)}")
        self.sample_shape = tuple(points.shape[1:])
        super().__init__(points.reshape(points.shape[0], -1), 0.0, None, labels)

    def posterior_mean(self, x, t, schedule, cond=None):
        flat = x.reshape(x.shape[0], -1)
        return super().posterior_mean(flat, t, schedule, cond).reshape(x.shape)

    def sample(self, n, generator=None, *, cond=None, return_labels=False):
        out = super().sample(n, generator, cond=cond, return_labels=return_labels)
        if return_labels:
            return out[0].reshape(n, *self.sample_shape), out[1]
        return out.reshape(n, *self.sample_shape)

    def to(self, dtype):
        return DiracMixture(self.means.to(dtype).reshape(-1, *self.sample_shape), self.labels)


def eight_gaussians(radius: float = 2.0, std: float = 0.3, dtype=torch.float32) -> GaussianMixture:
    """The course's 2D target: 8 equal Gaussians on a circle; component k has class label k."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return GaussianMixture(means.to(dtype), std, labels=torch.arange(8))


def gaussian_pfode(x, t, r, schedule: Schedule | str, mean=0.0, std=1.0) -> torch.Tensor:
    r"""Closed-form PF-ODE flow map Ψ_{t→r} for Gaussian data N(μ, c² I), any schedule.

    The marginal is N(α_t μ, s_t² I) with s_t = sqrt(α_t² c² + σ_t²); the PF-ODE is linear,
    so the standardised coordinate (x − α_t μ)/s_t is conserved:

    .. math:: Ψ_{t→r}(x) = α_r μ + (s_r / s_t)(x − α_t μ).

    For the VE SDE with σ(t) = t (g = √(2t), homework 1) this is
    x_r = x_t sqrt((c² + r²)/(c² + t²)).
    """
    schedule = get_schedule(schedule)
    x = check_tensor(x, "x")
    t = batch_time(t, x, "t") if x.dim() > 1 else torch.as_tensor(t, dtype=x.dtype)
    r = batch_time(r, x, "r") if x.dim() > 1 else torch.as_tensor(r, dtype=x.dtype)
    mean = torch.as_tensor(mean, dtype=x.dtype)
    std = torch.as_tensor(std, dtype=x.dtype)

    def coeffs(u):
        a, s = schedule.alpha(u), schedule.sigma(u)
        if x.dim() > 1:
            a, s = a.reshape(-1, *[1] * (x.dim() - 1)), s.reshape(-1, *[1] * (x.dim() - 1))
        return a, torch.sqrt(a**2 * std**2 + s**2)

    a_t, s_t = coeffs(t)
    a_r, s_r = coeffs(r)
    return a_r * mean + (s_r / s_t) * (x - a_t * mean)


def reference_pfode(
    den: Denoiser,
    x,
    t_from: float,
    t_to: float,
    cond=None,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    t_eval=None,
):
    """High-accuracy PF-ODE solution dx/dt = velocity(x, t) with scipy's DOP853, in float64.

    Meant as the reference for solver tests on small data. Returns x at ``t_to`` with x's
    shape, or, with ``t_eval`` (a sequence of times between the two), a tensor
    (len(t_eval), *x.shape) of the trajectory at those times.
    """
    from scipy.integrate import solve_ivp

    x = check_tensor(x, "x", min_dim=2)
    for name, value in (("t_from", t_from), ("t_to", t_to)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    shape = x.shape

    def rhs(t, y):
        xt = torch.from_numpy(y).reshape(shape)
        with torch.no_grad():
            return den.velocity(xt, float(t), cond).reshape(-1).double().numpy()

    sol = solve_ivp(
        rhs,
        (t_from, t_to),
        x.detach().double().reshape(-1).numpy(),
        method="DOP853",
        rtol=rtol,
        atol=atol,
        t_eval=None if t_eval is None else np.asarray(t_eval, float),
    )
    if not sol.success:
        raise RuntimeError(f"reference PF-ODE solve failed: {sol.message}")
    if t_eval is None:
        return torch.from_numpy(sol.y[:, -1]).reshape(shape)
    return torch.from_numpy(sol.y.T.copy()).reshape(len(sol.t), *shape)
