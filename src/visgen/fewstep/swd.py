r"""Scale-wise distillation, SwD (Starodubcev, Kuznedelev, Babenko, Baranchuk 2025, arXiv
2503.16397, §3.1–3.2), trained with the patch-level MMD loss alone (§3.3).

A few-step generator that raises the resolution at every step (implicit spectral
autoregression: high noise levels carry only coarse structure). With step times t_0 = 1 >
t_1 > … and sizes s_0 ≤ s_1 ≤ … ≤ S (the data size), sampling is

.. math::
    \hat x^{(0)} = G_θ(z_{s_0}, t_0), \qquad
    \hat x^{(i)} = G_θ\big(α_{t_i} \operatorname{up}_{s_i}(\hat x^{(i−1)}) + σ_{t_i} ε_{s_i},\; t_i\big),

so the early steps run on small images (cheap) and only the last ones at full size. Training
(SwD Fig. 3): take a real image x0, downscale it to s_{i−1} and s_i, upsample the s_{i−1}
version to s_i and noise it to t_i; G_θ predicts the s_i image; the loss is the patch MMD of
:mod:`visgen.fewstep.mmd` between the frozen teacher's features of the prediction and of the
s_i real image, both noised alike (the teacher is fully convolutional, so it reads every
scale). Schedules here (data size S, step times of :func:`~visgen.fewstep.student.student_grid`):
1 NFE: (S); 2 NFE: (S/2, S); 4 NFE: (S/2, 3S/4, S, S).

Needs a fully convolutional teacher (:class:`~visgen.nn.UNet`, task ``digits_unet``).
Downscaling is area averaging (anti-aliased), upscaling bilinear. CPU-sized simplification:
MMD alone, without the DMD2 + GAN terms the paper adds.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from visgen._checks import check_choice
from visgen.fewstep.base import FewStepGenerator, Task, UnsupportedTeacher, register_method
from visgen.fewstep.features import FeatureTap
from visgen.fewstep.mmd import feature_mmd, median_bandwidth
from visgen.fewstep.student import (
    Stopwatch,
    check_steps,
    seeded_init,
    student_from_teacher,
    student_grid,
)
from visgen.nn import UNet
from visgen.objectives import noisy_sample

__all__ = ["resize", "sample_scalewise", "scale_schedule", "train_swd"]

_FRACTIONS = {1: (1.0,), 2: (0.5, 1.0), 4: (0.5, 0.75, 1.0, 1.0)}


def scale_schedule(nfe: int, size: int, multiple: int = 2) -> tuple[int, ...]:
    """The image size of each of the ``nfe`` steps for data of ``size`` (multiples of ``multiple``)."""
    check_choice(nfe, "nfe", tuple(_FRACTIONS))
    return tuple(max(multiple, multiple * round(f * size / multiple)) for f in _FRACTIONS[nfe])


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, C, H, W) to (B, C, size, size): area averaging down, bilinear up."""
    if x.shape[-1] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _low_res_noise(noise: torch.Tensor, size: int) -> torch.Tensor:
    """N(0, I) noise at ``size`` from full-size noise: k×k block means times k stay N(0, I)."""
    k = noise.shape[-1] // size
    if k * size != noise.shape[-1]:
        raise ValueError(f"the first scale {size} must divide the data size {noise.shape[-1]}")
    return F.avg_pool2d(noise, k) * k


@torch.no_grad()
def sample_scalewise(student, noise, nfe: int, cond=None, *, generator=None) -> torch.Tensor:
    """Scale-wise sampling of ``student`` (a Denoiser) from full-size ``noise`` in ``nfe`` steps."""
    grid = student_grid(nfe).tolist()
    sizes = scale_schedule(nfe, noise.shape[-1])
    x = _low_res_noise(noise, sizes[0])
    x0 = student(x, grid[0], cond).x0
    for t, size in zip(grid[1:-1], sizes[1:]):
        a, s = student.schedule.alpha(torch.tensor(t)), student.schedule.sigma(torch.tensor(t))
        z = torch.randn((noise.shape[0], noise.shape[1], size, size), generator=generator)
        x0 = student(a * resize(x0, size) + s * z, t, cond).x0
    return x0


@register_method("swd", lecture=7)
def train_swd(
    task: Task,
    steps: int,
    generator: torch.Generator,
    *,
    kernel: str = "rbf",
    feature_t: tuple[float, float] = (0.0, 0.5),
    batch_size: int = 128,
    lr: float = 1e-4,
    layers=None,
) -> FewStepGenerator:
    """Train a scale-wise 1/2/4-step student with the patch MMD loss (see the module docstring)."""
    check_steps(steps)
    if not isinstance(task.teacher.model, UNet):
        raise UnsupportedTeacher(
            "swd evaluates the teacher at several resolutions: it needs a fully convolutional "
            f"(UNet) teacher, e.g. task 'digits_unet'; task {task.name!r} has "
            f"{type(task.teacher.model).__name__}"
        )
    teacher = task.teacher
    tap = FeatureTap(teacher.model, layers)
    with seeded_init(generator):
        student = student_from_teacher(task)
    opt = torch.optim.Adam(student.model.parameters(), lr=lr, foreach=True)
    full = task.shape[-1]
    bandwidths: dict[int, list[float]] = {}  # median heuristic per scale
    watch = Stopwatch(kernel=kernel, feature_t=list(feature_t), batch_size=batch_size, lr=lr)
    for _ in range(steps):
        x0, cond = task.data(batch_size, generator)
        nfe = (1, 2, 4)[int(torch.randint(3, (1,), generator=generator))]
        i = int(torch.randint(nfe, (1,), generator=generator))
        sizes, t_i = scale_schedule(nfe, full), float(student_grid(nfe)[i])
        target = resize(x0, sizes[i])
        coarse = target if i == 0 else resize(resize(x0, sizes[i - 1]), sizes[i])
        x_in = noisy_sample(
            coarse, torch.full((batch_size,), t_i), teacher.schedule,
            torch.randn(target.shape, generator=generator),
        )  # fmt: skip
        pred = student(x_in, t_i, cond).x0
        t = feature_t[0] + (feature_t[1] - feature_t[0]) * torch.rand(
            batch_size, generator=generator
        )
        noise = torch.randn(target.shape, generator=generator)
        with torch.no_grad():
            real_feats = tap(noisy_sample(target, t, teacher.schedule, noise), t, cond)
        if sizes[i] not in bandwidths:
            bandwidths[sizes[i]] = median_bandwidth(real_feats)
        fake_feats = tap(noisy_sample(pred, t, teacher.schedule, noise), t, cond)
        loss = feature_mmd(real_feats, fake_feats, kernel, bandwidths[sizes[i]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        watch.log(mmd=float(loss.detach()), size=sizes[i])
    student.model.eval().requires_grad_(False)

    def sample(noise, nfe, cond, gen):
        return sample_scalewise(student, noise, nfe, cond, generator=gen)

    flops = {k: sum(s * s for s in scale_schedule(k, full)) / (k * full * full) for k in (1, 2, 4)}
    watch.settings["bandwidth"] = {str(k): v for k, v in bandwidths.items()}
    info = {**watch.info(), "relative_pixels": flops}
    return FewStepGenerator("swd", student.model, sample, (1, 2, 4), info)
