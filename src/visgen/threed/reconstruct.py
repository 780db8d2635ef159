r"""Fitting splats to posed images, and the two-stage "generate views, then reconstruct" pipeline.

**Photometric fit** (3D Gaussian Splatting's optimisation, Kerbl et al. 2023, arXiv 2308.04079,
§5, with an L2 loss in place of L1 + D-SSIM and no densification):

.. math:: θ^* = \arg\min_θ \frac{1}{V} \sum_v ‖g(θ, c_v) − I_v‖^2,

Adam on the unconstrained parameters of a :class:`~visgen.threed.SplatField`.

**Generate, then reconstruct** — the modern pipeline (e.g. CAT3D, Gao et al. 2024, arXiv
2405.10314; SEVA, arXiv 2503.14489): a novel-view model samples views of the object from the
input view and the target cameras (each view by a deterministic ODE sampler), then a 3D
representation is fitted to the input and the generated views, and unseen views are *rendered*
from it. Compared with SDS it asks the diffusion model for samples, not for a gradient at
every step.
"""

from __future__ import annotations

import torch

from visgen._checks import check_positive, check_tensor
from visgen.param import Denoiser
from visgen.sampling import sample_euler, uniform
from visgen.threed.cameras import Cameras
from visgen.threed.render import render
from visgen.threed.splats import SplatField

__all__ = ["fit_splats", "novel_view_prior", "novel_views"]


def fit_splats(
    field: SplatField,
    images: torch.Tensor,
    cams: Cameras,
    steps: int,
    *,
    lr: float = 0.05,
    batch: int | None = None,
    generator: torch.Generator | None = None,
    background: float = 0.0,
) -> list[float]:
    """Fit ``field`` to images (V, C, H, W) taken by ``cams`` (V) with Adam on the L2 error;
    ``batch`` views per step (random, from ``generator``), all by default. Returns the losses."""
    images = check_tensor(images, "images", min_dim=4)
    if len(cams) != images.shape[0]:
        raise ValueError(
            f"cams must hold one camera per image ({images.shape[0]}), got {len(cams)}"
        )
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    check_positive(lr, "lr")
    params = [p for p in field.parameters() if p.requires_grad]
    if not params:
        raise ValueError("field has no learnable parameters (SplatField learn=...)")
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for _ in range(steps):
        if batch is None or batch >= len(cams):
            idx = torch.arange(len(cams))
        else:
            idx = torch.randperm(len(cams), generator=generator)[:batch]
        out = render(field.splats(), cams[idx], background=background).image
        loss = (out - images[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


@torch.no_grad()
def novel_views(
    model: Denoiser,
    view: torch.Tensor,
    camera: Cameras,
    targets: Cameras,
    generator: torch.Generator,
    *,
    steps: int = 20,
) -> torch.Tensor:
    """Sample the views (V, C, H, W) seen by ``targets`` (V) of the object in ``view``
    (1, C, H, W) taken by ``camera`` (1) with a novel-view :class:`~visgen.threed.MultiViewDiT`
    (Euler, ``steps`` NFE): ``inputs="tokens"`` generates all V views jointly, given the input
    view; ``inputs="concat"`` (Zero-1-to-3) generates each from the input alone."""
    view = check_tensor(view, "view", min_dim=4)
    if view.shape[0] != 1 or len(camera) != 1:
        raise ValueError("view and camera must hold exactly one input view")
    inputs = model.model.config["inputs"]
    cams = torch.cat([camera.as_vector(), targets.as_vector()])[None]
    V = len(targets)
    if inputs == "concat":
        z = torch.randn(1, V, *view.shape[1:], generator=generator, dtype=view.dtype)
        return sample_euler(model, z, uniform(steps), {"cameras": cams, "views": view[None]})[0]
    if inputs != "tokens":
        raise ValueError(
            f"model must take input views (inputs 'tokens' or 'concat'), got {inputs!r}"
        )
    z = torch.randn(1, V + 1, *view.shape[1:], generator=generator, dtype=view.dtype)
    given = torch.zeros(1, V + 1, dtype=torch.bool)
    given[:, 0] = True
    views = torch.cat([view[None], torch.zeros_like(z[:, 1:])], 1)
    cond = {"cameras": cams, "inputs": given, "views": views}
    return sample_euler(model, z, uniform(steps), cond)[0, 1:]


class _TargetView:
    """model(x, t, cond) on single renders: view 0 of the stack is the given input view."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, t, cond=None):
        views = cond["views"]
        if self.model.config["inputs"] == "concat":
            return self.model(x[:, None], t, cond)[:, 0]
        stack = torch.stack([views[:, 0], x], 1)
        given = torch.tensor([True, False]).expand(x.shape[0], 2)
        full = {**cond, "inputs": given, "views": torch.cat([views, torch.zeros_like(views)], 1)}
        return self.model(stack, t, full)[:, 1]


def novel_view_prior(model: Denoiser) -> Denoiser:
    """A novel-view model as a denoiser of single renders (B, C, H, W) conditioned on
    ``{"cameras": (B, 2, 16), "views": (B, 1, C, H, W)}`` (input camera and view first): the
    prior of SDS from one image (Zero-1-to-3's 3D reconstruction)."""
    if not isinstance(model, Denoiser):
        raise TypeError(f"model must be a Denoiser, got {type(model).__name__}")
    return Denoiser(_TargetView(model.model), model.schedule, model.prediction)
