"""Tour chapter L11: conditioning — text encoders, three ways to read a caption, guidance with
negative prompts, ControlNet, IP-Adapter, and one transformer that captions and draws."""

from __future__ import annotations

import torch

from visgen import budget
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
)
from visgen.conditioning.evaluate import (
    GRID,
    SCALE,
    caption_accuracy,
    controlnet_row,
    draw,
    held_out,
    ip_adapter_row,
    placement_row,
    text_row,
)
from visgen.conditioning.text import TEXT_DIT
from visgen.course import chapter
from visgen.data import COLOURS, REGIONS, decode_captions, tokenize_captions
from visgen.nn import DiT

MODES = {
    "pooled": "pooled text → adaLN",
    "cross": "cross-attention",
    "joint": "MMDiT joint attention",
}
CFG_SCALES = (1.0, 3.0, 5.0)
STRENGTHS = (0.0, 0.5, 1.0)
IP_SCALES = (0.0, 0.5, 1.0)


def _n() -> int:
    return budget(full=50, fast=40)


def _total_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _clip_section(ctx, test):
    ids = tokenize_captions(test.captions[:2] + ["a red"])
    ctx.text(
        "**Text encoders.** The captions come from a closed grammar, *a [size] [colour] "
        "[shape] [region]*, so the tokenizer is a word list (`visgen.data.tokenize_captions`, "
        f"{ids.shape[1]} slots, −1 pads): `{test.captions[0]}` → `{ids[0].tolist()}` → "
        f"`{decode_captions(ids[:1])[0]}`. Training drops whole attribute phrases at random "
        "(`drop_attributes`), so partial prompts such as `a red` and negative prompts work.",
        "A tiny CLIP (`clip_shapes16`: the word-level text encoder of lecture 5 and a "
        "three-layer CNN, trained contrastively on caption–image pairs) gives the "
        "caption–image agreement score, CLIPScore = 100·max(cos, 0), used below as a learned "
        "metric next to the exact attribute reader.",
    )
    clip = ctx.asset("clip_shapes16").model
    zero_shot = clip_attribute_accuracy(clip, test.images, test.captions)
    true = float(clip_score(clip, test.images, test.captions).mean())
    shuffled = float(clip_score(clip, test.images, test.captions[1:] + test.captions[:1]).mean())
    rows = [
        {"judge": "tiny CLIP, zero-shot", **{k: zero_shot[k] for k in ("shape", "colour", "size", "region")}, "mean": zero_shot["mean"]},
        {"judge": "chance", "shape": 1 / 3, "colour": 1 / 4, "size": 1 / 3, "region": 1 / 9, "mean": (1 / 3 + 1 / 4 + 1 / 3 + 1 / 9) / 4, "_floor": True},
    ]  # fmt: skip
    ctx.table(
        rows,
        f"Zero-shot reading of {len(test)} held-out shapes by the tiny CLIP: for each "
        "attribute, the true caption against the captions with that attribute changed. "
        f"CLIP score with the true caption {true:.1f}, with another shape's caption "
        f"{shuffled:.1f}.",
    )
    ctx.metric("clip.zero_shot", zero_shot)
    ctx.metric("clip.score_true", true)
    ctx.metric("clip.score_shuffled", shuffled)
    return clip


def _mechanisms_section(ctx, test):
    ctx.text(
        "**Three ways to read a caption.** The same DiT (16 tokens, 4 blocks of width 64) "
        "reads the caption through the pooled text vector in adaLN, through cross-attention "
        "(Stable Diffusion, PixArt-α) or through MMDiT joint attention (SD3). What each costs "
        "is below; how well each learns at equal compute (`text_dit_pooled`, "
        "`text_dit_cross`, `text_dit_joint`: the same data, steps, batch and optimiser) is "
        "measured in the lecture-11 slides and BENCHMARKS.md — training the two other DiTs "
        "would double this chapter's budget. The cross-attention DiT is the base of every "
        "adapter below."
    )
    x, t = test.images[:1], torch.full((1,), 0.5)
    ids = tokenize_captions(test.captions[:1])
    rows = []
    for mode, label in MODES.items():
        torch.manual_seed(0)
        model = DiT(**{k: v for k, v in TEXT_DIT.items() if k != "name"}, text_mode=mode)
        rows.append(
            {
                "text enters by": label,
                "parameters": _total_parameters(model),
                "MFLOP / forward": forward_flops(model, x, t, ids) / 1e6,
                "text tokens attended": "none (one vector)" if mode == "pooled" else "9",
            }
        )
    ctx.table(
        rows,
        "Cost of the three mechanisms for one 16×16 image and a caption of 8 words (+ start "
        "token): parameters and forward FLOPs (torch's counter). Joint attention also runs "
        "the text through every block's MLP.",
    )
    ctx.metric("mechanisms.mflop", {m: r["MFLOP / forward"] for m, r in zip(MODES, rows)})
    return ctx.asset("text_dit_cross").denoiser()


def _guidance_section(ctx, g, den, clip, test):
    """The guidance table and the negative prompt; returns the samples at w = SCALE (3), the
    controlled samples' CFG scale."""
    rows, samples = [], {}
    for w in CFG_SCALES:
        samples[w] = draw(den, test.captions, g, scale=w)
        rows.append(text_row(f"CFG w = {w:g}", samples[w], test.captions, clip, w=w))
    rows.append(
        {**text_row("real shapes (ceiling)", test.images, test.captions, clip), "_floor": True}
    )
    shuffled = test.captions[1:] + test.captions[:1]
    rows.append(
        {
            **text_row("real shapes, another caption (chance)", test.images, shuffled, clip),
            "_floor": True,
        }
    )
    ctx.table(
        rows,
        f"Classifier-free guidance on the caption (cross-attention DiT, the base of the "
        f"adapters below; N = {len(test)} held-out captions, 20 Euler steps): w = 1 is the "
        "conditional model, larger w follows the caption more closely. CLIP score: the tiny "
        "CLIP's agreement; attribute columns: share of samples that show what the caption "
        "names (exact reader). Shaded: real shapes with their own and with another caption.",
    )
    ctx.metric("cfg.mean", {str(r["w"]): r["mean"] for r in rows if "w" in r})
    n = len(test)
    prompts = ["a disc"] * n
    plain = draw(den, prompts, g)
    negative = draw(den, prompts, g, negative="a red")
    red = list(COLOURS).index("red")
    share = {
        label: float((read_attributes(x)["colour"] == red).float().mean())
        for label, x in (("plain", plain), ("negative", negative))
    }
    ctx.images(
        torch.cat([plain[:12], negative[:12]]),
        "Prompt `a disc`, CFG w = 3: top row with the empty caption as the unconditional "
        "branch, bottom row with the negative prompt `a red` in its place "
        f"(red discs: {share['plain']:.0%} → {share['negative']:.0%} of {n}).",
        nrow=12,
    )
    ctx.metric("negative_prompt.red_share", share)
    return samples[SCALE]


def _controlnet_section(ctx, g, test, base_samples):
    base = ctx.asset("text_dit_cross").model
    digest = checksum(base)
    nets = {
        kind: ctx.asset(f"controlnet_dit_{kind}").model for kind in ("mask", "edges", "heatmap")
    }
    fresh = ControlNet(base)
    ids = tokenize_captions(test.captions[:8])
    x, t = torch.randn(8, 3, 16, 16, generator=g), torch.rand(8, generator=g)
    cond = {"base": ids, "control": control_map(test.images[:8], "mask")}
    with torch.no_grad():
        init_diff = float((fresh(x, t, cond) - base(x, t, ids)).abs().max())
        off_diff = float(
            (MultiControlNet([nets["mask"]], [0.0])(x, t, cond) - base(x, t, ids)).abs().max()
        )
    unchanged = all(checksum(net.base) == digest for net in nets.values())
    fraction = adapter_parameters(nets["mask"]) / _total_parameters(base)
    ctx.text(
        "**ControlNet.** A trainable copy of the base's patch embedding and first two "
        "blocks reads the control map through a zero-initialised linear layer and returns "
        "residuals through zero-initialised layers. Exactness: a fresh ControlNet differs "
        f"from the base by max |Δ| = {init_diff:g}; a trained one at strength 0 by "
        f"{off_diff:g}; the base's checksum after training is "
        f"{'unchanged' if unchanged else 'CHANGED'}. The copy holds {fraction:.0%} of the "
        "base's parameters (the paper copies Stable Diffusion's encoder: about 40 %)."
    )
    ctx.metric("controlnet.init_max_diff", init_diff)
    ctx.metric("controlnet.strength0_max_diff", off_diff)
    ctx.metric("controlnet.base_unchanged", unchanged)
    ctx.metric("controlnet.parameter_fraction", fraction)
    rows, shown = (
        [],
        [test.images[:12], control_map(test.images[:12], "edges").expand(-1, 3, -1, -1) * 2 - 1],
    )
    # the base drawing the captions: the guidance table's w = 3 samples (= strength 0, exactly)
    rows.append({**placement_row("base (no control)", base_samples, test), "_floor": True})
    for kind, net in nets.items():
        row, samples = controlnet_row(f"ControlNet, {kind}", net, test, [kind], g)
        rows.append(row)
        if kind == "edges":
            shown.append(samples[:12])
    for s in STRENGTHS[1:-1]:
        row, _ = controlnet_row(
            f"ControlNet, mask, strength {s:g}",
            MultiControlNet([nets["mask"]], [s]),
            test,
            ["mask"],
            g,
        )
        rows.append(row)
    composed = MultiControlNet([nets["edges"], nets["heatmap"]], [1.0, 1.0])
    row, _ = controlnet_row(
        "edges + heatmap (two ControlNets)", composed, test, ["edges", "heatmap"], g
    )
    rows.append(row)
    ctx.images(
        torch.cat(shown),
        "Fill50K analogue: held-out shapes (top), their outline as the control (middle), "
        "samples of the edges ControlNet given the outline and the caption (bottom).",
        nrow=12,
    )
    ctx.table(
        rows,
        f"N = {len(test)} held-out shapes; each ControlNet gets its map of the shape and "
        "the caption (CFG w = 3 on the caption; the map stays in both branches). IoU of "
        "the drawn silhouette with the shape's and distance between centres. Shaded: the "
        "base alone, drawing from the caption (the guidance table's w = 3 samples; its IoU "
        "is the chance level of a shape that matches the caption but not the place).",
    )
    for r in rows:
        ctx.metric(f"controlnet.iou.{r['model']}", r["IoU with the target silhouette"])


def _ip_adapter_section(ctx, g, test):
    trained = ctx.asset("ip_adapter_shapes16")
    ip = trained.model
    fresh = IPAdapter(ip.base, encoder=ip.encoder)
    ids = tokenize_captions(test.captions[:8])
    x, t = torch.randn(8, 3, 16, 16, generator=g), torch.rand(8, generator=g)
    cond = {"text": ids, "image": test.images[8:16]}
    with torch.no_grad():
        reference = ip.base(x, t, ids)
        ip.scale = 0.0
        zero = float((ip(x, t, cond) - reference).abs().max())
        ip.scale = 1.0
        init_one = float((fresh(x, t, cond) - reference).abs().max())
    fraction = adapter_parameters(ip) / _total_parameters(ip.base)
    ctx.text(
        "**IP-Adapter.** The frozen CLIP image tower embeds a reference image into one global "
        "vector (its head applied to the last feature map averaged over space; the paper "
        "uses CLIP's pooled image embedding); a projection makes 4 image tokens; each "
        "cross-attention layer adds "
        "λ·Attn(Q, K_img, V_img) with new K/V projections initialised as copies of the text "
        "ones. Only the projection "
        f"and the new K/V train: {adapter_parameters(ip)} parameters, {fraction:.1%} of the "
        f"base. λ = 0 reproduces the base (max |Δ| = {zero:g}); λ = 1 at initialisation "
        f"does not (max |Δ| = {init_one:.3g}), because the copied K/V already attend to the "
        "image tokens.",
    )
    ctx.metric("ip_adapter.scale0_max_diff", zero)
    ctx.metric("ip_adapter.init_scale1_max_diff", init_one)
    ctx.metric("ip_adapter.parameter_fraction", fraction)
    empty, _ = ip_adapter_row(ip, test.images, [""] * len(test), 1.0, g)
    ctx.metric("ip_adapter.scale1_empty_prompt", empty)
    prompts = [f"a {REGIONS[(r + 4) % len(REGIONS)]}" for r in test.region.tolist()]
    rows, shown = [], [test.images[:12]]
    for lam in IP_SCALES:
        row, samples = ip_adapter_row(ip, test.images, prompts, lam, g)
        rows.append(
            {
                k: row[k]
                for k in ("λ", "colour = image", "shape = image", "region = text", "region = image")
            }
        )
        shown.append(samples[:12])
    chance = {
        "λ": "chance",
        "colour = image": 1 / 4,
        "shape = image": 1 / 3,
        "region = text": 1 / 9,
        "region = image": 1 / 9,
    }
    rows.append({**chance, "_floor": True})
    ctx.images(
        torch.cat(shown),
        "Top: reference images. Then λ = " + ", ".join(f"{s:g}" for s in IP_SCALES) + ": each "
        "sample gets a reference and a prompt naming only a region, another one than the "
        f"reference's (e.g. `{prompts[0]}` for the first).",
        nrow=12,
    )
    ctx.table(
        [{"λ": "1, empty prompt", **{k: v for k, v in empty.items() if k != "λ"}}],
        f"λ = 1 and no text (N = {len(test)}): share of samples that show the reference "
        "image's shape, colour, size and region. Chance: 1/3, 1/4, 1/3, 1/9.",
    )
    ctx.table(
        rows,
        f"The image–text trade-off (N = {len(test)}): the reference supplies the colour, the "
        "prompt a region. λ = 0 is the text-only base (colour at chance, 1/4); growing λ "
        "hands the colour over to the image while the region stays the prompt's: the pooled "
        "embedding carries the reference's position only weakly (with no prompt, the table "
        "above, part of it shows). (Reading the tiny CLIP's flattened, position-aware "
        "embedding instead, the reference's layout blurs the prompt's region: BENCHMARKS.md.)",
    )
    ctx.metric("ip_adapter.sweep", rows[:-1])


def _transfusion_section(ctx, g, test, clip):
    model = ctx.asset("transfusion_shapes16").model
    captions = model.caption(test.images)
    acc = caption_accuracy(captions, test)
    den = model.denoiser()
    samples = draw(den, test.captions, g)
    row = text_row("", samples, test.captions, clip)
    row["task"] = "drawing the held-out captions (share right)"
    steps, n = len(GRID) - 1, len(test)
    recompute = steps * 2 * n * (model.text_slots + model.patches)
    ctx.text(
        "**One transformer for both directions (Transfusion).** Caption tokens and image "
        "patches share one sequence and one set of weights; a causal mask over the text, "
        "bidirectional inside the image; next-token loss on the words, flow-matching loss "
        "on the patches. The same network captions held-out shapes (image first, greedy "
        "decoding with a KV cache) and draws them (caption first, the caption's K/V "
        f"cached once): drawing {n} captions with CFG in {steps} steps evaluates "
        f"{den.model.token_evaluations} tokens, against {recompute} when every step "
        "recomputes the caption.",
        "Captions of the first held-out shapes: " + "; ".join(f"`{c}`" for c in captions[:4]) + ".",
    )
    chance = {"shape": 1 / 3, "colour": 1 / 4, "size": 1 / 3, "region": 1 / 9}
    ctx.table(
        [
            {"task": "captioning held-out shapes (share right)", **acc},
            {"task": "chance", **chance, "mean": sum(chance.values()) / 4, "_floor": True},
            row,
            {
                **text_row("", test.images, test.captions, clip),
                "task": "real shapes (ceiling)",
                "_floor": True,
            },
        ],
        f"N = {len(test)}. Captioning: share of greedy captions that name the right attribute "
        "(shaded: chance). Drawing: as the guidance table above (CFG w = 3, 20 Euler steps; "
        "shaded: real shapes with their captions).",
        columns=["task", "CLIP score", "shape", "colour", "size", "region", "mean"],
    )
    ctx.images(
        torch.cat([test.images[:12], samples[:12]]),
        "Held-out shapes (top) and the unified model's drawings of their captions (bottom).",
        nrow=12,
    )
    ctx.metric("transfusion.caption_accuracy", acc)
    ctx.metric("transfusion.draw_accuracy", row["mean"])


@chapter(
    "L11",
    "Multimodal models and conditioning: text, ControlNet, IP-Adapter, one model for both",
    lecture=11,
    summary="A tiny CLIP as a metric; pooled vs cross-attention vs MMDiT at equal compute; CFG "
    "and negative prompts; ControlNet (exact at init, strength, composition); IP-Adapter's "
    "image–text scale; a Transfusion-style model that captions and draws.",
    slides="lectures/11-multimodal/slides.pdf",
    code=[
        "visgen.conditioning.clip.TinyCLIP",
        "visgen.nn.dit.CrossAttention",
        "visgen.conditioning.text.text_guidance",
        "visgen.conditioning.controlnet.ControlNet",
        "visgen.conditioning.ip_adapter.IPAdapter",
        "visgen.conditioning.transfusion.Transfusion",
        "visgen.conditioning.controls.read_attributes",
    ],
)
def run(ctx):
    g = ctx.generator()
    test = held_out(_n())
    clip = _clip_section(ctx, test)
    base = _mechanisms_section(ctx, test)
    base_samples = _guidance_section(ctx, g, base, clip, test)
    _controlnet_section(ctx, g, test, base_samples)
    _ip_adapter_section(ctx, g, test)
    _transfusion_section(ctx, g, test, clip)
