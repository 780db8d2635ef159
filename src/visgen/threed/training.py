r"""Training the lecture-12 networks through the asset cache: the multi-view flow-matching method
and the named assets.

**Method ``multiview_fm``.** A training sample is a stack of V views of one scene with their
cameras; the first ``input_views`` views are clean conditions (Zero-1-to-3, SEVA), the others
are noised together at one time t and regressed with conditional flow matching (Lipman et al.
2023, arXiv 2210.02747, eq. 23; :func:`visgen.objectives.flow_matching_loss`):

.. math::
    x_t = (1 − t)\, x_0 + t ε, \qquad
    L = E_{t, ε}\, ‖v_θ(x_t, t \mid \text{cameras}, \text{input views}) − (ε − x_0)‖^2,

with t logit-normal (SD3, Esser et al. 2024). ``single_view`` > 0 turns view mixing off for
that share of the samples (drawn per step), which trains the same network as a single-view,
camera-conditioned model: MVDream's joint training on 3D renders and 2D images (arXiv
2308.16512, §3.3), and the "independent views" baseline of joint generation.

**Assets** (:func:`visgen.train.asset`; FAST budgets in parentheses):

==================  =====================================  ===============  ====================
name                network                                data             what for
==================  =====================================  ===============  ====================
``cube_prior16``    DiT, 8 azimuth-bin classes + null      ``cube_views16`` SDS / VSD prior
                    (CFG dropout 0.2)                                       (null = view-agnostic)
``mvdream16``       MultiViewDiT, extrinsics, 4 views      ``cubes_orbit16`` joint generation
``zero123_16``      MultiViewDiT, relative pose, concat    ``cubes_pairs16`` novel view
``seva16``          MultiViewDiT, Plücker rays, tokens     ``cubes_pairs16`` novel view
==================  =====================================  ===============  ====================
"""

from __future__ import annotations

import torch

import visgen.threed.multiview  # noqa: F401  (registers the network in visgen.nn.MODELS)
from visgen._checks import check_choice
from visgen.config import budget
from visgen.objectives import LogitNormal, Uniform, diffusion_loss, flow_matching_loss
from visgen.param import Denoiser
from visgen.schedules import Linear
from visgen.train.assets import register_asset
from visgen.train.methods import METHODS

__all__ = ["MultiViewFlowMatching"]


class MultiViewFlowMatching:
    """Flow matching on view stacks (see the module docstring); ``name = "multiview_fm"``."""

    name = "multiview_fm"

    def __init__(
        self,
        input_views: int = 0,
        single_view: float = 0.0,
        t_sampler: str = "logit_normal",
        prediction: str = "x0",
        t_eps: float = 0.05,
        loss: str = "velocity",
    ):
        if not isinstance(input_views, int) or input_views < 0:
            raise ValueError(f"input_views must be a non-negative int, got {input_views!r}")
        if not 0 <= single_view <= 1:
            raise ValueError(f"single_view must lie in [0, 1], got {single_view!r}")
        check_choice(t_sampler, "t_sampler", ("uniform", "logit_normal"))
        check_choice(prediction, "prediction", ("x0", "velocity"))
        check_choice(loss, "loss", ("velocity", "x0"))
        self.loss_space = loss
        if not 0 <= t_eps < 1:
            raise ValueError(f"t_eps must lie in [0, 1), got {t_eps!r}")
        self.input_views, self.single_view = input_views, single_view
        self.schedule, self.prediction, self.t_eps = Linear(), prediction, t_eps
        self.t_sampler = Uniform() if t_sampler == "uniform" else LogitNormal(0.0, 1.0)
        self.spec = {"name": self.name, "input_views": input_views, "single_view": single_view,
                     "t_sampler": t_sampler, "prediction": prediction, "t_eps": t_eps,
                     "loss": loss}  # fmt: skip

    def denoiser(self, model) -> Denoiser:
        return Denoiser(model, self.schedule, self.prediction)

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        x0 = batch["x0"]
        if x0.dim() != 5 or x0.shape[1] <= self.input_views:
            raise ValueError(
                f"multiview_fm needs view stacks (B, V, C, H, W) with more than {self.input_views} "
                f"views, got {tuple(x0.shape)}"
            )
        if batch.get("cond") is None:
            raise ValueError("multiview_fm needs the cameras as labels (spec 'labels': true)")
        n = x0.shape[0]
        target = x0[:, self.input_views :]
        return {
            **batch,
            "t": self.t_sampler(n, generator, x0.dtype),
            "noise": torch.randn(target.shape, generator=generator, dtype=x0.dtype),
            "joint": torch.rand(n, generator=generator) >= self.single_view,
        }

    def loss(self, model, batch: dict) -> torch.Tensor:
        x0, k = batch["x0"], self.input_views
        cond = {"cameras": batch["cond"], "joint": batch["joint"]}
        if k:
            cond["views"] = x0[:, :k]
        den, target, t, noise = self.denoiser(model), x0[:, k:], batch["t"], batch["noise"]
        if self.loss_space == "x0":
            return diffusion_loss(
                den, target, t=t, noise=noise, target="x0", cond=cond, reduction="none"
            )
        return flow_matching_loss(den, target, t=t, noise=noise, t_eps=self.t_eps, cond=cond,
                                  reduction="none")  # fmt: skip


METHODS["multiview_fm"] = MultiViewFlowMatching


def _cube_prior() -> dict:
    return {
        "model": {"name": "dit", "in_channels": 3, "size": 16, "patch_size": 4, "dim": 64,
                  "depth": 4, "heads": 4, "num_classes": 8},
        "method": {"name": "fm", "prediction": "x0", "t_eps": 0.05, "t_sampler": "logit_normal",
                   "label_dropout": 0.2},
        "data": "cube_views16",
        "train": {"steps": budget(full=1500, fast=800), "batch_size": 64, "lr": 2e-3},
    }  # fmt: skip


def _multiview(camera: str, inputs: str, input_views: int, data: str, single_view: float):
    def recipe() -> dict:
        return {
            "model": {"name": "multiview_dit", "input_views": input_views, "camera": camera,
                      "inputs": inputs, "patch_size": 4, "dim": 64, "depth": 4, "heads": 4},
            "method": {"name": "multiview_fm", "input_views": input_views,
                       "single_view": single_view},
            "data": data,
            "labels": True,
            "train": {"steps": budget(full=1500, fast=800), "batch_size": 32, "lr": 2e-3},
        }  # fmt: skip

    return recipe


register_asset("cube_prior16", _cube_prior)
register_asset("mvdream16", _multiview("extrinsics", "tokens", 0, "cubes_orbit16", 0.3))
register_asset("zero123_16", _multiview("relative", "concat", 1, "cubes_pairs16", 0.0))
register_asset("seva16", _multiview("plucker", "tokens", 1, "cubes_pairs16", 0.0))
