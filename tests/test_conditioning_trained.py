"""Lecture 11's trained bars on the tour's models (the same specs in FAST runs, seed 0).

``benchmarks/conditioning.py --seeds 0 1 2`` measures the same quantities over three seeds;
each bar below sits under the worst seed (BENCHMARKS.md, "Lecture 11"). The exactness of the
adapters is re-checked on the trained models: the base inside every adapter checkpoint has
the checksum of the base asset.
"""

import pytest
import torch

from visgen.conditioning import (
    MultiControlNet,
    adapter_parameters,
    attribute_accuracy,
    checksum,
    clip_attribute_accuracy,
    clip_score,
    tiny_clip,
)
from visgen.conditioning.evaluate import (
    caption_accuracy,
    controlnet_row,
    draw,
    held_out,
    ip_adapter_row,
)
from visgen.data import REGIONS
from visgen.train import asset

N = 100
NOISE = 100  # the benchmark's noise for seed 0 (generator 100 + seed): the same samples
# Each bar sits under the worst of seeds 0-2 at N = 100 (`VISGEN_FAST=1 python
# benchmarks/conditioning.py --seeds 0 1 2`; BENCHMARKS.md, "Lecture 11"): measured range in
# the comment, issue 20's bar where ours is lower.
BARS = {
    "clip_colour": 0.95,  # 1.00-1.00
    "clip_mean": 0.9,  # 0.965-0.97
    "clip_gap": 50.0,  # score true - shuffled: 73.4-74.0
    "controlnet_iou": 0.6,  # 0.70-0.73 (150 steps at lr 4e-3; 200 at 2e-3 gave 0.67-0.71)
    "base_iou": 0.3,  # 0.22-0.23 (chance: the base draws the shape anywhere)
    "ip_colour_scale1": 0.8,  # 0.91-0.96
    "ip_colour_scale0": 0.45,  # 0.30-0.33: λ = 0 is the text-only base (chance 1/4)
    "ip_image_half": 0.6,  # 0.69-0.81
    # 0.60-0.65, the worst seed at the bar of 0.6; the base's own at λ = 0: 0.62-0.71;
    # the position-aware CLIP embedding as input: 0.36-0.42. 0.55: a machine whose floats train
    # a slightly different adapter must not fail on a bar with no margin
    "ip_text_half": 0.55,
    "caption_mean": 0.8,  # 0.825-0.835 (600 steps; 500 steps gave 0.79-0.81)
    "draw_colour": 0.9,  # 0.97-0.99 (chance 1/4)
    "draw_mean": 0.65,  # 0.695-0.73 (chance 0.26)
}


@pytest.fixture(scope="module")
def test_set():
    return held_out(N)


def _total(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_tiny_clip_reads_attributes_and_scores_captions(test_set):
    clip = tiny_clip()
    acc = clip_attribute_accuracy(clip, test_set.images, test_set.captions)
    assert acc["colour"] >= BARS["clip_colour"] and acc["mean"] >= BARS["clip_mean"], acc
    true = clip_score(clip, test_set.images, test_set.captions).mean()
    other = clip_score(clip, test_set.images, test_set.captions[1:] + test_set.captions[:1]).mean()
    assert true > other + BARS["clip_gap"], (true, other)


def test_mask_controlnet_draws_inside_the_mask(test_set):
    base = asset("text_dit_cross", progress=False).model
    net = asset("controlnet_dit_mask", progress=False).model
    assert checksum(net.base) == checksum(base)  # training never touched the base
    g = torch.Generator().manual_seed(NOISE)
    row, _ = controlnet_row("mask", net, test_set, ["mask"], g)
    off, _ = controlnet_row("base", MultiControlNet([net], [0.0]), test_set, ["mask"], g)
    iou, chance = row["IoU with the target silhouette"], off["IoU with the target silhouette"]
    assert iou >= BARS["controlnet_iou"] and chance <= BARS["base_iou"], (iou, chance)


def test_ip_adapter_image_and_text(test_set):
    ip = asset("ip_adapter_shapes16", progress=False).model
    assert checksum(ip.base) == checksum(asset("text_dit_cross", progress=False).model)
    assert adapter_parameters(ip) < 0.1 * _total(ip.base)
    g = torch.Generator().manual_seed(NOISE)
    alone, _ = ip_adapter_row(ip, test_set.images, [""] * N, 1.0, g)
    assert alone["colour = image"] >= BARS["ip_colour_scale1"], alone
    prompts = [f"a {REGIONS[(r + 4) % 9]}" for r in test_set.region.tolist()]
    off, _ = ip_adapter_row(ip, test_set.images, prompts, 0.0, g)  # the base: text only
    assert off["colour = image"] <= BARS["ip_colour_scale0"], off
    half, _ = ip_adapter_row(ip, test_set.images, prompts, 0.5, g)
    assert half["colour = image"] >= BARS["ip_image_half"], half
    assert half["region = text"] >= BARS["ip_text_half"], half


def test_transfusion_captions_and_draws(test_set):
    model = asset("transfusion_shapes16", progress=False).model
    acc = caption_accuracy(model.caption(test_set.images), test_set)
    assert acc["mean"] >= BARS["caption_mean"], acc
    samples = draw(model.denoiser(), test_set.captions, torch.Generator().manual_seed(NOISE))
    drawn = attribute_accuracy(samples, test_set.captions)
    # the drawings match their captions well above chance (the reader's mean chance: 0.26)
    assert drawn["colour"] >= BARS["draw_colour"] and drawn["mean"] >= BARS["draw_mean"], drawn
