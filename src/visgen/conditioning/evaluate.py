"""How lecture 11 measures its models, shared by the tour chapter L11, its tests, the slides and
``benchmarks/conditioning.py``: held-out prompts, one sampler, and one row format per question.

Every generator is sampled with 20 Euler steps from t = 0.999 (the lecture-5 grid) and, unless
said otherwise, classifier-free guidance w = 3 on the caption. Attributes of generated shapes
are read by the exact reader (:func:`~visgen.conditioning.read_attributes`); the learned judge
is the tiny CLIP's caption–image score (:func:`~visgen.conditioning.clip_score`).
"""

from __future__ import annotations

import torch

from visgen.conditioning.clip import TinyCLIP, clip_score
from visgen.conditioning.controls import (
    attribute_accuracy,
    control_map,
    iou,
    read_attributes,
    shape_mask,
)
from visgen.conditioning.ip_adapter import IPAdapter, null_images
from visgen.conditioning.text import text_guidance
from visgen.data import get_dataset
from visgen.data.shapes import ATTRIBUTES, Shapes, make_shapes, parse_caption, tokenize_captions
from visgen.nn import build_model
from visgen.param import Denoiser
from visgen.sampling import sample_euler
from visgen.sampling.guidance import classifier_free_guidance
from visgen.train import TrainConfig, Trainer, make_method
from visgen.train.assets import normalize_spec

__all__ = [
    "GRID",
    "SCALE",
    "caption_accuracy",
    "controlnet_row",
    "draw",
    "held_out",
    "iou_curve",
    "ip_adapter_row",
    "placement_row",
    "text_row",
]

GRID = torch.linspace(0.999, 0.0, 21)
SCALE = 3.0
EVAL_SEED = 1  # the test split's seed: shapes the generators never saw


def held_out(n: int) -> Shapes:
    """n held-out shapes with captions (the test split's generator)."""
    return make_shapes(n, 16, EVAL_SEED)


def _noise(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=generator)


@torch.no_grad()
def draw(
    den: Denoiser,
    captions,
    generator: torch.Generator,
    *,
    scale: float = SCALE,
    negative: str | None = None,
) -> torch.Tensor:
    """Images for ``captions`` from a caption-conditioned denoiser (CFG ``scale``)."""
    ids = tokenize_captions(list(captions))
    guided = den if scale == 1 and negative is None else text_guidance(den, scale, negative)
    return sample_euler(guided, _noise(len(ids), generator), GRID, ids).clamp(-1, 1)


def text_row(label: str, images: torch.Tensor, captions, clip: TinyCLIP, **extra) -> dict:
    """CLIP score and the reader's per-attribute agreement of images with their captions."""
    acc = attribute_accuracy(images, list(captions))
    return {
        "samples": label,
        **extra,
        "CLIP score": float(clip_score(clip, images, list(captions)).mean()),
        **{a: acc[a] for a in ("shape", "colour", "size", "region")},
        "mean": acc["mean"],
    }


@torch.no_grad()
def controlnet_row(
    label: str,
    model,
    test: Shapes,
    kinds,
    generator: torch.Generator,
    *,
    scale: float = SCALE,
    **extra,
) -> tuple[dict, torch.Tensor]:
    """Samples of a ControlNet (or :class:`MultiControlNet`) given the ``kinds`` of maps of
    ``test``'s images and their captions, and their :func:`placement_row`."""
    ids = tokenize_captions(test.captions)
    control = torch.cat([control_map(test.images, k) for k in kinds], 1)
    cond = {"base": ids, "control": control}
    null = {"base": torch.full_like(ids, -1), "control": control}
    den = Denoiser(model, "linear", "x0")
    x = sample_euler(
        classifier_free_guidance(den, scale, null=null), _noise(len(ids), generator), GRID, cond
    ).clamp(-1, 1)
    return placement_row(label, x, test, **extra), x


def placement_row(label: str, images: torch.Tensor, test: Shapes, **extra) -> dict:
    """How well ``images`` (one per shape of ``test``) put a shape where ``test``'s are: IoU of
    the silhouettes and the distance between centres (in pixels)."""
    if len(images) != len(test):
        raise ValueError(f"images must hold {len(test)} samples, got {len(images)}")
    overlap = iou(shape_mask(images), shape_mask(test.images))
    centre = (read_attributes(images)["position"] - test.position).norm(dim=1) * 16
    return {
        "model": label,
        **extra,
        "IoU with the target silhouette": float(overlap.mean()),
        "centre error (px)": float(centre.mean()),
    }


def iou_curve(spec: dict, test: Shapes, every: int) -> list[tuple[int, float]]:
    """IoU with the mask (:func:`controlnet_row`) of the EMA model of one uncached training run
    of the mask ControlNet ``spec``, at step 0 and every ``every`` steps (and the last):
    ControlNet's "sudden convergence" made visible."""
    spec = normalize_spec(spec)
    torch.manual_seed(spec["train"]["seed"])
    model = build_model(spec["model"])
    model.load_pretrained()  # what train_cached does for an adapter
    trainer = Trainer(
        model,
        make_method(spec["method"]),
        get_dataset(spec["data"]),
        TrainConfig(**spec["train"]),
        labels=True,
        progress=False,
    )
    curve = []
    while True:
        if trainer.step % every == 0 or trainer.step == trainer.config.steps:
            row, _ = controlnet_row(
                "", trainer.ema.eval(), test, ["mask"], torch.Generator().manual_seed(0)
            )
            curve.append((trainer.step, row["IoU with the target silhouette"]))
        if trainer.step >= trainer.config.steps:
            return curve
        trainer.train_step()


@torch.no_grad()
def ip_adapter_row(
    ip: IPAdapter,
    references: torch.Tensor,
    captions,
    scale: float,
    generator: torch.Generator,
    *,
    cfg: float = SCALE,
) -> tuple[dict, torch.Tensor]:
    """IP-Adapter samples at image scale λ = ``scale`` for (reference, caption) pairs: the
    share that shows each attribute of the reference image (``<attribute> = image``) and each
    attribute the caption names (``<attribute> = text``)."""
    ids = tokenize_captions(list(captions))
    cond = {"text": ids, "image": references}
    null = {"text": torch.full_like(ids, -1), "image": null_images(references)}
    previous, ip.scale = ip.scale, float(scale)
    try:
        den = classifier_free_guidance(Denoiser(ip, "linear", "x0"), cfg, null=null)
        x = sample_euler(den, _noise(len(ids), generator), GRID, cond).clamp(-1, 1)
    finally:
        ip.scale = previous
    seen, ref = read_attributes(x), read_attributes(references)
    row = {"λ": float(scale)}
    for attribute in ATTRIBUTES:
        row[f"{attribute} = image"] = float((seen[attribute] == ref[attribute]).float().mean())
    wanted = [parse_caption(c) for c in captions]
    for attribute in ATTRIBUTES:
        rows = [i for i, w in enumerate(wanted) if w[attribute] is not None]
        if rows:
            target = torch.tensor([wanted[i][attribute] for i in rows])
            row[f"{attribute} = text"] = float((seen[attribute][rows] == target).float().mean())
    return row, x


def caption_accuracy(captions, shapes: Shapes) -> dict[str, float]:
    """Share of generated ``captions`` that name each attribute of ``shapes`` right (a caption
    outside the grammar names nothing), and ``mean`` over the four attributes."""
    if isinstance(captions, str) or len(captions) != len(shapes):
        raise ValueError(f"captions must be a list of {len(shapes)} captions")
    truth = {"shape": shapes.shape, "colour": shapes.colour, "size": shapes.size}
    truth["region"] = shapes.region
    named = []
    for caption in captions:
        try:
            named.append(parse_caption(caption))
        except ValueError:
            named.append({})
    out = {
        a: sum(p.get(a) == int(truth[a][i]) for i, p in enumerate(named)) / len(shapes)
        for a in ATTRIBUTES
    }
    out["mean"] = sum(out.values()) / len(ATTRIBUTES)
    return out
