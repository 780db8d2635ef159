r"""Training the lecture-12 networks through the asset cache: the multi-view flow-matching method
and the named assets.

**Method ``multiview_fm``.** A training sample is a stack of V views of one scene with their
cameras. The views being generated are noised together at one time t and regressed with
conditional flow matching (Lipman et al. 2023, arXiv 2210.02747, eq. 23) by an x-predicting
network with JiT's v-loss (Li & He 2025; lecture 5), v̂ = (x_t − x̂0)/max(t, t_eps):

.. math::
    x_t = (1 − t)\, x_0 + t ε, \qquad
    L = E_{t, ε} \frac{1}{|G|} \sum_{v ∈ G} ‖v̂_v − (ε_v − x_{0,v})‖^2,

G the generated views, t logit-normal (SD3). ``inputs`` says which views are given:

* ``none`` — all V views are generated (MVDream);
* ``tokens`` — per sample, the first k views are given clean, k drawn uniformly from
  ``input_views`` (CAT3D / SEVA train one model for any number of conditioning views);
* ``concat`` — view 0 is the input, concatenated to each other view's channels (Zero-1-to-3);
  its targets are generated independently (view mixing off).

``single_view`` > 0 turns view mixing off for that share of the samples (drawn per step): the
same network learns single-view, camera-conditioned generation — MVDream's joint training on 3D
renders and 2D images (arXiv 2308.16512, §3.3), and the "independent views" baseline.

**Assets** (:func:`visgen.train.asset`; importing :mod:`visgen.threed` registers them):

================  ==============================================  ================  =====================
name              network                                         data              used for
================  ==============================================  ================  =====================
``cube_prior16``  DiT, 8 azimuth-bin classes + null (CFG dropout  ``cube_views16``  SDS / VSD prior
                  0.2)                                                              (null: view-agnostic)
``mvdream16``     MultiViewDiT, Plücker rays in the world frame,  ``cubes_mv16``    joint 4-view
                  joint attention (15 % of samples view by view)                    generation
``zero123_16``    MultiViewDiT, relative pose, input view concat  ``cubes_mv16``    novel views; the
                                                                                    pipeline
``seva16``        MultiViewDiT, Plücker rays in the input         ``cubes_mv16``    novel views
                  camera's frame, input view a given token (3D
                  attention over input and target views)
================  ==============================================  ================  =====================
"""

from __future__ import annotations

import torch

import visgen.threed.multiview  # noqa: F401  (registers the network in visgen.nn.MODELS)
from visgen._checks import check_choice
from visgen.config import budget
from visgen.objectives import LogitNormal, Uniform
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
        inputs: str = "none",
        input_views=(0,),
        single_view: float = 0.0,
        t_sampler: str = "logit_normal",
        t_mean: float = 0.0,
        t_eps: float = 0.05,
    ):
        check_choice(inputs, "inputs", ("none", "tokens", "concat"))
        counts = [int(k) for k in input_views]
        if not counts or min(counts) < 0:
            raise ValueError(
                f"input_views must list numbers of given views >= 0, got {input_views!r}"
            )
        if inputs != "tokens" and counts != [0]:
            raise ValueError("input_views applies to inputs='tokens' only")
        if not 0 <= single_view <= 1:
            raise ValueError(f"single_view must lie in [0, 1], got {single_view!r}")
        check_choice(t_sampler, "t_sampler", ("uniform", "logit_normal"))
        if not 0 < t_eps < 1:
            raise ValueError(f"t_eps must lie in (0, 1), got {t_eps!r}")
        self.inputs, self.input_views, self.single_view = inputs, counts, single_view
        self.schedule, self.prediction, self.t_eps = Linear(), "x0", t_eps
        self.t_sampler = Uniform() if t_sampler == "uniform" else LogitNormal(t_mean, 1.0)
        self.spec = {"name": self.name, "inputs": inputs, "input_views": counts,
                     "single_view": single_view, "t_sampler": t_sampler, "t_mean": t_mean,
                     "t_eps": t_eps}  # fmt: skip

    def denoiser(self, model) -> Denoiser:
        return Denoiser(model, self.schedule, self.prediction)

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        x0 = batch["x0"]
        if (
            x0.dim() != 5
            or x0.shape[1] <= max(self.input_views)
            or (self.inputs == "concat" and x0.shape[1] < 2)
        ):
            raise ValueError(
                f"multiview_fm needs view stacks (B, V, C, H, W), got {tuple(x0.shape)}"
            )
        if batch.get("cond") is None:
            raise ValueError("multiview_fm needs the cameras as labels (spec 'labels': true)")
        n, V = x0.shape[:2]
        counts = torch.tensor(self.input_views)
        k = counts[torch.randint(len(counts), (n,), generator=generator)]
        target = x0[:, 1:] if self.inputs == "concat" else x0
        return {
            **batch,
            "t": self.t_sampler(n, generator, x0.dtype),
            "noise": torch.randn(target.shape, generator=generator, dtype=x0.dtype),
            "given": torch.arange(V)[None] < k[:, None],
            "joint": torch.rand(n, generator=generator) >= self.single_view,
        }

    def loss(self, model, batch: dict) -> torch.Tensor:
        x0, t, noise = batch["x0"], batch["t"], batch["noise"]
        cond = {"cameras": batch["cond"], "joint": batch["joint"]}
        generated = torch.ones(noise.shape[:2], dtype=x0.dtype)
        if self.inputs == "concat":
            cond.update(views=x0[:, :1], joint=torch.zeros_like(batch["joint"]))
            x0 = x0[:, 1:]
        elif self.inputs == "tokens":
            given = batch["given"]
            cond.update(inputs=given, views=x0 * given[..., None, None, None])
            generated = (~given).to(x0.dtype)
        tt = t.reshape(-1, 1, 1, 1, 1)
        xt = (1 - tt) * x0 + tt * noise
        x0_hat = self.denoiser(model)(xt, t, cond).x0
        v_hat = (xt - x0_hat) / tt.clamp_min(self.t_eps)  # JiT's clamped v-loss
        err = (v_hat - (noise - x0)).pow(2).flatten(2).mean(2)  # (B, V)
        return (err * generated).sum(1) / generated.sum(1)


METHODS["multiview_fm"] = MultiViewFlowMatching


def _cube_prior() -> dict:
    return {
        "model": {"name": "dit", "in_channels": 3, "size": 16, "patch_size": 4, "dim": 64,
                  "depth": 3, "heads": 4, "num_classes": 8},
        "method": {"name": "fm", "prediction": "x0", "t_eps": 0.05, "t_sampler": "logit_normal",
                   "label_dropout": 0.2},
        "data": "cube_views16",
        "train": {"steps": budget(full=800, fast=600), "batch_size": 32, "lr": 2e-3},
    }  # fmt: skip


def _multiview(inputs: str, camera: str, patch_size: int, dim: int, single_view: float = 0.0):
    def recipe() -> dict:
        method = {"name": "multiview_fm", "inputs": inputs, "single_view": single_view}
        if inputs == "tokens":  # one given view: the task measured (CAT3D / SEVA draw 1–3)
            method["input_views"] = [1]
        return {
            "model": {"name": "multiview_dit", "inputs": inputs, "camera": camera,
                      "patch_size": patch_size, "dim": dim, "depth": 3, "heads": 4},
            "method": method,
            "data": "cubes_mv16",
            "labels": True,
            "train": {"steps": budget(full=1500, fast=1500), "batch_size": 16, "lr": 2e-3},
        }  # fmt: skip

    return recipe


register_asset("cube_prior16", _cube_prior)
register_asset("mvdream16", _multiview("none", "plucker_world", 8, 64, single_view=0.15))
register_asset("zero123_16", _multiview("concat", "relative", 16, 128))
register_asset("seva16", _multiview("tokens", "plucker", 8, 64))
