"""Figures and measured numbers of lecture 11 (multimodal models and conditioning).

Every panel is computed by visgen: the tokenizer (``visgen.data``), the tiny CLIP, the three
text-conditioned DiTs, guidance with negative prompts, ControlNet, IP-Adapter and the
Transfusion-style model (``visgen.conditioning``). Trained models are the assets of tour
chapter L11 (``visgen tour --only L11`` and the slides train each model once); the ControlNet
training curve is one uncached run of the same spec, evaluated every 25 steps.

Run: ``python -m visgen.course.slides --only 11 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.conditioning import (
    ControlNet,
    IPAdapter,
    MultiControlNet,
    adapter_parameters,
    checksum,
    clip_attribute_accuracy,
    clip_score,
    control_map,
    forward_flops,
    read_attributes,
    tiny_clip,
)
from visgen.conditioning.evaluate import (
    caption_accuracy,
    controlnet_row,
    draw,
    held_out,
    iou_curve,
    ip_adapter_row,
    text_row,
)
from visgen.conditioning.text import STEPS as TEXT_STEPS
from visgen.course.chapters.l11_multimodal import MODES
from visgen.course.figurebook import FigureBook, num
from visgen.data import COLOURS, REGIONS, decode_captions, tokenize_captions
from visgen.train import asset
from visgen.train.assets import ASSETS

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
N = 200
CFG_SCALES = (1.0, 2.0, 3.0, 5.0)
IP_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _hide(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _rows(ax, rows, labels):
    """Image rows (each (k, 3, H, W) in [−1, 1]) as one picture with row labels."""
    k = rows[0].shape[0]
    h = rows[0].shape[-1]
    canvas = np.ones((len(rows) * (h + 2), k * (h + 2), 3))
    for r, imgs in enumerate(rows):
        for c, img in enumerate(imgs):
            canvas[r * (h + 2) : r * (h + 2) + h, c * (h + 2) : c * (h + 2) + h] = (
                img.clamp(-1, 1).permute(1, 2, 0).numpy() + 1
            ) / 2
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([r * (h + 2) + h / 2 for r in range(len(rows))], labels)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def _total(model) -> int:
    return sum(p.numel() for p in model.parameters())


@book.figure
def clip_similarity(results):
    """The tiny CLIP's cosine similarities of 10 held-out images and their captions."""
    test = held_out(N)
    clip = tiny_clip()
    ids = tokenize_captions(test.captions[:1])
    results["caption_example"] = test.captions[0]
    results["ids_example"] = str(ids[0].tolist())
    results["decoded_example"] = decode_captions(ids)[0]
    results["clip_params"] = f"{_total(clip):,}".replace(",", " ")
    results["clip_steps"] = str(ASSETS["clip_shapes16"]()["train"]["steps"])
    acc = clip_attribute_accuracy(clip, test.images, test.captions)
    for k, v in acc.items():
        results[f"clip_zs_{k}"] = num(v, 2)
    true = clip_score(clip, test.images, test.captions).mean()
    shuffled = clip_score(clip, test.images, test.captions[1:] + test.captions[:1]).mean()
    results["clip_true"] = num(float(true), 1)
    results["clip_shuffled"] = num(float(shuffled), 1)
    k = 10
    with torch.no_grad():
        sim = (
            clip.encode_image(test.images[:k])
            @ clip.encode_text(tokenize_captions(test.captions[:k])).T
        )
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    im = ax.imshow(sim.numpy(), cmap="viridis", vmin=-0.2, vmax=1)
    ax.set_xlabel("caption j")
    ax.set_ylabel("image i")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    fig.colorbar(im, ax=ax, label="cos(image, caption)")
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def mechanisms(results):
    """Samples of the three text-conditioned DiTs for the same held-out captions."""
    test = held_out(N)
    clip = tiny_clip()
    g = torch.Generator().manual_seed(0)
    rows, labels = [test.images[:10]], ["prompt's shape"]
    x, t = test.images[:1], torch.full((1,), 0.5)
    ids = tokenize_captions(test.captions[:1])
    for mode, label in MODES.items():
        trained = asset(f"text_dit_{mode}", progress=False)
        samples = draw(trained.denoiser(), test.captions, g)
        row = text_row(label, samples, test.captions, clip)
        results[f"mech_{mode}_clip"] = num(row["CLIP score"], 1)
        for a in ("shape", "colour", "size", "region", "mean"):
            results[f"mech_{mode}_{a}"] = num(row[a], 2)
        results[f"mech_{mode}_params"] = f"{_total(trained.model) / 1e3:.0f}k"
        results[f"mech_{mode}_mflop"] = num(forward_flops(trained.model, x, t, ids) / 1e6, 1)
        rows.append(samples[:10])
        labels.append(mode)
    real = text_row("real", test.images, test.captions, clip)
    results["mech_real_clip"] = num(real["CLIP score"], 1)
    results["mech_steps"] = str(TEXT_STEPS)
    results["n_eval"] = str(N)
    ranking = sorted(MODES, key=lambda m: -float(results[f"mech_{m}_clip"]))
    results["mech_winner"] = ranking[0]
    results["mech_ranking"] = " > ".join(ranking)
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    _rows(ax, rows, labels)
    fig.tight_layout()
    return fig


@book.figure
def guidance(results):
    """CFG scale vs the reader's agreement and the CLIP score; the negative prompt."""
    test = held_out(N)
    clip = tiny_clip()
    den = asset("text_dit_cross", progress=False).denoiser()
    means, scores = [], []
    for w in CFG_SCALES:
        g = torch.Generator().manual_seed(0)
        row = text_row("", draw(den, test.captions, g, scale=w), test.captions, clip)
        means.append(row["mean"])
        scores.append(row["CLIP score"])
        results[f"cfg_{w:g}_mean"] = num(row["mean"], 2)
        results[f"cfg_{w:g}_clip"] = num(row["CLIP score"], 1)
    red = list(COLOURS).index("red")
    for label, negative in (("plain", None), ("negative", "a red")):
        g = torch.Generator().manual_seed(1)
        x = draw(den, ["a disc"] * N, g, negative=negative)
        results[f"neg_{label}_red"] = num(
            float((read_attributes(x)["colour"] == red).float().mean()), 2
        )
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(CFG_SCALES, means, marker="o", color=BLUE, label="attributes right (reader)")
    ax.set_xlabel("guidance scale $w$")
    ax.set_ylabel("share of attributes right", color=BLUE)
    ax2 = ax.twinx()
    ax2.plot(CFG_SCALES, scores, marker="s", color=ORANGE, label="CLIP score")
    ax2.set_ylabel("CLIP score", color=ORANGE)
    ax2.spines["right"].set_visible(True)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def controlnet_samples(results):
    """Fill50K analogue: shapes, their outline, samples of the edges / mask ControlNets."""
    test = held_out(N)
    g = torch.Generator().manual_seed(0)
    base = asset("text_dit_cross", progress=False).model
    nets = {
        k: asset(f"controlnet_dit_{k}", progress=False).model for k in ("mask", "edges", "heatmap")
    }
    digest = checksum(base)
    results["cn_unchanged"] = (
        "unchanged" if all(checksum(n.base) == digest for n in nets.values()) else "CHANGED"
    )
    ids = tokenize_captions(test.captions[:8])
    x, t = torch.randn(8, 3, 16, 16, generator=g), torch.rand(8, generator=g)
    cond = {"base": ids, "control": control_map(test.images[:8], "mask")}
    with torch.no_grad():
        results["cn_init_diff"] = num(
            float((ControlNet(base)(x, t, cond) - base(x, t, ids)).abs().max()), 2
        )
        off = MultiControlNet([nets["mask"]], [0.0])(x, t, cond)
        results["cn_off_diff"] = num(float((off - base(x, t, ids)).abs().max()), 2)
    results["cn_fraction"] = num(100 * adapter_parameters(nets["mask"]) / _total(base), 0)
    rows = [test.images[:10], control_map(test.images[:10], "edges").expand(-1, 3, -1, -1) * 2 - 1]
    labels = ["target", "outline (control)"]
    base_row, _ = controlnet_row("base", MultiControlNet([nets["mask"]], [0.0]), test, ["mask"], g)
    results["cn_base_iou"] = num(base_row["IoU with the target silhouette"], 2)
    results["cn_base_centre"] = num(base_row["centre error (px)"], 2)
    for kind, net in nets.items():
        row, samples = controlnet_row(kind, net, test, [kind], g)
        results[f"cn_{kind}_iou"] = num(row["IoU with the target silhouette"], 2)
        results[f"cn_{kind}_centre"] = num(row["centre error (px)"], 2)
        if kind in ("edges", "mask"):
            rows.append(samples[:10])
            labels.append(f"{kind} ControlNet")
    for s in (0.25, 0.5):
        row, _ = controlnet_row("", MultiControlNet([nets["mask"]], [s]), test, ["mask"], g)
        results[f"cn_strength_{s:g}_iou"] = num(row["IoU with the target silhouette"], 2)
    for label, pair in (
        ("edges_heatmap", ("edges", "heatmap")),
        ("mask_heatmap", ("mask", "heatmap")),
    ):
        row, _ = controlnet_row(
            "", MultiControlNet([nets[k] for k in pair], [1.0, 1.0]), test, list(pair), g
        )
        results[f"cn_{label}_iou"] = num(row["IoU with the target silhouette"], 2)
        results[f"cn_{label}_centre"] = num(row["centre error (px)"], 2)
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    _rows(ax, rows, labels)
    fig.tight_layout()
    return fig


@book.figure
def controlnet_curve(results):
    """IoU during one uncached run of the mask ControlNet's spec (evaluated every 25 steps)."""
    curve = iou_curve(ASSETS["controlnet_dit_mask"](), held_out(100), 25)
    steps, ious = [s for s, _ in curve], [v for _, v in curve]
    first = next((s for s, v in zip(steps, ious) if v >= 0.5), None)
    results["cn_first_05"] = str(first) if first is not None else "not reached"
    results["cn_curve_steps"] = str(steps[-1])
    results["cn_curve_final"] = num(ious[-1], 2)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(steps, ious, marker="o", color=GREEN)
    ax.axhline(0.5, color=GREY, lw=0.8, ls=":")
    ax.set_xlabel("training step (batch 64)")
    ax.set_ylabel("IoU with the target silhouette")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    return fig


@book.figure
def ip_sweep(results):
    """IP-Adapter: the reference's colour vs the prompt's region as λ grows."""
    test = held_out(N)
    ip = asset("ip_adapter_shapes16", progress=False).model
    base = ip.base
    fresh = IPAdapter(base, encoder=ip.encoder)
    g = torch.Generator().manual_seed(0)
    ids = tokenize_captions(test.captions[:8])
    x, t = torch.randn(8, 3, 16, 16, generator=g), torch.rand(8, generator=g)
    cond = {"text": ids, "image": test.images[8:16]}
    with torch.no_grad():
        reference = base(x, t, ids)
        ip.scale = 0.0
        results["ip_zero_diff"] = num(float((ip(x, t, cond) - reference).abs().max()), 2)
        ip.scale = 1.0
        results["ip_init_one_diff"] = num(float((fresh(x, t, cond) - reference).abs().max()), 3)
    results["ip_params"] = f"{adapter_parameters(ip):,}".replace(",", " ")
    results["ip_fraction"] = num(100 * adapter_parameters(ip) / _total(base), 1)
    row, _ = ip_adapter_row(ip, test.images, [""] * N, 1.0, g)
    for a in ("shape", "size", "region", "colour"):
        results[f"ip_empty_{a}"] = num(row[f"{a} = image"], 2)
    prompts = [f"a {REGIONS[(r + 4) % 9]}" for r in test.region.tolist()]
    results["ip_prompt_example"] = prompts[0]
    colour, region = [], []
    for lam in IP_SCALES:
        row, _ = ip_adapter_row(ip, test.images, prompts, lam, g)
        colour.append(row["colour = image"])
        region.append(row["region = text"])
        results[f"ip_{lam:g}_colour"] = num(colour[-1], 2)
        results[f"ip_{lam:g}_region"] = num(region[-1], 2)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(IP_SCALES, colour, marker="o", color=RED, label="colour = reference image")
    ax.plot(IP_SCALES, region, marker="s", color=BLUE, label="region = text prompt")
    ax.axhline(0.6, color=GREY, lw=0.8, ls=":")
    ax.set_xlabel(r"image scale $\lambda$")
    ax.set_ylabel("share of samples")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=11, loc="lower left")
    fig.tight_layout()
    return fig


@book.figure
def transfusion_mask(results):
    """The two attention masks of the unified model (True = may attend)."""
    model = asset("transfusion_shapes16", progress=False).model
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.9))
    for ax, mask, title in (
        (axes[0], model.mask_caption_first, "caption first: draw"),
        (axes[1], model.mask_image_first, "image first: caption"),
    ):
        ax.imshow(mask.numpy(), cmap="Greys", vmin=0, vmax=1.4)
        ax.set_title(title)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def transfusion_samples(results):
    """The unified model's drawings of held-out captions; its captions of held-out shapes."""
    test = held_out(N)
    clip = tiny_clip()
    model = asset("transfusion_shapes16", progress=False).model
    captions = model.caption(test.images)
    acc = caption_accuracy(captions, test)
    for k, v in acc.items():
        results[f"tf_cap_{k}"] = num(v, 2)
    results["tf_caption_0"] = captions[0]
    results["tf_caption_1"] = captions[1]
    results["tf_truth_0"] = test.captions[0]
    results["tf_truth_1"] = test.captions[1]
    g = torch.Generator().manual_seed(0)
    den = model.denoiser()
    samples = draw(den, test.captions, g)
    row = text_row("", samples, test.captions, clip)
    for a in ("shape", "colour", "size", "region", "mean"):
        results[f"tf_draw_{a}"] = num(row[a], 2)
    results["tf_draw_clip"] = num(row["CLIP score"], 1)
    results["tf_tokens_cached"] = str(den.model.token_evaluations)
    full = model.denoiser(cache=False)
    draw(full, test.captions[:N], torch.Generator().manual_seed(0))
    results["tf_tokens_full"] = str(full.model.token_evaluations)
    results["tf_steps"] = str(ASSETS["transfusion_shapes16"]()["train"]["steps"])
    fig, ax = plt.subplots(figsize=(8.0, 1.9))
    _rows(ax, [test.images[:10], samples[:10]], ["held-out shape", "drawn from its caption"])
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    book.run()
