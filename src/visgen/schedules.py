r"""Noise schedules: the forward process :math:`x_t = \alpha_t x_0 + \sigma_t \varepsilon`.

Course convention: continuous time ``t ∈ [0, 1]``, **t = 0 is data, t = 1 is noise**.
Every schedule gives

* ``alpha(t)``, ``sigma(t)`` and their time derivatives ``d_alpha(t)``, ``d_sigma(t)``;
* ``logsnr(t)`` = λ = log(α/σ), strictly decreasing, and its inverse ``t_from_logsnr(λ)``;
* the SDE coefficients of ``dx = f(t) x dt + g(t) dw`` (Song et al. 2021, arXiv 2011.13456,
  eq. 5 and App. B): ``f = d log α / dt`` and ``g² = dσ²/dt − 2 f σ²``.

Schedules (all return tensors; time may be a float or a tensor):

==============  ============================================================================
``VPDiscrete``  DDPM (Ho et al. 2020): linear β from 1e-4 to 0.02, T = 1000; log α is
                interpolated linearly between the discrete steps (as in DPM-Solver).
``VPLinear``    continuous VP SDE, β(t) = β_min + t (β_max − β_min) (Song et al. 2021).
``VPCosine``    ᾱ(t) = cos²(π/2 (t + s)/(1 + s)) / cos²(π/2 s/(1 + s)) (Nichol & Dhariwal).
``VE``          α = 1, σ geometric from σ_min to σ_max (NCSN / VE SDE).
``EDM``         α = 1, σ(t) = (σ_min^{1/ρ} + t (σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ with the
                preconditioning of Karras et al. 2022 (arXiv 2206.00364, Table 1).
``Linear``      flow matching / rectified flow: α = 1 − t, σ = t.
==============  ============================================================================

The ends are singular for some schedules (λ = +∞ at t = 0 for ``Linear`` and the VP
schedules, whose σ(0) = 0; λ = −∞ at t = 1 for ``Linear`` and ``VPCosine``, whose α(1) = 0);
time grids in :mod:`visgen.sampling.grids` keep solvers away from them. The schedules
themselves are exact there in float32 and float64 on any CPU: α, σ, λ, t(λ), f and g are
finite or ±∞, never NaN (α(0) = 1, σ(0) = 0, λ(0) = +∞ and t(±∞) ∈ {0, 1} exactly for the
singular ones), because every formula is written so that rounding cannot leave the domain the
math defines (log α ≤ 0, σ ≥ 0), e.g. σ = √(−expm1(2 log α)) rather than √(1 − α²).
"""

from __future__ import annotations

import math

import torch

from visgen._checks import as_time, check_choice, check_positive

__all__ = [
    "EDM",
    "VE",
    "Linear",
    "Schedule",
    "VPCosine",
    "VPDiscrete",
    "VPLinear",
    "get_schedule",
    "SCHEDULES",
]


class Schedule:
    """Base class. Subclasses define ``log_alpha``/``log_sigma`` (or α, σ) and derivatives."""

    name = "schedule"

    # --- to override -------------------------------------------------------------------
    def alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t) -> torch.Tensor:
        """dα/dt."""
        raise NotImplementedError

    def d_sigma(self, t) -> torch.Tensor:
        """dσ/dt."""
        raise NotImplementedError

    # --- derived -----------------------------------------------------------------------
    def logsnr(self, t) -> torch.Tensor:
        """λ(t) = log(α_t / σ_t); +∞ where σ = 0, −∞ where α = 0."""
        t = as_time(t)
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def t_from_logsnr(self, lam) -> torch.Tensor:
        """Inverse of :meth:`logsnr` (bisection here; closed forms in subclasses)."""
        lam = _as_logsnr(lam)
        lo = torch.zeros_like(lam)
        hi = torch.ones_like(lam)
        for _ in range(100):  # λ is decreasing in t
            mid = 0.5 * (lo + hi)
            above = self.logsnr(mid) > lam
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def f(self, t) -> torch.Tensor:
        """Drift coefficient f(t) = d log α / dt of the forward SDE dx = f x dt + g dw."""
        t = as_time(t)
        return self.d_alpha(t) / self.alpha(t)

    def g(self, t) -> torch.Tensor:
        """Diffusion coefficient g(t) = sqrt(dσ²/dt − 2 f σ²)."""
        t = as_time(t)
        sigma = self.sigma(t)
        g2 = 2 * sigma * self.d_sigma(t) - 2 * self.f(t) * sigma**2
        return torch.sqrt(torch.clamp(g2, min=0))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _as_logsnr(lam) -> torch.Tensor:
    lam = torch.as_tensor(lam, dtype=lam.dtype if isinstance(lam, torch.Tensor) else torch.float64)
    if torch.isnan(lam).any():
        raise ValueError("lam (log-SNR) contains NaN")
    return lam


class _VP(Schedule):
    """Variance preserving: σ² = 1 − α². Subclasses give ``_log_alpha``, its derivative and
    its inverse; :meth:`log_alpha` clamps it to log α ≤ 0, so a rounding error of one ulp at
    t = 0 cannot make σ² = −expm1(2 log α) negative (and σ, λ NaN)."""

    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_log_alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def t_from_log_alpha(self, log_alpha) -> torch.Tensor:
        raise NotImplementedError

    def log_alpha(self, t) -> torch.Tensor:
        """log α(t) ≤ 0 (0 exactly at t = 0)."""
        return torch.clamp(self._log_alpha(as_time(t)), max=0)

    def alpha(self, t):
        return torch.exp(self.log_alpha(t))

    def sigma(self, t):
        # abs: σ(0) = +0, not −0 (log α = +0 gives −expm1(0) = −0), so that 1/σ(0) = +∞
        return torch.sqrt(-torch.expm1(2 * self.log_alpha(t))).abs()

    def d_alpha(self, t):
        t = as_time(t)
        return self.alpha(t) * self.d_log_alpha(t)

    def d_sigma(self, t):
        # σσ' = −αα'; written with α' (finite where α = 0) rather than α² d log α/dt
        t = as_time(t)
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)

    def logsnr(self, t):
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))

    def t_from_logsnr(self, lam):
        # α² = sigmoid(2λ)  ⇒  log α = −½ softplus(−2λ), softplus(x) = max(x, 0) + log1p(e^{−|x|})
        # (exact to rounding for every x; torch's softplus returns x itself above x = 20)
        x = -2 * _as_logsnr(lam)
        return self.t_from_log_alpha(-0.5 * (x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))))

    def f(self, t):
        return self.d_log_alpha(as_time(t))

    def g(self, t):
        # g² = dσ²/dt − 2fσ² = −2 α² f − 2 f σ² = −2 f = β(t)
        return torch.sqrt(torch.clamp(-2 * self.d_log_alpha(as_time(t)), min=0))


class VPDiscrete(_VP):
    """DDPM's discrete schedule (Ho et al. 2020, arXiv 2006.11239, §4): β_k linear, k = 0..T−1
    (any other β by :meth:`from_betas`).

    ᾱ_k = Π_{i≤k} (1 − β_i) and α = √ᾱ. Discrete step k sits at continuous time
    ``t = (k + 1) / T`` (:meth:`t_of_index`, the one place this mapping is defined); in
    between, log α is linear in t and log α(0) = 0, as in DPM-Solver's discrete wrapper.
    """

    name = "vp_discrete"

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, T: int = 1000):
        check_positive(T, "T", integer=True)
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
            )
        self._set_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def from_betas(cls, betas) -> VPDiscrete:
        """The discrete schedule of given β_0..β_{T−1} (e.g. Stable Diffusion's "scaled_linear"
        or the cosine β of Nichol & Dhariwal, as a diffusers scheduler holds them)."""
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(
                f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}"
            )
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must lie in (0, 1) (β = 1 gives ᾱ = 0: a zero-SNR last step)")
        schedule = cls.__new__(cls)
        schedule._set_betas(betas)
        return schedule

    def _set_betas(self, betas: torch.Tensor) -> None:
        self.beta_start, self.beta_end, self.T = betas[0].item(), betas[-1].item(), len(betas)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)
        log_alpha = 0.5 * torch.log(self.alphas_cumprod)
        self._knots_t = torch.arange(self.T + 1, dtype=torch.float64) / self.T
        self._knots_log_alpha = torch.cat([torch.zeros(1, dtype=torch.float64), log_alpha])
        self._slopes = torch.diff(self._knots_log_alpha) * self.T

    def t_of_index(self, k) -> torch.Tensor:
        """Continuous time of discrete step k ∈ {0, …, T−1}: t = (k + 1)/T."""
        k = torch.as_tensor(k)
        if ((k < 0) | (k > self.T - 1)).any():
            raise ValueError(f"k must be in [0, {self.T - 1}], got {k}")
        return (k.to(torch.float64) + 1) / self.T

    def index_of_t(self, t) -> torch.Tensor:
        """Inverse of :meth:`t_of_index` (fractional for times between steps)."""
        return as_time(t) * self.T - 1

    def _segment(self, t: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.ceil(t * self.T).long() - 1, 0, self.T - 1)

    def _log_alpha(self, t):
        i = self._segment(t)
        knots_t, knots, slopes = (
            a.to(t.dtype) for a in (self._knots_t, self._knots_log_alpha, self._slopes)
        )
        return knots[i] + slopes[i] * (t - knots_t[i])

    def d_log_alpha(self, t):
        t = as_time(t)
        return self._slopes.to(t.dtype)[self._segment(t)]

    def t_from_log_alpha(self, log_alpha):
        knots = self._knots_log_alpha.to(log_alpha.dtype)
        # knots decrease; search in the negated (increasing) sequence
        i = torch.searchsorted(-knots, -log_alpha.contiguous(), right=False).clamp(1, self.T) - 1
        slopes, knots_t = self._slopes.to(log_alpha.dtype), self._knots_t.to(log_alpha.dtype)
        return torch.clamp(knots_t[i] + (log_alpha - knots[i]) / slopes[i], 0, 1)


class VPLinear(_VP):
    """Continuous VP SDE with β(t) = β_min + t(β_max − β_min) (Song et al. 2021, eq. 32).

    log α(t) = −¼ t² (β_max − β_min) − ½ t β_min.
    """

    name = "vp_linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def d_log_alpha(self, t):
        t = as_time(t)
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))

    def t_from_log_alpha(self, log_alpha):
        # the root of a t² + b t + log α = 0 in the form without cancellation at small t
        a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
        t = -2 * log_alpha / (b + torch.sqrt(b**2 - 4 * a * log_alpha))
        return torch.where(torch.isinf(log_alpha), 1.0, t).clamp(0, 1)


class VPCosine(_VP):
    """Cosine schedule (Nichol & Dhariwal 2021, arXiv 2102.09672, eq. 17): α(t) = cos(φ(t))/cos(φ(0)).

    φ(t) = π/2 (t + s)/(1 + s). α(1) = 0, so λ(1) = −∞ and f, g blow up at t = 1.

    Evaluated without cancellation at both ends: with δ = φ(t) − φ(0) = π/2 t/(1 + s),
    α = cos δ − tan φ(0) sin δ, so log α = log1p(−2 sin²(δ/2) − tan φ(0) sin δ) is exactly
    0 at t = 0 and accurate to relative rounding for small t; near t = 1,
    α = sin(π/2 (1 − t)/(1 + s))/cos φ(0) is exactly 0 at t = 1.
    """

    name = "vp_cosine"

    def __init__(self, s: float = 0.008):
        if not s > 0:
            raise ValueError(f"s must be positive, got {s}")
        self.s = s
        phi0 = math.pi / 2 * s / (1 + s)
        self._cos0, self._sin0, self._tan0 = math.cos(phi0), math.sin(phi0), math.tan(phi0)
        self._log_cos0 = math.log(self._cos0)
        self._rate = math.pi / 2 / (1 + s)  # dφ/dt

    def _log_alpha(self, t):
        delta, rest = self._rate * t, self._rate * (1 - t)  # φ(t) − φ(0), π/2 − φ(t)
        near_data = torch.log1p(
            torch.clamp(-2 * torch.sin(delta / 2) ** 2 - self._tan0 * torch.sin(delta), min=-1)
        )
        near_noise = torch.log(torch.sin(rest)) - self._log_cos0
        return torch.where(t < 0.5, near_data, near_noise)

    def d_log_alpha(self, t):
        rest = self._rate * (1 - as_time(t))  # tan φ(t) = cot(π/2 − φ(t)): +∞ at t = 1
        return -self._rate * torch.cos(rest) / torch.sin(rest)

    def d_alpha(self, t):
        return -self._rate * torch.cos(self._rate * (1 - as_time(t))) / self._cos0

    def t_from_log_alpha(self, log_alpha):
        # cos φ = α cos φ(0), and δ = φ − φ(0) from sin δ, cos δ written without cancellation:
        # sin φ = √(σ² + α² sin² φ(0)),  sin δ = cos φ(0) σ² / (sin φ + α sin φ(0)),
        # cos δ = α cos² φ(0) + sin φ(0) sin φ
        alpha, sigma2 = torch.exp(log_alpha), -torch.expm1(2 * log_alpha)
        sin_phi = torch.sqrt(sigma2 + (alpha * self._sin0) ** 2)
        sin_delta = self._cos0 * sigma2 / (sin_phi + alpha * self._sin0)
        cos_delta = alpha * self._cos0**2 + self._sin0 * sin_phi
        t = torch.atan2(sin_delta, cos_delta) / self._rate
        return torch.where(torch.isinf(log_alpha), 1.0, t).clamp(0, 1)


class _AlphaOne(Schedule):
    """α = 1 (variance exploding). Subclasses give σ(t), dσ/dt and t(σ)."""

    def alpha(self, t):
        return torch.ones_like(as_time(t))

    def d_alpha(self, t):
        return torch.zeros_like(as_time(t))

    def t_from_sigma(self, sigma) -> torch.Tensor:
        raise NotImplementedError

    def logsnr(self, t):
        return -torch.log(self.sigma(t))

    def t_from_logsnr(self, lam):
        return torch.clamp(self.t_from_sigma(torch.exp(-_as_logsnr(lam))), 0, 1)

    def f(self, t):
        return torch.zeros_like(as_time(t))


class VE(_AlphaOne):
    """Variance exploding SDE (Song et al. 2021, eq. 30): σ(t) = σ_min (σ_max/σ_min)^t.

    σ_max should be of the order of the data diameter (Song & Ermon 2020). At t = 0 the
    noise level is σ_min, not 0: the data are reached by a final denoising step.
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self._log_ratio = math.log(sigma_max / sigma_min)

    def sigma(self, t):
        return self.sigma_min * torch.exp(as_time(t) * self._log_ratio)

    def d_sigma(self, t):
        return self.sigma(t) * self._log_ratio

    def t_from_sigma(self, sigma):
        return (torch.log(sigma) - math.log(self.sigma_min)) / self._log_ratio


class EDM(_AlphaOne):
    """EDM (Karras et al. 2022, arXiv 2206.00364): α = 1, σ on the ρ-warped interval.

    σ(t) = (σ_min^{1/ρ} + t (σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ, so a grid uniform in t is the
    paper's eq. 5 discretisation. :meth:`precondition` gives Table 1's network scalings.
    """

    name = "edm"

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        sigma_data: float = 0.5,
    ):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        check_positive(rho, "rho")
        check_positive(sigma_data, "sigma_data")
        self.sigma_min, self.sigma_max, self.rho, self.sigma_data = (
            sigma_min,
            sigma_max,
            rho,
            sigma_data,
        )
        self._a = sigma_min ** (1 / rho)
        self._b = sigma_max ** (1 / rho) - self._a

    def sigma(self, t):
        return (self._a + as_time(t) * self._b) ** self.rho

    def d_sigma(self, t):
        return self.rho * self._b * (self._a + as_time(t) * self._b) ** (self.rho - 1)

    def t_from_sigma(self, sigma):
        return (sigma ** (1 / self.rho) - self._a) / self._b

    def precondition(self, sigma):
        """(c_skip, c_out, c_in, c_noise) of EDM Table 1 for noise level σ.

        The denoiser is D(x; σ) = c_skip x + c_out F(c_in x; c_noise).
        """
        sigma = torch.as_tensor(sigma)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / torch.sqrt(sigma**2 + sd2)
        c_in = 1 / torch.sqrt(sigma**2 + sd2)
        c_noise = 0.25 * torch.log(sigma)
        return c_skip, c_out, c_in, c_noise


class Linear(Schedule):
    """Flow matching / rectified flow path (Lipman et al. 2023; Liu et al. 2023): α = 1 − t, σ = t.

    The conditional velocity is dx_t/dt = ε − x0. λ = log((1 − t)/t), so t(λ) = sigmoid(−λ).
    """

    name = "linear"

    def alpha(self, t):
        return 1 - as_time(t)

    def sigma(self, t):
        return as_time(t).clone()

    def d_alpha(self, t):
        return -torch.ones_like(as_time(t))

    def d_sigma(self, t):
        return torch.ones_like(as_time(t))

    def logsnr(self, t):
        t = as_time(t)
        return torch.log1p(-t) - torch.log(t)

    def t_from_logsnr(self, lam):
        return torch.sigmoid(-_as_logsnr(lam))


SCHEDULES = {
    "vp_discrete": VPDiscrete,
    "ddpm": VPDiscrete,
    "vp_linear": VPLinear,
    "vp_cosine": VPCosine,
    "cosine": VPCosine,
    "ve": VE,
    "edm": EDM,
    "linear": Linear,
    "fm": Linear,
    "flow": Linear,
}


def get_schedule(name: str | Schedule, **kwargs) -> Schedule:
    """A schedule by name (``ddpm``, ``vp_linear``, ``cosine``, ``ve``, ``edm``, ``linear``/``fm``)."""
    if isinstance(name, Schedule):
        return name
    check_choice(name, "schedule", sorted(SCHEDULES))
    return SCHEDULES[name](**kwargs)
