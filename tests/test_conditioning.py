"""Lecture 11 without training: the caption tokenizer, control maps and the attribute reader,
the three ways a DiT reads text, and the exactness of ControlNet, IP-Adapter and the
Transfusion KV caches."""

import math

import pytest
import torch

from visgen.conditioning import (
    CONTROLS,
    ControlNet,
    IPAdapter,
    MultiControlNet,
    TinyCLIP,
    Transfusion,
    adapter_parameters,
    attribute_accuracy,
    checksum,
    clip_score,
    control_map,
    forward_flops,
    iou,
    read_attributes,
    shape_mask,
    text_dit_spec,
)
from visgen.conditioning.clip import Contrastive
from visgen.conditioning.evaluate import placement_row
from visgen.conditioning.ip_adapter import ImagePromptTraining, null_images
from visgen.conditioning.transfusion import BOS, EOS, TransfusionTraining, text_sequence
from visgen.data import (
    CAPTION_WORDS,
    decode_captions,
    drop_attributes,
    make_shapes,
    parse_caption,
    tokenize_captions,
)
from visgen.nn import DiT, UNet, build_model
from visgen.train import make_method

TEXT = {"text_vocab": len(CAPTION_WORDS), "text_len": 8}


def _perturb(model, gen, std=0.05):
    """Give every zero-initialised weight a random value (so every path does something)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, std, generator=gen)
    return model


def _shapes(n=6, seed=0):
    s = make_shapes(n, seed=seed)
    return s, tokenize_captions(s.captions)


# --- tokenizer ----------------------------------------------------------------------------


def test_captions_round_trip_and_parse():
    s, ids = _shapes(200)
    assert decode_captions(ids) == s.captions
    for i, caption in enumerate(s.captions):
        want = {
            "size": int(s.size[i]),
            "colour": int(s.colour[i]),
            "shape": int(s.shape[i]),
            "region": int(s.region[i]),
        }
        assert parse_caption(caption) == want
    assert parse_caption("a red") == {"size": None, "colour": 0, "shape": None, "region": None}
    assert parse_caption("") == dict.fromkeys(("size", "colour", "shape", "region"))
    with pytest.raises(ValueError, match="does not follow"):
        parse_caption("a red disc at the middle")
    with pytest.raises(TypeError, match="caption must be a string"):
        parse_caption(3)
    with pytest.raises(ValueError, match=r"ids must lie in \[-1, 19\]"):
        decode_captions(ids + 30)


def test_attribute_dropout_removes_whole_phrases(gen):
    s, ids = _shapes(4000)
    assert torch.equal(drop_attributes(ids, 0.0, gen), ids)
    only_a = drop_attributes(ids, 1.0, gen)
    assert decode_captions(only_a) == ["a"] * len(ids)
    out = drop_attributes(ids, 0.3, gen)
    real = out >= 0
    assert not (real[:, 1:] & ~real[:, :-1]).any()  # left-aligned, −1 only at the end
    parsed = [parse_caption(c) for c in decode_captions(out)]
    full = [parse_caption(c) for c in s.captions]
    for attribute in ("size", "colour", "shape", "region"):
        kept = [p[attribute] for p in parsed]
        # a kept attribute keeps its value; each is dropped independently with p = 0.3
        assert all(k is None or k == f[attribute] for k, f in zip(kept, full))
        share = sum(k is None for k in kept) / len(kept)
        assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(kept))
    empty = torch.full((2, 8), -1)
    assert torch.equal(drop_attributes(empty, 0.5, gen), empty)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        drop_attributes(ids, 1.5)


# --- control maps and the attribute reader ------------------------------------------------


def test_reader_is_exact_on_real_shapes():
    s = make_shapes(1000, seed=7)
    seen = read_attributes(s.images)
    for attribute, truth in (("shape", s.shape), ("colour", s.colour), ("size", s.size)):
        assert torch.equal(seen[attribute], truth), attribute
    # the region flips only where a centre sits on a grid line of the 3×3 regions
    assert (seen["region"] == s.region).float().mean() > 0.97
    assert (seen["position"] - s.position).abs().max() < 0.02
    wrong = seen["region"] != s.region
    on_line = ((s.position * 3 - (s.position * 3).round()).abs() < 0.06).any(1)
    assert on_line[wrong].all()
    acc = attribute_accuracy(s.images, s.captions)
    assert acc["shape"] == acc["colour"] == acc["size"] == 1.0
    # an empty canvas shows nothing: every attribute is wrong, none crashes
    blank = read_attributes(null_images(s.images[:3]))
    assert not blank["present"].any() and (blank["shape"] == -1).all()
    # partial captions count only what they name
    assert set(attribute_accuracy(s.images[:2], ["a red", "a disc"])) == {"colour", "shape", "mean"}
    with pytest.raises(ValueError, match=r"images must be RGB shapes \(N, 3, H, W\)"):
        read_attributes(torch.zeros(2, 1, 16, 16))


def test_control_maps():
    s = make_shapes(64, seed=3)
    mask = shape_mask(s.images)
    maps = {kind: control_map(s.images, kind) for kind in CONTROLS}
    assert all(m.shape == (64, 1, 16, 16) for m in maps.values())
    assert torch.equal(maps["mask"], mask)
    edges = maps["edges"]
    assert ((edges == 0) | (edges == 1)).all() and (edges <= mask).all()  # the outline ⊂ shape
    assert (edges.sum((1, 2, 3)) > 0).all()
    heat = maps["heatmap"]
    peak = heat.flatten(1).argmax(1)
    centre = torch.stack([peak % 16, peak // 16], 1).float() + 0.5
    assert (centre / 16 - s.position).abs().max() < 1 / 16 + 0.02  # peaks at the shape's centre
    assert torch.equal(iou(mask, mask), torch.ones(64))
    assert torch.equal(iou(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)), torch.ones(1))
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2] = 1
    assert float(iou(half, torch.ones(1, 1, 4, 4))) == 0.5
    with pytest.raises(ValueError, match="unknown kind .depth."):
        control_map(s.images, "depth")


def test_placement_row_scores_the_shapes_themselves_as_perfect():
    s = make_shapes(32, seed=4)
    row = placement_row("truth", s.images, s)
    assert row["IoU with the target silhouette"] == 1.0
    assert row["centre error (px)"] < 0.05  # the reader's centre of the rendered shape
    moved = placement_row("moved", s.images.roll(4, -1), s)  # everything 4 px to the right
    assert moved["IoU with the target silhouette"] < 0.9
    with pytest.raises(ValueError, match="images must hold 32 samples"):
        placement_row("short", s.images[:3], s)


# --- three ways to read text --------------------------------------------------------------


def test_text_modes_and_their_cost(gen):
    s, ids = _shapes(4)
    x, t = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, generator=gen)
    flops = {}
    for mode in ("pooled", "cross", "joint"):
        torch.manual_seed(0)
        model = _perturb(
            DiT(3, 16, patch_size=4, dim=32, depth=2, heads=2, **TEXT, text_mode=mode), gen
        )
        y = model(x, t, ids)
        assert not torch.allclose(y, model(x, t, ids.flip(0)))  # the caption matters
        assert build_model(model.config).config == model.config
        flops[mode] = forward_flops(model, x[:1], t[:1], ids[:1])
    # pooled < cross < joint: joint attention also runs the text stream's MLPs
    assert flops["pooled"] < flops["cross"] < flops["joint"]
    assert "text_mode" not in DiT(3, 16, patch_size=4, dim=32, heads=2, **TEXT).config
    assert text_dit_spec("cross")["model"]["text_mode"] == "cross"
    with pytest.raises(ValueError, match="unknown text_mode .concat."):
        DiT(3, 16, **TEXT, text_mode="concat")
    with pytest.raises(ValueError, match="needs caption conditioning"):
        DiT(3, 16, num_classes=3, text_mode="cross")


def test_negative_prompt_replaces_the_null_caption(gen):
    from visgen.conditioning import text_guidance
    from visgen.param import Denoiser

    torch.manual_seed(0)
    model = _perturb(
        DiT(3, 16, patch_size=4, dim=32, depth=2, heads=2, **TEXT, text_mode="cross"), gen
    )
    den = Denoiser(model, "linear", "x0")
    _, ids = _shapes(3)
    x, t = torch.randn(3, 3, 16, 16, generator=gen), torch.full((3,), 0.5)
    neg = tokenize_captions(["a red"]).expand(3, -1)
    c, n = model(x, t, ids), model(x, t, neg)
    guided = text_guidance(den, 3.0, negative="a red")(x, t, ids).x0
    assert torch.allclose(guided, n + 3.0 * (c - n), atol=1e-5)
    plain = text_guidance(den, 3.0)(x, t, ids).x0
    u = model(x, t, None)
    assert torch.allclose(plain, u + 3.0 * (c - u), atol=1e-5)
    with pytest.raises(ValueError, match="outside CAPTION_WORDS"):
        text_guidance(den, 3.0, negative="a purple disc")


# --- ControlNet ---------------------------------------------------------------------------


def _dit(gen, mode="cross"):
    torch.manual_seed(0)
    return _perturb(DiT(3, 16, patch_size=4, dim=32, depth=3, heads=2, **TEXT, text_mode=mode), gen)


def _unet(gen):
    torch.manual_seed(0)
    return _perturb(UNet(3, 16, channels=8, mults=(1, 2), num_classes=12), gen)


@pytest.mark.parametrize("kind", ["dit", "unet"])
def test_controlnet_starts_as_the_base_and_leaves_it_unchanged(kind, gen):
    base = _dit(gen) if kind == "dit" else _unet(gen)
    s, ids = _shapes(4)
    cond = ids if kind == "dit" else s.label
    digest = checksum(base)
    net = ControlNet(base)
    x, t = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, generator=gen)
    hint = control_map(s.images, "mask")
    with torch.no_grad():
        reference = base(x, t, cond)
        # zero convolutions: a fresh ControlNet IS the base, bit for bit
        assert torch.equal(net(x, t, {"base": cond, "control": hint}), reference)
    # a few optimiser steps move only the copy and the zero layers
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert {id(p) for p in trainable}.isdisjoint({id(p) for p in base.parameters()})
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (net(x, t, {"base": cond, "control": hint}) - x).pow(2).mean().backward()
        opt.step()
    assert checksum(base) == digest  # the locked base: unchanged
    with torch.no_grad():
        moved = net(x, t, {"base": cond, "control": hint})
        assert not torch.allclose(moved, reference)
        # strength 0 is the base exactly; two ControlNets compose by adding residuals
        off = MultiControlNet([net], [0.0])(x, t, {"base": cond, "control": hint})
        assert torch.equal(off, reference)
        assert torch.equal(
            MultiControlNet([net], [1.0])(x, t, {"base": cond, "control": hint}), moved
        )
        other = ControlNet(base)
        both = MultiControlNet([net, other], [1.0, 0.0])
        assert torch.equal(both(x, t, {"base": cond, "control": torch.cat([hint, hint], 1)}), moved)
    frac = adapter_parameters(net) / sum(p.numel() for p in base.parameters())
    assert 0 < frac < 1  # a copy of the encoder, not of the whole network
    with pytest.raises(ValueError, match="cond must be a dict"):
        net(x, t, cond)
    with pytest.raises(ValueError, match=r"cond\['control'\] must be \(B, 1, H, W\)"):
        net(x, t, {"base": cond, "control": hint[:, 0]})
    with pytest.raises(ValueError, match="same base"):
        MultiControlNet(
            [
                net,
                ControlNet(
                    _dit(gen, "joint")
                    if kind == "dit"
                    else UNet(3, 16, channels=8, mults=(1, 2), num_classes=12)
                ),
            ],
            [1, 1],
        )


def test_controlnet_dit_copies_the_first_blocks(gen):
    base = _dit(gen, "joint")
    net = ControlNet(base, blocks=2)
    assert len(net.blocks) == 2
    for copy_block, block in zip(net.blocks, base.blocks):
        assert checksum(copy_block) == checksum(block)
    with pytest.raises(ValueError, match=r"blocks must be an int in \[1, 2\]"):
        ControlNet(base, blocks=3)
    with pytest.raises(TypeError, match="base must be a DiT or UNet"):
        ControlNet(TinyCLIP())


# --- IP-Adapter ---------------------------------------------------------------------------


def test_ip_adapter_scale_zero_is_the_base_and_scale_one_is_not(gen):
    base = _dit(gen)
    torch.manual_seed(1)
    clip = TinyCLIP(dim=32, embed_dim=16, width=8, heads=2)
    digest = checksum(base)
    ip = IPAdapter(base, encoder=clip)
    # W'_k, W'_v start as copies of the text projections (the official initialisation)
    for k, v, block in zip(ip.k, ip.v, base.blocks):
        assert torch.equal(k.weight, block.cross.k.weight) and torch.equal(
            v.weight, block.cross.v.weight
        )
    s, ids = _shapes(4)
    x, t = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, generator=gen)
    cond = {"text": ids, "image": s.images}
    with torch.no_grad():
        reference = base(x, t, ids)
        ip.scale = 0.0
        assert torch.equal(ip(x, t, cond), reference)
        ip.scale = 1.0
        # NOT the identity at initialisation: the copied K/V already attend to image tokens
        assert (ip(x, t, cond) - reference).abs().max() > 1e-3
    trainable = {n for n, p in ip.named_parameters() if p.requires_grad}
    assert trainable == {
        n for n, _ in ip.named_parameters() if n.split(".")[0] in {"proj", "norm", "k", "v"}
    }
    ip(x, t, cond).pow(2).mean().backward()
    assert all(p.grad is None for p in base.parameters()) and all(
        p.grad is None for p in clip.parameters()
    )
    assert checksum(base) == digest
    # an empty canvas is "no image prompt": the zero embedding
    assert torch.equal(
        ip.image_tokens(null_images(s.images))[0], ip.image_tokens(null_images(s.images))[1]
    )
    with pytest.raises(ValueError, match="text_mode='cross'"):
        IPAdapter(_dit(gen, "joint"), encoder=clip)
    with pytest.raises(ValueError, match="features"):
        IPAdapter(base, encoder=clip, features="patches")
    with pytest.raises(ValueError, match="cond must be a dict"):
        ip(x, t, ids)


def test_ip_adapter_reads_the_pooled_features_or_the_clip_embedding(gen):
    base = _dit(gen)
    torch.manual_seed(1)
    clip = TinyCLIP(dim=32, embed_dim=16, width=8, heads=2)
    s, _ = _shapes(4)
    with torch.no_grad():
        # the default, a global embedding: the head on the last feature map averaged over
        # space, = the head's weights summed over positions applied to the averaged features
        pooled = IPAdapter(base, encoder=clip).image_embedding(s.images)
        head = clip.image.body[-1]
        summed = head.weight.reshape(16, 4 * 8, 4 * 4).sum(-1)
        mean = clip.image.body[:-2](s.images).mean((2, 3))
        assert pooled.shape == (4, 16)
        assert torch.allclose(pooled, mean @ summed.T + head.bias, atol=1e-5)
        # the tiny CLIP's own (flattened, position-aware) embedding
        ip = IPAdapter(base, encoder=clip, features="embedding")
        assert torch.equal(ip.image_embedding(s.images), clip.encode_image(s.images))
        assert ip.config["features"] == "embedding"
        # a square moved by one feature-map cell: the pooled features barely move (only the
        # padded border tells where it is), the flattened embedding moves a lot
        canvas = torch.full((1, 3, 16, 16), -1.0)
        one, two = canvas.clone(), canvas.clone()
        one[..., 4:8, 4:8], two[..., 8:12, 4:8] = 1.0, 1.0
        p1, p2, p0 = clip.encode_pooled(torch.cat([one, two, canvas])).split(1)
        assert (p1 - p2).norm() < 0.01 * (p1 - p0).norm()  # < 1 % of the square's own signal
        e1, e2 = clip.encode_image(one), clip.encode_image(two)
        assert (e1 - e2).norm() > 0.1 * e1.norm()


def test_image_prompt_training_drops_as_the_paper_does(gen):
    method = make_method({"name": "image_prompt", **{"prediction": "x0"}})
    s, ids = _shapes(4000)
    out = method.draw({"x0": s.images, "cond": ids}, gen)
    no_text = (out["cond"]["text"] == -1).all(1)
    no_image = (out["cond"]["image"] == -1).flatten(1).all(1)
    for share, p in (
        ((no_text & ~no_image).float().mean(), 0.05),
        ((no_image & ~no_text).float().mean(), 0.05),
        ((no_image & no_text).float().mean(), 0.05),
    ):
        assert abs(float(share) - p) < 4 * math.sqrt(p * (1 - p) / 4000)
    kept = ~no_image
    assert torch.equal(out["cond"]["image"][kept], s.images[kept])  # reference = target
    assert make_method(method.spec).spec == method.spec
    assert isinstance(make_method({"name": "image_prompt"}), ImagePromptTraining)


# --- CLIP ---------------------------------------------------------------------------------


def test_clip_loss_is_clips_symmetric_cross_entropy(gen):
    torch.manual_seed(0)
    clip = TinyCLIP(dim=32, embed_dim=16, width=8, heads=2)
    s, ids = _shapes(16, seed=5)
    assert len(set(s.captions)) == 16  # distinct captions: the plain CLIP loss
    logits = clip(s.images, ids)
    labels = torch.arange(16)
    expected = (
        torch.nn.functional.cross_entropy(logits, labels, reduction="none")
        + torch.nn.functional.cross_entropy(logits.T, labels, reduction="none")
    ) / 2
    loss = Contrastive().loss(clip, {"x0": s.images, "cond": ids})
    assert torch.allclose(loss, expected, atol=1e-6)
    # a repeated caption: both of its images count as positives for it
    ids2 = ids.clone()
    ids2[1] = ids2[0]
    logits = clip(s.images, ids2)
    loss = Contrastive().loss(clip, {"x0": s.images, "cond": ids2})
    row0 = -torch.logsumexp(logits.log_softmax(1)[0, :2], 0)
    col0 = -torch.logsumexp(logits.log_softmax(0)[:2, 0], 0)
    assert torch.allclose(loss[0], (row0 + col0) / 2, atol=1e-6)
    score = clip_score(clip, s.images, s.captions)
    assert score.shape == (16,) and (score >= 0).all() and (score <= 100).all()
    with pytest.raises(ValueError, match="must hold 16 captions"):
        clip_score(clip, s.images, s.captions[:3])


# --- Transfusion --------------------------------------------------------------------------


def test_transfusion_mask_caches_and_losses(gen):
    torch.manual_seed(0)
    model = _perturb(Transfusion(dim=32, depth=2, heads=2), gen, std=0.1)
    n, p = 10, model.patches
    # text: causal; image: bidirectional, after the whole caption (caption first) ...
    m = model.mask_caption_first
    assert torch.equal(m[:n, :n], torch.ones(n, n).tril().bool())
    assert m[n:].all() and not m[:n, n:].any()
    # ... or before it (image first): the image sees only itself, the caption sees the image
    m = model.mask_image_first
    assert m[:p, :p].all() and not m[:p, p:].any() and m[p:, :p].all()
    s, ids = _shapes(5)
    seq = text_sequence(ids)
    assert (seq[:, 0] == BOS).all() and (seq == EOS).any(1).all()
    x, t = torch.randn(5, 3, 16, 16, generator=gen), torch.rand(5, generator=gen)
    # drawing: the caption's K/V cached once, then image tokens only — equal to recomputation
    cached, full = model.denoiser(cache=True), model.denoiser(cache=False)
    a, b = cached.model(x, t, ids), full.model(x, t, ids)
    assert (a - b).abs().max() < 1e-5
    cached.model(x, t * 0.5, ids)  # same prompt: no second text pass
    assert cached.model.token_evaluations == 5 * (n + 2 * p)
    assert full.model.token_evaluations == 5 * (n + p)
    # captioning: cached greedy decoding = full recomputation
    assert model.caption(s.images, cache=True) == model.caption(s.images, cache=False)
    # one batch mixes both orders; the LM loss sees the words and the first EOS only
    method = TransfusionTraining()
    batch = method.draw({"x0": s.images, "cond": ids}, gen)
    loss = method.loss(model, batch)
    assert loss.shape == (5,) and torch.isfinite(loss).all()
    with pytest.raises(ValueError, match="left-aligned"):
        text_sequence(torch.tensor([[0, -1, 3, -1, -1, -1, -1, -1]]))
    with pytest.raises(ValueError, match="needs captions"):
        method.draw({"x0": s.images, "cond": s.label}, gen)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, 16, 16\)"):
        model.caption(s.images[:, :1])
