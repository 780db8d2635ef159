"""The measured toy tasks of lecture 12, shared by the tests, the tour chapter L12, the deck's
``figures.py`` and ``benchmarks/threed.py`` so that every number comes from one place.

* :func:`distill_canonical_cube`, :func:`sds_scores` — SDS / VSD of the ``cube_prior16`` prior
  into the colours of a cube of splats (the canonical cube's geometry with grey faces), with
  a view-agnostic (null label) or view-conditioned (azimuth label) prior: colour error against
  the canonical cube, Janus score, saturation.
* :func:`joint_generation` — 4 views of palette cubes on MVDream's orbit, sampled jointly or
  independently, and their cross-view consistency and colours per view.
* :func:`novel_view_scores` — novel views of test cubes from one input view, PSNR against the
  truth next to copying the input view.
* :func:`pipeline_scores` — generate-then-reconstruct vs SDS alone from one input view, on
  held-out views between the generated ones.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice
from visgen.param import Denoiser
from visgen.sampling import sample_ancestral, sample_euler, sample_pc, uniform
from visgen.sampling.guidance import classifier_free_guidance
from visgen.threed.cameras import Cameras
from visgen.threed.datasets import ELEVATION, azimuth_bin, cameras, palette_views
from visgen.threed.distill import lora_fake, score_distillation
from visgen.threed.metrics import (
    colors_per_view,
    cross_view_consistency,
    janus_score,
    psnr,
    saturation,
)
from visgen.threed.render import render
from visgen.threed.scenes import CANONICAL, cube_face_index, cube_splats, random_cube_colors
from visgen.threed.splats import SplatField

__all__ = [
    "EVAL_AZIMUTHS",
    "distill_canonical_cube",
    "joint_generation",
    "novel_view_scores",
    "pipeline_scores",
    "sds_scores",
]

EVAL_AZIMUTHS = torch.arange(8) * 45.0
"""Where distilled cubes are judged: 8 azimuths 45° apart at the data's elevation."""


def _grey_cube() -> SplatField:
    """The canonical cube's splats with grey faces; only the colours learn."""
    return SplatField(cube_splats(torch.zeros(6, 3)), learn=("colors",))


def face_colors_of(field: SplatField) -> torch.Tensor:
    """(6, 3) mean colour of each face's splats."""
    face = cube_face_index(3)
    colors = torch.tanh(field.colors.detach())
    return torch.stack([colors[face == k].mean(0) for k in range(6)])


def distill_canonical_cube(
    prior: Denoiser,
    *,
    view: bool,
    guidance: float = 1.0,
    seed: int = 0,
    steps: int = 300,
    particles: int = 1,
    vsd: bool = False,
) -> list[SplatField]:
    """SDS (or VSD with ``vsd``) of the canonical-cube prior into grey cubes (``particles`` of
    them); the prior sees the azimuth label of each render (``view``) or the null label
    (view-agnostic), with classifier-free guidance ``guidance`` (1 = none)."""

    def sample_cameras(n, gen):
        az = 360 * torch.rand(n, generator=gen)
        label = azimuth_bin(az) if view else torch.full((n,), -1)
        return cameras(az, torch.full((n,), ELEVATION)), label

    teacher = prior if guidance == 1 else classifier_free_guidance(prior, guidance)
    fields = [_grey_cube() for _ in range(particles)]
    fake = lora_fake(prior) if vsd else None
    g = torch.Generator().manual_seed(seed)
    score_distillation(fields, teacher, sample_cameras, steps, g, fake=fake)
    return fields


def sds_scores(fields: list[SplatField]) -> dict:
    """Scores of the first distilled cube seen from :data:`EVAL_AZIMUTHS`: RMS colour error of
    the 5 faces a camera at 30° elevation sees (not the bottom), Janus score, saturation, PSNR
    against the canonical cube's renders; with several particles, their colour spread."""
    cams = cameras(EVAL_AZIMUTHS, torch.full((8,), ELEVATION))
    with torch.no_grad():
        out = render(fields[0].splats(), cams)
        truth = render(cube_splats(CANONICAL), cams).image
    cols = torch.stack([face_colors_of(f) for f in fields])
    row = {
        "face colour RMSE": float((cols[0] - CANONICAL)[:5].pow(2).mean().sqrt()),
        "Janus score": janus_score(out.image, out.alpha),
        "saturation": saturation(out.image, out.alpha),
        "PSNR (dB)": float(psnr(out.image, truth).mean()),
    }
    if len(fields) > 1:
        row["spread across particles"] = float(cols[:, :5].std(0).mean())
    return row


def canonical_truth_scores() -> dict:
    """The same scores for the canonical cube itself (the floor of the SDS table)."""
    cams = cameras(EVAL_AZIMUTHS, torch.full((8,), ELEVATION))
    with torch.no_grad():
        out = render(cube_splats(CANONICAL), cams)
    return {
        "face colour RMSE": 0.0,
        "Janus score": janus_score(out.image, out.alpha),
        "saturation": saturation(out.image, out.alpha),
    }


@torch.no_grad()
def joint_generation(
    model: Denoiser,
    n: int,
    seed: int,
    *,
    steps: int = 20,
    jitter: float = 15.0,
    sampler: str = "euler",
    snr: float = 0.16,
):
    """n palette-cube orbits (4 views 90° apart) sampled jointly and view by view (mixing off)
    from the same noise: (joint, independent, data images, cameras), the three consistencies
    and the three colours per view (a sampler that drops colours gains consistency cheaply).

    ``sampler``: ``euler`` (the PF-ODE, ``steps`` Euler steps), ``ancestral`` (DDPM's
    posterior, ``steps`` steps) or ``pc`` (predictor–corrector, Song et al. 2021, Alg. 2–3:
    ``steps`` reverse-SDE steps, each followed by one Langevin step at signal-to-noise ``snr``).
    The stochastic ones draw their noise from one generator per row, seeded alike, so both
    rows see the same noise."""
    check_choice(sampler, "sampler", ("euler", "ancestral", "pc"))
    g = torch.Generator().manual_seed(seed)
    images, cams, _ = palette_views(n, g, spacing=90.0, jitter=jitter)
    z = torch.randn(images.shape, generator=g)

    def sample(cond):
        if sampler == "euler":
            return sample_euler(model, z, uniform(steps), cond)
        noise = torch.Generator().manual_seed(seed + 1)
        ts = uniform(steps, 0.995)  # the SDE's g(t) is infinite at t = 1 on the linear schedule
        if sampler == "ancestral":
            return sample_ancestral(model, z, ts, cond, generator=noise)
        return sample_pc(model, z, ts, cond, snr=snr, generator=noise)

    joint = sample({"cameras": cams})
    independent = sample({"cameras": cams, "joint": torch.zeros(n, dtype=torch.bool)})
    flat = Cameras.from_vector(cams.reshape(-1, 16), images.shape[-2], images.shape[-1])
    return {
        "joint": joint,
        "independent": independent,
        "data": images,
        "cameras": cams,
        "joint consistency": cross_view_consistency(joint, flat),
        "independent consistency": cross_view_consistency(independent, flat),
        "data consistency": cross_view_consistency(images, flat),
        "joint colours": colors_per_view(joint.flatten(0, 1), flat),
        "independent colours": colors_per_view(independent.flatten(0, 1), flat),
        "data colours": colors_per_view(images.flatten(0, 1), flat),
    }


@torch.no_grad()
def novel_view_scores(
    model: Denoiser, n: int, seed: int, *, steps: int = 20, jitter: float = 180.0
):
    """Novel views of n test orbits (view 0 is the input; views at +90°, +180°, +270° are
    generated): PSNR of the pooled MSE against the truth, for the model and for copying the
    input view, overall and per offset. A ``concat`` model (Zero-1-to-3) generates each view
    from the input alone; a ``tokens`` model (CAT3D / SEVA) generates the three jointly, the
    input view given as view 0 of the stack. Both start from the same noise."""
    g = torch.Generator().manual_seed(seed)
    images, cams, _ = palette_views(n, g, spacing=90.0, jitter=jitter)
    z = torch.randn(images[:, 1:].shape, generator=g)
    if model.model.config["inputs"] == "tokens":
        given = (torch.arange(images.shape[1]) == 0).expand(n, -1)
        cond = {"cameras": cams, "inputs": given, "views": images * given[..., None, None, None]}
        out = sample_euler(model, torch.cat([images[:, :1], z], 1), uniform(steps), cond)[:, 1:]
    else:
        out = sample_euler(model, z, uniform(steps), {"cameras": cams, "views": images[:, :1]})
    truth, copy = images[:, 1:], images[:, :1].expand_as(out)
    scores = {
        "model": float(psnr(out, truth, pool=True)),
        "copy": float(psnr(copy, truth, pool=True)),
        "samples": out,
        "data": images,
    }
    for k, offset in enumerate((90, 180, 270)):
        scores[f"model {offset}"] = float(psnr(out[:, k], truth[:, k], pool=True))
        scores[f"copy {offset}"] = float(psnr(copy[:, k], truth[:, k], pool=True))
    return scores


def pipeline_scores(
    model: Denoiser,
    n: int,
    seed: int,
    *,
    splats: int = 64,
    fit_steps: int = 200,
    sds_steps=(15, 200),
    sample_steps: int = 20,
) -> dict:
    """Generate-then-reconstruct vs SDS alone, from one input view of each of n palette cubes.

    The input camera sits at a random azimuth a (elevation 30°). The novel-view ``model``
    (``concat``) generates the views at a + 90°, 180°, 270° (``sample_steps`` NFE each) and
    ``splats`` free Gaussians are fitted to the 4 views (``fit_steps`` Adam steps). SDS
    optimises the same splats from the same start with the model as its prior at those three
    cameras (4 renders per step, one NFE each) plus the input view's L2 error. Both are judged
    on the held-out views a + 45° + k·90° by the pooled PSNR. ``sds_steps``: SDS budgets; the
    default 15 steps = 60 NFE = the pipeline's 3 × 20. Every cube and every run has its own
    generator, so a result does not depend on which other runs are measured.
    """
    from visgen.threed.reconstruct import fit_splats, novel_view_prior, novel_views

    g = torch.Generator().manual_seed(seed)
    colors, _ = random_cube_colors(n, g)
    az = 360 * torch.rand(n, generator=g)
    prior = novel_view_prior(model)
    truth, two_stage, sds = [], [], {k: [] for k in sds_steps}
    for i in range(n):

        def gen(salt: int, i=i):
            return torch.Generator().manual_seed(seed * 1000 + 10 * i + salt)

        scene = cube_splats(colors[i])
        view_cams = cameras(az[i] + 90.0 * torch.arange(4), torch.full((4,), ELEVATION))
        hold = cameras(az[i] + 45.0 + 90.0 * torch.arange(4), torch.full((4,), ELEVATION))
        with torch.no_grad():
            view = render(scene, view_cams[0]).image
            truth.append(render(scene, hold).image)
        generated = novel_views(
            model, view, view_cams[0], view_cams[1:], gen(0), steps=sample_steps
        )
        field = SplatField.random(splats, gen(1))  # the same start for every method
        fit_splats(field, torch.cat([view, generated]), view_cams, fit_steps)
        with torch.no_grad():
            two_stage.append(render(field.splats(), hold).image)
        cv = view_cams[0].as_vector()

        def sample_cameras(k, gen, view_cams=view_cams, cv=cv, view=view):
            c = view_cams[torch.randint(1, 4, (k,), generator=gen)]
            cond = {"cameras": torch.stack([cv.expand(k, 16), c.as_vector()], 1),
                    "views": view[None].expand(k, -1, -1, -1, -1)}  # fmt: skip
            return c, cond

        for steps in sds_steps:
            field = SplatField.random(splats, gen(1))
            score_distillation(
                field, prior, sample_cameras, steps, gen(2), reference=(view, view_cams[0])
            )
            with torch.no_grad():
                sds[steps].append(render(field.splats(), hold).image)
    truth = torch.stack(truth)
    out = {"truth": truth, "two-stage": torch.stack(two_stage)}
    out["two-stage PSNR"] = float(psnr(out["two-stage"], truth, pool=True))
    for steps, renders in sds.items():
        out[f"SDS {steps}"] = torch.stack(renders)
        out[f"SDS {steps} PSNR"] = float(psnr(out[f"SDS {steps}"], truth, pool=True))
    return out
