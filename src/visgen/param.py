r"""Prediction types and the `Denoiser`: the one module that converts between parametrisations.

With :math:`x_t = \alpha_t x_0 + \sigma_t \varepsilon` a network may predict

==============  ======================================================================
``eps``         the noise ε (DDPM)
``x0``          the clean sample x0 (EDM's denoiser D, JiT's "x-prediction")
``v``           v = α ε − σ x0 (Salimans & Ho 2022, arXiv 2202.00512, §4)
``velocity``    the PF-ODE velocity dx/dt = α' x0 + σ' ε (flow matching: ε − x0)
``score``       ∇ log p_t(x) = −ε/σ (Tweedie; Song & Ermon 2019)
==============  ======================================================================

Each is an affine function of (x0, ε) given x_t, so all conversions go through that pair.
For the optimal predictor the same identities hold between posterior means
(x̂0 = E[x0 | x_t], ε̂ = E[ε | x_t]); the PF-ODE drift of Song et al. 2021 (eq. 13),
``f x − ½ g² ∇log p``, equals α' x̂0 + σ' ε̂.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from visgen._checks import batch_time, check_choice, check_tensor, expand_to
from visgen.schedules import Schedule, get_schedule

__all__ = ["PREDICTIONS", "Denoiser", "Prediction", "convert", "to_x0_eps", "from_x0_eps"]

PREDICTIONS = ("eps", "x0", "v", "velocity", "score")


def _coefficients(
    schedule: Schedule, t: torch.Tensor, x: torch.Tensor, derivatives: bool = False, given=None
):
    if given is not None and (len(given) == 4 or not derivatives):
        # (α, σ) or (α, σ, α', σ') at t, precomputed by a sampler for its grid
        return tuple(given) if derivatives else tuple(given[:2])
    a, s = expand_to(schedule.alpha(t), x), expand_to(schedule.sigma(t), x)
    if not derivatives:
        return a, s
    return a, s, expand_to(schedule.d_alpha(t), x), expand_to(schedule.d_sigma(t), x)


def to_x0_eps(
    pred: torch.Tensor,
    kind: str,
    x: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    coefficients=None,
):
    """(x0, ε) implied by a prediction of type `kind` at (x_t, t). t has shape (B,) or ().

    ``coefficients`` = (α_t, σ_t) or (α_t, σ_t, α'_t, σ'_t) skips evaluating the schedule
    at t (the derivatives are needed for the velocity only).
    """
    check_choice(kind, "prediction", PREDICTIONS)
    if kind == "x0":
        a, s = _coefficients(schedule, t, x, given=coefficients)
        return pred, (x - a * pred) / s
    if kind == "eps":
        a, s = _coefficients(schedule, t, x, given=coefficients)
        return (x - s * pred) / a, pred
    if kind == "score":
        a, s = _coefficients(schedule, t, x, given=coefficients)
        return (x + s**2 * pred) / a, -s * pred
    if kind == "v":
        a, s = _coefficients(schedule, t, x, given=coefficients)
        n = a**2 + s**2
        return (a * x - s * pred) / n, (s * x + a * pred) / n
    # velocity u = α' x0 + σ' ε together with x = α x0 + σ ε
    a, s, da, ds = _coefficients(schedule, t, x, derivatives=True, given=coefficients)
    det = a * ds - s * da
    return (ds * x - s * pred) / det, (a * pred - da * x) / det


def from_x0_eps(
    x0: torch.Tensor,
    eps: torch.Tensor,
    kind: str,
    x: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    coefficients=None,
) -> torch.Tensor:
    """The prediction of type `kind` that corresponds to (x0, ε) at (x_t, t)."""
    check_choice(kind, "prediction", PREDICTIONS)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "score":
        return -eps / _coefficients(schedule, t, x, given=coefficients)[1]
    if kind == "v":
        a, s = _coefficients(schedule, t, x, given=coefficients)
        return a * eps - s * x0
    a, s, da, ds = _coefficients(schedule, t, x, derivatives=True, given=coefficients)
    return da * x0 + ds * eps


def convert(
    pred: torch.Tensor, from_kind: str, to_kind: str, x: torch.Tensor, t, schedule: Schedule | str
) -> torch.Tensor:
    """Convert a prediction between any two of ``eps | x0 | v | velocity | score``.

    ``t`` is a scalar or a (B,) tensor; ``x`` is x_t, shaped like ``pred``.
    """
    schedule = get_schedule(schedule)
    check_choice(from_kind, "from_kind", PREDICTIONS)
    check_choice(to_kind, "to_kind", PREDICTIONS)
    t = batch_time(t, x)
    if from_kind == to_kind:
        return pred
    x0, eps = to_x0_eps(pred, from_kind, x, t, schedule)
    return from_x0_eps(x0, eps, to_kind, x, t, schedule)


class Prediction:
    """What one model evaluation says about x_t: every parametrisation, derived lazily.

    Attributes ``x0``, ``eps``, ``v``, ``velocity`` and ``score`` are computed on first access
    from the raw network output, so a sampler pays one NFE however many it reads.
    """

    __slots__ = ("_cache", "coefficients", "kind", "raw", "schedule", "t", "x")

    def __init__(
        self,
        raw: torch.Tensor,
        kind: str,
        x: torch.Tensor,
        t: torch.Tensor,
        schedule: Schedule,
        coefficients=None,
    ):
        self.raw, self.kind, self.x, self.t, self.schedule = raw, kind, x, t, schedule
        self.coefficients = coefficients
        self._cache = {kind: raw}

    def _get(self, kind: str) -> torch.Tensor:
        if kind not in self._cache:
            if "x0" not in self._cache or "eps" not in self._cache:
                x0, eps = to_x0_eps(
                    self.raw, self.kind, self.x, self.t, self.schedule, self.coefficients
                )
                self._cache.setdefault("x0", x0)
                self._cache.setdefault("eps", eps)
            if kind not in self._cache:
                self._cache[kind] = from_x0_eps(
                    self._cache["x0"],
                    self._cache["eps"],
                    kind,
                    self.x,
                    self.t,
                    self.schedule,
                    self.coefficients,
                )
        return self._cache[kind]

    x0 = property(lambda self: self._get("x0"))
    eps = property(lambda self: self._get("eps"))
    v = property(lambda self: self._get("v"))
    velocity = property(lambda self: self._get("velocity"))
    score = property(lambda self: self._get("score"))


Model = Callable[..., torch.Tensor]


class NFECount:
    """Evaluations of a :class:`Denoiser` since this object was made (see ``counting``)."""

    def __init__(self, den: Denoiser):
        self._den, self._start = den, den.nfe

    @property
    def nfe(self) -> int:
        return self._den.nfe - self._start


class Denoiser:
    """A model + its schedule + what it predicts. The interface every sampler consumes.

    ``model(x, t, cond)`` takes x_t (B, ...), continuous time t (B,) in [0, 1] (t = 0 data)
    and an optional condition, and returns a tensor shaped like x holding the prediction of
    type ``prediction``. Calling the denoiser, ``den(x, t, cond)``, evaluates the model once
    (one NFE, counted in ``den.nfe``) and returns a :class:`Prediction`; ``den.x0(x, t)``,
    ``den.eps``, ``den.velocity``, ``den.v`` and ``den.score`` are one-NFE shortcuts.

    A sampler that has evaluated the schedule on its whole grid once passes
    ``coefficients=(α_t, σ_t)`` or ``(α_t, σ_t, α'_t, σ'_t)`` (floats) so that the
    conversions of each evaluation do not evaluate the schedule again; they must be the
    schedule's values at t.
    """

    def __init__(self, model: Model, schedule: Schedule | str, prediction: str):
        if not callable(model):
            raise TypeError(
                f"model must be callable as model(x, t, cond), got {type(model).__name__}"
            )
        self.model = model
        self.schedule = get_schedule(schedule)
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)
        self.nfe = 0

    def __call__(self, x: torch.Tensor, t, cond=None, *, coefficients=None) -> Prediction:
        check_tensor(x, "x", min_dim=2, finite=False)
        t = batch_time(t, x)
        self.nfe += 1
        raw = self.model(x, t, cond)
        if raw.shape != x.shape:
            raise ValueError(
                f"model returned shape {tuple(raw.shape)} for input of shape {tuple(x.shape)}"
            )
        return Prediction(raw, self.prediction, x, t, self.schedule, coefficients)

    @contextmanager
    def counting(self) -> Iterator[NFECount]:
        """``with den.counting() as count: ...`` — ``count.nfe`` is the number of evaluations
        since the block began (live inside it, final after it); ``den.nfe`` keeps the total."""
        yield NFECount(self)

    def x0(self, x, t, cond=None):
        return self(x, t, cond).x0

    def eps(self, x, t, cond=None):
        return self(x, t, cond).eps

    def v(self, x, t, cond=None):
        return self(x, t, cond).v

    def velocity(self, x, t, cond=None):
        return self(x, t, cond).velocity

    def score(self, x, t, cond=None):
        return self(x, t, cond).score

    def __repr__(self) -> str:
        return f"Denoiser({type(self.model).__name__}, {self.schedule!r}, prediction={self.prediction!r})"
