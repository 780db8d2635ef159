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
``fm``          ``Linear``                    velocity    CFM ‖v − (ε − x0)‖² (Lipman et al. 2023, eq. 23);
                                              (or x0,     JiT's x-prediction with the v-loss, REPA / iREPA
                                              ε, v)       alignment (Yu et al. 2024; Singh et al. 2025)
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
from visgen._registry import Registry
from visgen.data.shapes import drop_attributes
from visgen.nn.embeddings import drop_labels
from visgen.objectives import (
    Discrete,
    Ladder,
    LogitNormal,
    Shifted,
    Uniform,
    diffusion_loss,
    flow_matching_loss,
)
from visgen.objectives.repa import encoder_tokens, repa_loss, spatial_normalize
from visgen.param import Denoiser
from visgen.schedules import VE, Linear, VPDiscrete

__all__ = ["METHODS", "Classification", "Diffusion", "make_method"]


class Diffusion:
    """Diffusion / flow-matching training: ``name`` ∈ {ddpm, dsm, fm} (see the module table).

    Args:
        t_sampler: ``uniform`` or ``logit_normal`` (fm only; ddpm and dsm use their own steps),
            with ``t_mean``, ``t_std`` the logit-normal's parameters (SD3: 0, 1; JiT: 0.8, 0.8
            in this t = 1-noise convention) and ``t_shift`` SD3's resolution shift of the
            drawn times (:func:`~visgen.objectives.resolution_shift` gives it per resolution).
        label_dropout: probability of replacing a condition by the null condition (CFG).
        attribute_dropout: for caption conditions, the probability of removing each attribute
            phrase of a caption (:func:`visgen.data.drop_attributes`), so the model also
            learns partial prompts; applied before ``label_dropout``.
        prediction: what the fm network outputs, ``velocity`` (default), ``x0`` (JiT),
            ``eps`` or ``v``; ``loss`` the space the error is measured in, ``velocity`` (the
            v-loss, default), ``x0`` or ``eps``; ``t_eps`` JiT's clamp of the v-loss.
        repa: representation alignment (fm only), ``{"encoder": asset name, "layer": ℓ,
            "weight": λ, "normalize": bool}``; see :mod:`visgen.objectives.repa`.
        sigma_max, sigma_min, levels: the VE ladder of ``dsm``.

    Options left at their defaults are not written to ``spec``, so adding options keeps the
    cache keys of existing specs.
    """

    def __init__(
        self,
        name: str = "fm",
        *,
        t_sampler: str = "uniform",
        label_dropout: float = 0.0,
        attribute_dropout: float = 0.0,
        sigma_min: float = 0.01,
        sigma_max: float = 10.0,
        levels: int = 10,
        prediction: str = "velocity",
        loss: str = "velocity",
        t_eps: float = 0.0,
        t_mean: float = 0.0,
        t_std: float = 1.0,
        t_shift: float = 1.0,
        repa: dict | None = None,
    ):
        self.name = check_choice(name, "method", ("ddpm", "dsm", "fm"))
        check_choice(t_sampler, "t_sampler", ("uniform", "logit_normal"))
        check_choice(prediction, "prediction", ("velocity", "x0", "eps", "v"))
        check_choice(loss, "loss", ("velocity", "x0", "eps"))
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        if not 0 <= attribute_dropout <= 1:
            raise ValueError(f"attribute_dropout must be in [0, 1], got {attribute_dropout}")
        fm_options = {
            "prediction": (prediction, "velocity"),
            "loss": (loss, "velocity"),
            "t_eps": (t_eps, 0.0),
            "t_mean": (t_mean, 0.0),
            "t_std": (t_std, 1.0),
            "t_shift": (t_shift, 1.0),
            "repa": (repa, None),
        }
        changed = {k: v for k, (v, default) in fm_options.items() if v != default}
        if name != "fm" and changed:
            raise ValueError(f"options {sorted(changed)} apply to the fm method only")
        self.label_dropout, self.attribute_dropout = label_dropout, attribute_dropout
        self.loss_space, self.t_eps = loss, t_eps
        self.repa = _repa_options(repa) if repa is not None else None
        self.spec = {"name": name, "label_dropout": label_dropout}
        if attribute_dropout:
            self.spec["attribute_dropout"] = attribute_dropout
        if name == "ddpm":
            self.schedule, self.prediction = VPDiscrete(), "eps"
            self.t_sampler = Discrete(self.schedule)
        elif name == "dsm":
            self.schedule, self.prediction = VE(sigma_min, sigma_max), "eps"
            self.t_sampler = Ladder(levels)
            self.spec.update(sigma_min=sigma_min, sigma_max=sigma_max, levels=levels)
        else:
            self.schedule, self.prediction = Linear(), prediction
            base = Uniform() if t_sampler == "uniform" else LogitNormal(t_mean, t_std)
            self.t_sampler = base if t_shift == 1.0 else Shifted(base, t_shift)
            self.spec["t_sampler"] = t_sampler
            self.spec.update(changed)
            if self.repa is not None:
                self.spec["repa"] = self.repa
        self._encoder = None

    def denoiser(self, model) -> Denoiser:
        """The trained network as a :class:`~visgen.param.Denoiser`."""
        return Denoiser(model, self.schedule, self.prediction)

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        x0 = batch["x0"]
        out = dict(batch)
        out["t"] = self.t_sampler(x0.shape[0], generator, x0.dtype)
        out["noise"] = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        cond = batch.get("cond")
        if self.attribute_dropout > 0 and cond is not None:
            if cond.dim() != 2:
                raise ValueError("attribute_dropout needs caption conditions (N, L)")
            cond = out["cond"] = drop_attributes(cond, self.attribute_dropout, generator)
        if self.label_dropout > 0 and cond is not None:
            out["cond"] = drop_labels(cond, self.label_dropout, generator)
        return out

    def loss(self, model, batch: dict) -> torch.Tensor:
        x0, t, noise, cond = batch["x0"], batch["t"], batch["noise"], batch.get("cond")
        if self.repa is None:
            return self._denoising_loss(self.denoiser(model), x0, t, noise, cond)
        layer, hidden = self.repa["layer"], {}

        def hooked(x, t, cond=None):
            out, hidden["tokens"] = model(x, t, cond, return_hidden=(layer,))
            return out

        denoising = self._denoising_loss(self.denoiser(hooked), x0, t, noise, cond)
        tokens = hidden["tokens"][layer]
        target = encoder_tokens(self.encoder(), x0, model.cfg.grid)
        if self.repa["normalize"]:
            target = spatial_normalize(target)
        if target.shape[-1] != model.cfg.repa_dim:
            raise ValueError(
                f"the REPA encoder gives {target.shape[-1]} features per token but the model's "
                f"projector outputs repa_dim={model.cfg.repa_dim}"
            )
        return denoising + self.repa["weight"] * repa_loss(model.project(tokens), target)

    def _denoising_loss(self, den, x0, t, noise, cond):
        if self.name != "fm":
            return diffusion_loss(
                den, x0, t=t, noise=noise, target="eps", cond=cond, reduction="none"
            )
        if self.loss_space == "velocity":
            return flow_matching_loss(
                den, x0, t=t, noise=noise, t_eps=self.t_eps, cond=cond, reduction="none"
            )
        return diffusion_loss(
            den, x0, t=t, noise=noise, target=self.loss_space, cond=cond, reduction="none"
        )

    def encoder(self):
        """The frozen REPA encoder (a cached asset, loaded on first use)."""
        if self._encoder is None:
            from visgen.train.assets import asset, asset_key  # assets imports this module

            name = self.repa["encoder"]
            if asset_key(name) != self.repa["encoder_key"]:
                raise ValueError(
                    f"this method was specified with REPA encoder {self.repa['encoder_key']}, "
                    f"but asset {name!r} is now {asset_key(name)} (FAST vs full, or changed)"
                )
            self._encoder = asset(name, progress=False).model
        return self._encoder


def _repa_options(repa) -> dict:
    if not isinstance(repa, dict) or "encoder" not in repa or "layer" not in repa:
        raise ValueError(
            f"repa must be a dict with 'encoder' (an asset name) and 'layer', got {repa!r}"
        )
    unknown = set(repa) - {"encoder", "encoder_key", "layer", "weight", "normalize"}
    if unknown:
        raise ValueError(f"unknown repa options {sorted(unknown)}")
    out = {"weight": 0.5, "normalize": False, **repa}
    if "encoder_key" not in out:
        # pin the encoder (FAST and full assets differ), so the cache never mixes them
        from visgen.train.assets import asset_key  # assets imports this module

        out["encoder_key"] = asset_key(out["encoder"])
    if not isinstance(out["layer"], int) or out["layer"] < 1:
        raise ValueError(f"repa layer must be a block index >= 1, got {out['layer']!r}")
    if not out["weight"] > 0:
        raise ValueError(f"repa weight must be positive, got {out['weight']!r}")
    out["normalize"] = bool(out["normalize"])
    return out


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


METHODS: Registry[type] = Registry(
    "method",
    {"ddpm": Diffusion, "dsm": Diffusion, "fm": Diffusion, "classifier": Classification},
    providers=(
        "visgen.train.latent",
        "visgen.video.forcing",
        "visgen.video.distill",
        "visgen.ar.training",
        "visgen.threed.training",
        "visgen.conditioning.clip",
        "visgen.conditioning.controlnet",
        "visgen.conditioning.ip_adapter",
        "visgen.conditioning.transfusion",
    ),
)
"""Training methods by spec name; modules that add one are its ``providers``
(:mod:`visgen._registry`)."""


def make_method(spec: dict | str):
    """A method from its spec: a name or ``{"name": ..., **options}``."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    cls = METHODS.lookup(spec.get("name"))
    if cls is Diffusion:
        return Diffusion(**spec)
    spec.pop("name")
    return cls(**spec)
