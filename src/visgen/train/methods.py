r"""What a training run optimises: a *method* turns a mini-batch into per-sample losses.

A method has two halves so that data-parallel training is exact:

* ``draw(batch, generator) -> batch``: all randomness of one step (diffusion time t, noise ε,
  label dropout) for the **global** batch, from one generator that every rank seeds alike;
* ``loss(model, batch) -> (B,)``: deterministic per-sample losses of (a slice of) that batch.

Diffusion methods wrap the objectives of :mod:`visgen.objectives` with explicit ``t`` and
``noise`` (never a second implementation):

==============  ============================  ==========  ===================================
name            schedule                      predicts    loss (paper)
==============  ============================  ==========  ===================================
``ddpm``        ``VPDiscrete`` (T = 1000)     ε           L_simple, k ~ U{0..T−1} (Ho et al. 2020, eq. 14)
``dsm``         ``VE`` (σ_min, σ_max)         ε           σ-ladder DSM (Song & Ermon 2019, eq. 5–6)
``fm``          ``Linear``                    velocity    CFM ‖v − (ε − x0)‖² (Lipman et al. 2023, eq. 23)
``classifier``  —                             logits      cross-entropy (evaluation networks)
==============  ============================  ==========  ===================================

A method is built from a JSON-able spec, ``make_method({"name": "fm", "t_sampler":
"logit_normal", "label_dropout": 0.1})``, which is stored in checkpoints and hashed by the
training cache. Other modules add methods by registering a class in :data:`METHODS`.
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_choice
from visgen.nn.embeddings import drop_labels
from visgen.objectives import (
    Discrete,
    Ladder,
    LogitNormal,
    Uniform,
    diffusion_loss,
    flow_matching_loss,
)
from visgen.param import Denoiser
from visgen.schedules import VE, Linear, VPDiscrete

__all__ = ["METHODS", "Classification", "Diffusion", "make_method"]


class Diffusion:
    """Diffusion / flow-matching training: ``name`` ∈ {ddpm, dsm, fm} (see the module table).

    Args:
        t_sampler: ``uniform`` or ``logit_normal`` (fm only; ddpm and dsm use their own steps).
        label_dropout: probability of replacing a class label by the null label −1 (CFG).
        sigma_max, sigma_min, levels: the VE ladder of ``dsm``.
    """

    def __init__(
        self,
        name: str = "fm",
        *,
        t_sampler: str = "uniform",
        label_dropout: float = 0.0,
        sigma_min: float = 0.01,
        sigma_max: float = 10.0,
        levels: int = 10,
    ):
        self.name = check_choice(name, "method", ("ddpm", "dsm", "fm"))
        check_choice(t_sampler, "t_sampler", ("uniform", "logit_normal"))
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        self.label_dropout = label_dropout
        self.spec = {"name": name, "label_dropout": label_dropout}
        if name == "ddpm":
            self.schedule, self.prediction = VPDiscrete(), "eps"
            self.t_sampler = Discrete(self.schedule)
        elif name == "dsm":
            self.schedule, self.prediction = VE(sigma_min, sigma_max), "eps"
            self.t_sampler = Ladder(levels)
            self.spec.update(sigma_min=sigma_min, sigma_max=sigma_max, levels=levels)
        else:
            self.schedule, self.prediction = Linear(), "velocity"
            self.t_sampler = Uniform() if t_sampler == "uniform" else LogitNormal()
            self.spec["t_sampler"] = t_sampler

    def denoiser(self, model) -> Denoiser:
        """The trained network as a :class:`~visgen.param.Denoiser`."""
        return Denoiser(model, self.schedule, self.prediction)

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        x0 = batch["x0"]
        out = dict(batch)
        out["t"] = self.t_sampler(x0.shape[0], generator, x0.dtype)
        out["noise"] = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        if self.label_dropout > 0 and batch.get("cond") is not None:
            out["cond"] = drop_labels(batch["cond"], self.label_dropout, generator)
        return out

    def loss(self, model, batch: dict) -> torch.Tensor:
        den = self.denoiser(model)
        x0, t, noise, cond = batch["x0"], batch["t"], batch["noise"], batch.get("cond")
        if self.name == "fm":
            return flow_matching_loss(den, x0, t=t, noise=noise, cond=cond, reduction="none")
        return diffusion_loss(den, x0, t=t, noise=noise, target="eps", cond=cond, reduction="none")


class Classification:
    """Cross-entropy of a classifier ``model(x) -> logits`` on labelled images."""

    name = "classifier"

    def __init__(self):
        self.spec = {"name": "classifier"}

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        if batch.get("cond") is None:
            raise ValueError("the classifier method needs a labelled data set")
        return batch

    def loss(self, model, batch: dict) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch["x0"]), batch["cond"], reduction="none")


METHODS = {"ddpm": Diffusion, "dsm": Diffusion, "fm": Diffusion, "classifier": Classification}


def make_method(spec: dict | str):
    """A method from its spec: a name or ``{"name": ..., **options}``."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = check_choice(spec.get("name"), "method", sorted(METHODS))
    cls = METHODS[name]
    if cls is Diffusion:
        return Diffusion(**spec)
    spec.pop("name")
    return cls(**spec)
