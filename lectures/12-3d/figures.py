"""Figures and measured numbers of lecture 12 (3D generation: cameras, splats, SDS/VSD,
multi-view and novel-view diffusion, generate-then-reconstruct).

Every panel is computed by visgen: camera invariants (``threed.cameras``), the torch splat
renderer and its photometric fit (``threed.render``, ``threed.reconstruct``), and the measured
tasks of :mod:`visgen.threed.tasks` with the cached assets ``cube_prior16``, ``mvdream16``,
``zero123_16`` and ``seva16`` (the tour chapter L12 runs the same tasks at the same budgets, so
``visgen tour`` and the slides share the cache).

Run: ``python -m visgen.course.slides --only 12 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from visgen import budget
from visgen.course.figurebook import FigureBook, num
from visgen.threed import CANONICAL, SplatField, cube_splats, fit_splats, orbit, psnr, render
from visgen.threed.datasets import ELEVATION, cameras
from visgen.threed.scenes import random_blobs, random_cube_colors
from visgen.threed.tasks import (
    canonical_truth_scores,
    distill_canonical_cube,
    joint_generation,
    novel_view_scores,
    pipeline_scores,
    sds_scores,
)
from visgen.train import asset

book = FigureBook(__file__)
AZ8 = torch.arange(8) * 45.0


def _img(ax, x, title=None):
    ax.imshow(((x.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=11)


def _strip(axes, images, label, fontsize=13):
    for ax, x in zip(axes, images):
        _img(ax, x)
    axes[0].set_ylabel(label, fontsize=fontsize, rotation=0, ha="right", va="center")


@book.figure(fmt="png")
def cameras_plucker(results):
    """Orbit cameras and the Plücker map of one of them; the exact invariants in float64."""
    az = torch.tensor([0.0, 50.0, 130.0, 250.0], dtype=torch.float64)
    cams = orbit(az, torch.tensor([10.0, 30.0, -20.0, 55.0]), 3.0, size=16)
    origins, dirs = cams.rays()
    pl = cams.plucker()
    d, m = pl[:, :3], pl[:, 3:]
    moved = torch.linalg.cross(origins + 1.7 * dirs, dirs, dim=-1).permute(0, 3, 1, 2)
    uv, _ = cams.project((origins + 2.0 * dirs).reshape(4, -1, 3))
    results["cam_dm"] = num(float((d * m).sum(1).abs().max()) + 1e-30, 2)
    results["cam_slide"] = num(float((moved - m).abs().max()) + 1e-30, 2)
    results["cam_reproject"] = num(
        float((uv - cams.pixel_grid().reshape(1, -1, 2)).abs().max()) + 1e-30, 2
    )
    fig = plt.figure(figsize=(10, 3.4))
    ax3 = fig.add_subplot(1, 3, 1, projection="3d")
    c, f = cams.centers.float(), cams.forward.float()
    ax3.quiver(c[:, 0], c[:, 1], c[:, 2], f[:, 0], f[:, 1], f[:, 2], length=1.2, color="k")
    ax3.scatter([0], [0], [0], color="#b3261e", s=30)
    ax3.set_title("4 orbit cameras look at the origin", fontsize=11)
    for k, (img, title) in enumerate(((d[1], "direction d (RGB = xyz)"), (m[1], "moment c × d"))):
        ax = fig.add_subplot(1, 3, k + 2)
        v = img.float()
        v = (v - v.amin()) / (v.amax() - v.amin() + 1e-9)
        ax.imshow(v.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title + ", camera 1", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def renders(results):
    """Scenes rendered at 8 azimuths; the gradient check and a photometric fit."""
    g = torch.Generator().manual_seed(1)
    colors, _ = random_cube_colors(1, g)
    blobs = random_blobs(1, 3, g)
    cams = cameras(AZ8, torch.full((8,), ELEVATION))
    with torch.no_grad():
        rows = [
            render(s, cams).image for s in (cube_splats(colors[0]), cube_splats(CANONICAL), blobs)
        ]
    # photometric fit: 24 splats to 8 views, judged on 8 views between them
    held = cameras(AZ8 + 22.5, torch.full((8,), ELEVATION))
    with torch.no_grad():
        held_truth = render(blobs, held).image
    field = SplatField.random(24, g)
    with torch.no_grad():
        before = render(field.splats(), held).image
    steps = budget(full=300, fast=150)
    fit_splats(field, rows[2], cams, steps)
    with torch.no_grad():
        after = render(field.splats(), held).image
    results["fit_steps"] = str(steps)
    results["fit_before"] = num(psnr(before, held_truth, pool=True), 3)
    results["fit_after"] = num(psnr(after, held_truth, pool=True), 3)
    fig, axes = plt.subplots(4, 8, figsize=(9, 4.9))
    labels = ("palette cube", "canonical cube", "3 blobs", "fitted splats\n(held-out views)")
    for r, (images, label) in enumerate(zip([*rows, after], labels)):
        _strip(axes[r], images, label)
    for k in range(8):
        axes[0, k].set_title(f"{int(AZ8[k])}°", fontsize=11)
    fig.tight_layout(h_pad=0.2, w_pad=0.1)
    return fig


SDS_RUNS = (
    ("view-agnostic", {"view": False}),
    ("view-conditioned", {"view": True}),
    ("view, CFG 5", {"view": True, "guidance": 5.0}),
    ("view, CFG 20", {"view": True, "guidance": 20.0}),
    ("VSD, CFG 5", {"view": True, "guidance": 5.0, "particles": 4, "vsd": True}),
)


@book.figure(fmt="png")
def sds(results):
    """SDS / VSD of the canonical-cube prior into a grey cube of splats: 8-azimuth strips."""
    prior = asset("cube_prior16", progress=False).denoiser()
    steps = 200  # the tour chapter's full budget and the tests' steps
    results["sds_steps"] = str(steps)
    truth = canonical_truth_scores()
    results["janus_truth"] = num(truth["Janus score"], 3)
    results["sat_truth"] = num(truth["saturation"], 2)
    cams = cameras(AZ8, torch.full((8,), ELEVATION))
    strips = []
    with torch.no_grad():
        strips.append(("truth", render(cube_splats(CANONICAL), cams).image))
    for (label, kw), key in zip(SDS_RUNS, ("agn", "view", "w5", "w20", "vsd")):
        fields = distill_canonical_cube(prior, steps=steps, seed=0, **kw)
        s = sds_scores(fields)
        results[f"{key}_rmse"] = num(s["face colour RMSE"], 2)
        results[f"{key}_janus"] = num(s["Janus score"], 3)
        results[f"{key}_sat"] = num(s["saturation"], 2)
        if "spread across particles" in s:
            results[f"{key}_spread"] = num(s["spread across particles"], 2)
        with torch.no_grad():
            strips.append((label, render(fields[0].splats(), cams).image))
    fig, axes = plt.subplots(len(strips), 8, figsize=(8.6, 6.6))
    for r, (label, images) in enumerate(strips):
        _strip(axes[r], images, label)
    for k in range(8):
        axes[0, k].set_title(f"{int(AZ8[k])}°", fontsize=11)
    fig.tight_layout(h_pad=0.15, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def multiview(results):
    """Joint vs independent 4-view generation from the same noise (mvdream16)."""
    n = budget(full=200, fast=100)
    res = joint_generation(asset("mvdream16", progress=False).denoiser(), n, seed=1)
    results["mv_n"] = str(n)
    results["mv_joint"] = num(res["joint consistency"], 2)
    results["mv_indep"] = num(res["independent consistency"], 2)
    results["mv_data"] = num(res["data consistency"], 2)
    results["mv_joint_colors"] = num(res["joint colours"], 2)
    results["mv_indep_colors"] = num(res["independent colours"], 2)
    results["mv_data_colors"] = num(res["data colours"], 2)
    fig, axes = plt.subplots(4, 8, figsize=(9, 4.8))
    for s in range(4):
        for v in range(4):
            _img(axes[s, v], res["joint"][s, v])
            _img(axes[s, 4 + v], res["independent"][s, v])
    axes[0, 1].set_title("joint: 4 views, 3D attention", fontsize=11, loc="left")
    axes[0, 5].set_title("same noise, view mixing off", fontsize=11, loc="left")
    fig.tight_layout(h_pad=0.2, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def novel_views(results):
    """Novel views from one input view: Zero-1-to-3 style (relative pose) and SEVA style."""
    n = budget(full=200, fast=100)
    results["nv_n"] = str(n)
    shown = {}
    for name, key in (("zero123_16", "z123"), ("seva16", "seva")):
        res = novel_view_scores(asset(name, progress=False).denoiser(), n, seed=2)
        for part in ("", " 90", " 180", " 270"):
            results[f"{key}{part.strip()}"] = num(res["model" + part], 3)
        shown[key] = res
    for part in ("", " 90", " 180", " 270"):
        results[f"copy{part.strip()}"] = num(shown["z123"]["copy" + part], 3)
    data, out = shown["z123"]["data"][:6], shown["z123"]["samples"][:6]
    fig, axes = plt.subplots(6, 7, figsize=(8.4, 7.4))
    heads = (
        "input",
        "+90° gen.",
        "+90° true",
        "+180° gen.",
        "+180° true",
        "+270° gen.",
        "+270° true",
    )
    for i in range(6):
        panels = [data[i, 0], out[i, 0], data[i, 1], out[i, 1], data[i, 2], out[i, 2], data[i, 3]]
        for j, x in enumerate(panels):
            _img(axes[i, j], x, heads[j] if i == 0 else None)
    fig.tight_layout(h_pad=0.2, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def pipeline(results):
    """Generate-then-reconstruct vs SDS from one view, on held-out views."""
    n = budget(full=4, fast=2)
    res = pipeline_scores(asset("zero123_16", progress=False).denoiser(), n, seed=3)
    results["pipe_n"] = str(n)
    results["pipe_two"] = num(res["two-stage PSNR"], 3)
    results["pipe_sds15"] = num(res["SDS 15 PSNR"], 3)
    results["pipe_sds200"] = num(res["SDS 200 PSNR"], 3)
    rows = (("truth", "truth"), ("two-stage", "generate + fit"), ("SDS 15", "SDS, 60 NFE"),
            ("SDS 200", "SDS, 800 NFE"))  # fmt: skip
    fig, axes = plt.subplots(len(rows), 2 * n, figsize=(0.8 * 2 * n + 1.6, 3.9))
    for r, (key, label) in enumerate(rows):
        images = [res[key][i, k] for i in range(n) for k in range(2)]
        _strip(axes[r], images, label, fontsize=14)
    fig.tight_layout(h_pad=0.2, w_pad=0.1)
    return fig


if __name__ == "__main__":
    book.run()
