"""Lecture 11's measured bars over seeds: the numbers of BENCHMARKS.md and the test bars.

For each seed, trains (through the asset cache, so a rerun only evaluates) and measures on the
same held-out shapes (:mod:`visgen.conditioning.evaluate`):

* ``clip``: the tiny CLIP trained with this seed — zero-shot attribute accuracy and the CLIP
  score with the true caption vs another shape's;
* ``mechanisms``: the three text-conditioned DiTs (pooled / cross / joint) with this seed —
  CLIP score and the exact reader's attribute agreement (does the CLIP ranking agree?);
* ``controlnet``: a mask ControlNet on the seed-0 cross-attention base, trained with this
  seed — IoU with the target silhouette vs the base; the IoU every ``--every`` steps of
  a second, uncached run of the same spec (the step where IoU first passes 0.5: ControlNet's
  "sudden convergence"), at batch 64 and at batch 256 with a quarter of the steps; the edges
  and heatmap ControlNets of this seed (IoU, centre error);
* ``ip_adapter``: the IP-Adapter trained with this seed, reading the image tower's pooled
  features (the default) and, for comparison, the tiny CLIP's position-aware embedding — a
  linear probe of each attribute from that input; attribute match with the reference at
  λ = 1 and an empty prompt; at λ = 0, 0.5, 1 with a prompt naming another region: the
  reference's colour and the prompt's region;
* ``transfusion``: the unified model with this seed — captions of held-out shapes and the
  attribute agreement of its drawings.

    python benchmarks/conditioning.py                    # full budget, seed 0 (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/conditioning.py --seeds 0 1 2   # the test budgets
    python benchmarks/conditioning.py --parts controlnet,transfusion --json out.json

Every number is also printed as CPU seconds of training (one thread); wall time on a shared
machine is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from visgen import budget, set_threads
from visgen.conditioning import (
    MultiControlNet,
    attribute_accuracy,
    clip_attribute_accuracy,
    clip_score,
    tiny_clip,
)
from visgen.conditioning.controlnet import controlnet_spec
from visgen.conditioning.evaluate import (
    caption_accuracy,
    controlnet_row,
    draw,
    held_out,
    iou_curve,
    ip_adapter_row,
    text_row,
)
from visgen.conditioning.ip_adapter import FEATURES, ip_adapter_spec
from visgen.conditioning.text import text_dit_spec
from visgen.conditioning.transfusion import transfusion_spec
from visgen.data import REGIONS
from visgen.data.shapes import ATTRIBUTES, make_shapes
from visgen.metrics import linear_probe
from visgen.nn import TEXT_MODES
from visgen.timing import machine
from visgen.train import train_cached
from visgen.train.assets import ASSETS

PARTS = ("clip", "mechanisms", "controlnet", "ip_adapter", "transfusion")


def _train(spec: dict):
    start = time.process_time()
    trained = train_cached(spec, progress=False)
    return trained, time.process_time() - start


def clip(seed: int, test, g) -> dict:
    spec = ASSETS["clip_shapes16"]()
    trained, cpu = _train({**spec, "train": {**spec["train"], "seed": seed}})
    model, captions = trained.model, test.captions
    return {
        "zero_shot": clip_attribute_accuracy(model, test.images, captions),
        "score_true": float(clip_score(model, test.images, captions).mean()),
        "score_shuffled": float(clip_score(model, test.images, captions[1:] + captions[:1]).mean()),
        "train_cpu_s": cpu,
    }


def mechanisms(seed: int, test, g) -> dict:
    clip = tiny_clip()
    out = {}
    for mode in TEXT_MODES:
        trained, cpu = _train(text_dit_spec(mode, seed=seed))
        row = text_row(mode, draw(trained.denoiser(), test.captions, g), test.captions, clip)
        out[mode] = {**row, "train_cpu_s": cpu}
    out["clip_ranking"] = sorted(TEXT_MODES, key=lambda m: -out[m]["CLIP score"])
    out["reader_ranking"] = sorted(TEXT_MODES, key=lambda m: -out[m]["mean"])
    return out


def controlnet(seed: int, test, g, every: int) -> dict:
    recipe = ASSETS["controlnet_dit_mask"]()["train"]
    steps, lr = recipe["steps"], recipe["lr"]
    trained, cpu = _train(controlnet_spec("text_dit_cross", "mask", steps, seed=seed, lr=lr))
    row, _ = controlnet_row("mask", trained.model, test, ["mask"], g)
    base, _ = controlnet_row("base", MultiControlNet([trained.model], [0.0]), test, ["mask"], g)
    out = {
        "iou": row["IoU with the target silhouette"],
        "base_iou": base["IoU with the target silhouette"],
    }
    out["centre_error_px"] = row["centre error (px)"]
    out["train_cpu_s"] = cpu
    for batch, n in ((64, steps), (256, max(steps // 4, 1))):
        curve = iou_curve(
            controlnet_spec("text_dit_cross", "mask", n, seed=seed, batch_size=batch, lr=lr),
            test,
            every,
        )
        first = next((s for s, v in curve if v >= 0.5), None)
        out[f"batch{batch}"] = {"curve": curve, "first_step_iou_0.5": first}
    for kind in ("edges", "heatmap"):  # the tour's other two ControlNets, this seed
        recipe = ASSETS[f"controlnet_dit_{kind}"]()["train"]
        spec = controlnet_spec("text_dit_cross", kind, recipe["steps"], seed=seed, lr=recipe["lr"])
        other, cpu = _train(spec)
        row, _ = controlnet_row(kind, other.model, test, [kind], g)
        out[kind] = {
            "iou": row["IoU with the target silhouette"],
            "centre_error_px": row["centre error (px)"],
            "train_cpu_s": cpu,
        }
    return out


def ip_adapter(seed: int, test, g) -> dict:
    out = {}
    probe_set = make_shapes(2000, 16, 0)  # training-split shapes for the linear probes
    prompts = [f"a {REGIONS[(r + 4) % 9]}" for r in test.region.tolist()]
    for features in FEATURES:
        steps = ASSETS["ip_adapter_shapes16"]()["train"]["steps"]
        trained, cpu = _train(ip_adapter_spec(steps, seed=seed, features=features))
        ip = trained.model
        row = {"train_cpu_s": cpu}
        with torch.no_grad():
            train_x, test_x = ip.image_embedding(probe_set.images), ip.image_embedding(test.images)
        row["probe"] = {
            a: linear_probe(train_x, getattr(probe_set, a), test_x, getattr(test, a))
            for a in ATTRIBUTES
        }
        row["scale1_empty_prompt"], _ = ip_adapter_row(ip, test.images, [""] * len(test), 1.0, g)
        for lam in (0.0, 0.5, 1.0):
            row[f"scale{lam:g}_region_prompt"], _ = ip_adapter_row(ip, test.images, prompts, lam, g)
        out[features] = row
    return out


def transfusion(seed: int, test, g) -> dict:
    steps = ASSETS["transfusion_shapes16"]()["train"]["steps"]
    trained, cpu = _train(transfusion_spec(steps, seed=seed))
    model = trained.model
    captions = caption_accuracy(model.caption(test.images), test)
    drawn = draw(model.denoiser(), test.captions, g)
    return {
        "captions": captions,
        "draws": attribute_accuracy(drawn, test.captions),
        "train_cpu_s": cpu,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {PARTS}")
    p.add_argument("--n", type=int, default=budget(full=300, fast=100), help="held-out shapes")
    p.add_argument("--every", type=int, default=25, help="steps between IoU checks")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        p.error(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {PARTS}")
    set_threads(1)
    test = held_out(args.n)
    results = {}
    for seed in args.seeds:
        for part in parts:
            g = torch.Generator().manual_seed(100 + seed)
            start = time.process_time()
            if part == "controlnet":
                value = controlnet(seed, test, g, args.every)
            else:
                value = globals()[part](seed, test, g)
            value["cpu_s"] = time.process_time() - start
            results.setdefault(part, {})[seed] = value
            print(json.dumps({part: {seed: value}}, default=float), flush=True)
    print(f"\n{platform.node()} {machine()}, torch "
          f"{torch.__version__}, 1 thread, seeds {args.seeds}, N = {args.n}")  # fmt: skip
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1, default=float)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
