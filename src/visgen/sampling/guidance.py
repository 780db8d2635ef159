r"""Guidance as Denoiser wrappers: every sampler guides without knowing it.

* Classifier-free guidance (Ho & Salimans 2022, arXiv 2207.12598, eq. 6):
  ε̃ = ε̂(x, ∅) + w (ε̂(x, y) − ε̂(x, ∅)). w = 0 is unconditional, w = 1 conditional, w > 1
  sharpens towards the class. (The paper writes (1 + w') ε̂_c − w' ε̂_∅, i.e. w = 1 + w'.)
* Classifier guidance (Dhariwal & Nichol 2021, arXiv 2105.05233, §4, Alg. 1–2):
  ∇ log p̃(x_t | y) = ∇ log p_t(x_t) + s ∇ log p_φ(y | x_t), i.e. ε̃ = ε̂ − s σ_t ∇ log p_φ(y | x_t).
* AutoGuidance (Karras et al. 2024, arXiv 2406.02507, §3): the CFG combination with the
  unconditional model replaced by a *weaker* model of the same family and the same condition,
  D̃ = D_0 + w (D_1 − D_0), e.g. a smaller or shorter-trained network.

Both return a :class:`~visgen.param.Denoiser`, so its ``nfe`` counts guided evaluations: one
CFG evaluation is ONE forward pass of the wrapped model on a batch of 2B (condition and
null condition concatenated).
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, expand_to
from visgen.param import Denoiser

__all__ = ["autoguidance", "classifier_free_guidance", "classifier_guidance"]


def _concat(a, b):
    if isinstance(a, dict):
        return {k: torch.cat([a[k], b[k]]) for k in a}
    return torch.cat([a, b])


def _null_like(cond, null):
    """The null condition shaped like ``cond``: -1 labels (visgen.oracles) unless given."""
    if isinstance(cond, dict):
        if not isinstance(null, dict) or set(null) != set(cond):
            raise ValueError(f"a dict cond needs a dict null with the same keys {sorted(cond)}")
        return {k: _null_like(cond[k], null[k]) for k in cond}
    if not isinstance(cond, torch.Tensor):
        raise TypeError(f"cond must be a tensor or a dict of tensors, got {type(cond).__name__}")
    if null is None:
        if cond.is_floating_point():
            raise ValueError(
                "cond is not a tensor of class labels: pass null= (the null condition)"
            )
        return torch.full_like(cond, -1)
    null = torch.as_tensor(null, dtype=cond.dtype, device=cond.device)
    if null.shape == cond.shape[1:] or null.dim() == 0:
        return null.expand_as(cond)
    if null.shape != cond.shape:
        raise ValueError(
            f"null must have the shape of cond {tuple(cond.shape)} or of one of its rows, "
            f"got {tuple(null.shape)}"
        )
    return null


class _CFGModel:
    def __init__(self, den, scale, null, interval, space, rescale):
        self.den, self.scale, self.null = den, scale, null
        self.interval, self.space, self.rescale = interval, space, rescale

    def __call__(self, x, t, cond=None):
        if cond is None:
            raise ValueError("classifier-free guidance needs a condition cond (got None)")
        lo, hi = self.interval
        inside = (t >= lo) & (t <= hi)
        if not inside.any():  # no guidance here: the conditional prediction alone (batch B)
            return getattr(self.den(x, t, cond), self.space)
        both = getattr(
            self.den(_concat(x, x), _concat(t, t), _concat(cond, _null_like(cond, self.null))),
            self.space,
        )
        c, u = both.chunk(2)
        guided = u + self.scale * (c - u)
        if self.rescale > 0:
            dims = tuple(range(1, x.dim()))
            ratio = c.std(dims, keepdim=True) / guided.std(dims, keepdim=True)
            guided = self.rescale * ratio * guided + (1 - self.rescale) * guided
        return torch.where(expand_to(inside, x), guided, c)


def _check_interval(interval):
    lo, hi = interval
    if not 0 <= lo < hi <= 1:
        raise ValueError(
            f"interval must be (t_lo, t_hi) with 0 <= t_lo < t_hi <= 1, got {interval}"
        )
    return lo, hi


def classifier_free_guidance(
    den: Denoiser,
    scale: float,
    *,
    null=None,
    interval: tuple[float, float] = (0.0, 1.0),
    space: str | None = None,
    rescale: float = 0.0,
) -> Denoiser:
    r"""Classifier-free guidance: a Denoiser whose prediction is u + w (c − u).

    c = den(x, t, cond), u = den(x, t, null) from ONE forward pass of ``den`` on the batch
    [x; x] with conditions [cond; null]. ``null`` defaults to the label −1 (as in
    :mod:`visgen.oracles`); pass it for other conditions (a tensor shaped like one row of
    cond, or a dict for dict conditions).

    * ``interval`` = (t_lo, t_hi): guide only there (Kynkäänniemi et al. 2024, arXiv
      2404.07724); elsewhere the prediction is the conditional one, at batch B.
    * ``space``: the parametrisation combined, ``eps``, ``x0``, ``v``, ``velocity`` or
      ``score``; default the model's own (no extra conversion). For the plain combination
      all give the same sampler (each is affine in x̂0 at fixed (x, t) and the weights
      1 − w, w sum to 1); the choice matters with ``rescale``.
    * ``rescale`` = φ: the guided prediction's per-sample std is pulled towards the
      conditional one's, φ · (std_c/std_guided) · g + (1 − φ) · g (Lin et al. 2023,
      arXiv 2305.08891, eq. 15–16), against over-exposure at large w.
    """
    if not isinstance(den, Denoiser):
        raise TypeError(f"den must be a visgen Denoiser, got {type(den).__name__}")
    space = den.prediction if space is None else space
    check_choice(space, "space", ("eps", "x0", "v", "velocity", "score"))
    lo, hi = _check_interval(interval)
    if not 0 <= rescale <= 1:
        raise ValueError(f"rescale must lie in [0, 1], got {rescale}")
    return Denoiser(
        _CFGModel(den, float(scale), null, (lo, hi), space, rescale), den.schedule, space
    )


class _ClassifierGuidedModel:
    def __init__(self, den, classifier, scale):
        self.den, self.classifier, self.scale = den, classifier, scale

    def __call__(self, x, t, cond=None):
        if cond is None:
            raise ValueError("classifier guidance needs class labels cond (got None)")
        score = self.den(x, t).score
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            logits = self.classifier(xr, t)
            if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(
                    f"classifier must return logits of shape (B, classes), got {tuple(logits.shape)}"
                )
            log_p = torch.log_softmax(logits, 1).gather(1, cond.long()[:, None]).sum()
            (grad,) = torch.autograd.grad(log_p, xr)
        return score + self.scale * grad


def classifier_guidance(den: Denoiser, classifier, scale: float = 1.0) -> Denoiser:
    r"""Classifier guidance: score ∇ log p_t(x) + s ∇_x log p_φ(y | x_t, t).

    ``classifier(x, t)`` returns logits (B, classes) of the noisy classifier p_φ(y | x_t);
    ``den`` is evaluated unconditionally and the class labels come as ``cond`` (B,). With
    the exact noisy classifier and s = 1 this is exactly the conditional score (Bayes'
    rule). Each evaluation costs one model NFE plus a classifier forward and backward.
    """
    if not isinstance(den, Denoiser):
        raise TypeError(f"den must be a visgen Denoiser, got {type(den).__name__}")
    if not callable(classifier):
        raise TypeError("classifier must be callable as classifier(x, t) -> logits")
    return Denoiser(_ClassifierGuidedModel(den, classifier, float(scale)), den.schedule, "score")


class _AutoGuidedModel:
    def __init__(self, den, weak, scale, interval, space):
        self.den, self.weak, self.scale = den, weak, scale
        self.interval, self.space = interval, space

    def __call__(self, x, t, cond=None):
        lo, hi = self.interval
        inside = (t >= lo) & (t <= hi)
        main = getattr(self.den(x, t, cond), self.space)
        if not inside.any():
            return main
        weak = getattr(self.weak(x, t, cond), self.space)
        return torch.where(expand_to(inside, x), weak + self.scale * (main - weak), main)


def autoguidance(
    den: Denoiser,
    weak: Denoiser,
    scale: float,
    *,
    interval: tuple[float, float] = (0.0, 1.0),
    space: str | None = None,
) -> Denoiser:
    r"""AutoGuidance: a Denoiser whose prediction is D_0 + w (D_1 − D_0).

    D_1 = ``den`` (the main model) and D_0 = ``weak`` (the guiding model: the same kind of
    network made worse, e.g. smaller or trained for fewer steps — Karras et al. 2024, arXiv
    2406.02507, §3) are evaluated at the same (x, t, cond); ``cond`` may be None, so
    unconditional models are guided too. Where D_0's errors point the same way as D_1's but
    further, the extrapolation w > 1 removes them, sharpening samples without CFG's loss of
    variety. w = 1 is the main model. Each evaluation costs one forward pass of each model
    (counted once, as one guided NFE, by the returned Denoiser). ``interval`` and ``space``
    as in :func:`classifier_free_guidance`.
    """
    for name, value in (("den", den), ("weak", weak)):
        if not isinstance(value, Denoiser):
            raise TypeError(f"{name} must be a visgen Denoiser, got {type(value).__name__}")
    probe = torch.tensor([0.3, 0.7], dtype=torch.float64)
    same = all(
        torch.allclose(getattr(den.schedule, f)(probe), getattr(weak.schedule, f)(probe))
        for f in ("alpha", "sigma")
    )
    if not same:
        raise ValueError(
            f"den and weak must share a schedule, got {den.schedule!r} and {weak.schedule!r}"
        )
    space = den.prediction if space is None else space
    check_choice(space, "space", ("eps", "x0", "v", "velocity", "score"))
    interval = _check_interval(interval)
    return Denoiser(_AutoGuidedModel(den, weak, float(scale), interval, space), den.schedule, space)
