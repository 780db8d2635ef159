"""DiT / MMDiT: patchify, adaLN-Zero start, RoPE, conditioning, hooks, REPA projector, errors."""

import re

import pytest
import torch

import visgen.nn.dit as dit_module
from visgen.data import CAPTION_WORDS, make_shapes, tokenize_captions
from visgen.nn import DiT, build_model, count_parameters, drop_labels
from visgen.nn.attention import apply_rope, rope_2d
from visgen.nn.dit import patchify, unpatchify


def perturb_zeros(model, gen):
    """Give every zero-initialised weight a random value (so the blocks do something)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05, generator=gen)


@pytest.mark.parametrize("shape, p", [((2, 3, 16, 16), 4), ((3, 1, 8, 8), 2), ((1, 4, 6, 10), 2)])
def test_patchify_round_trips_exactly(shape, p, gen):
    x = torch.randn(shape, generator=gen)
    tokens = patchify(x, p)
    b, c, h, w = shape
    assert tokens.shape == (b, (h // p) * (w // p), p * p * c)
    assert torch.equal(unpatchify(tokens, p, c, (h, w)), x)
    # token n holds patch (n // (w/p), n % (w/p)), its values ordered (row, col, channel)
    n = w // p + 1
    assert torch.equal(tokens[0, n], x[0, :, p : 2 * p, p : 2 * p].permute(1, 2, 0).reshape(-1))


def test_patch_size_mismatches_are_clear_errors():
    with pytest.raises(ValueError, match="patch_size 3 must divide the image size 16×16"):
        patchify(torch.randn(1, 3, 16, 16), 3)
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, 16, 48\)"):
        unpatchify(torch.randn(1, 16, 12), 4, 3, 16)
    with pytest.raises(ValueError, match="patch_size 3 must divide the input size 16"):
        DiT(3, 16, patch_size=3)
    model = DiT(3, 16, patch_size=4, dim=32, heads=2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\)"):
        model(torch.randn(2, 3, 8, 8), torch.rand(2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\)"):
        model(torch.randn(2, 4, 16, 16), torch.rand(2))
    with pytest.raises(ValueError, match="divisible by 4"):
        DiT(3, 16, dim=24, heads=4)  # head_dim 6: no 2D RoPE
    with pytest.raises(ValueError, match="classes or on captions"):
        DiT(3, 16, num_classes=3, text_vocab=5, text_len=4)


@pytest.mark.parametrize(
    "options",
    [
        {"num_classes": 12},
        {"num_classes": 12, "pos": "learned"},
        {"text_vocab": len(CAPTION_WORDS), "text_len": 8},
        {"text_vocab": len(CAPTION_WORDS), "text_len": 8, "text_mode": "cross"},
        {"text_vocab": len(CAPTION_WORDS), "text_len": 8, "text_mode": "pooled"},
    ],
)
def test_fresh_dit_predicts_exactly_zero(options, gen):
    torch.manual_seed(0)
    model = DiT(3, 16, patch_size=4, dim=32, depth=2, heads=2, **options)
    x, t = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, generator=gen)
    if "text_vocab" in options:
        cond = tokenize_captions(make_shapes(4).captions)
    else:
        cond = torch.tensor([0, 5, 11, -1])
    assert torch.equal(model(x, t, cond), torch.zeros_like(x))
    # every gate starts at 0: each block is the identity on its tokens
    _, hidden = model(x, t, cond, return_hidden=(1, 2))
    embedded = model.embed(patchify(x, 4)) + (0 if model.pos is None else model.pos)
    assert torch.equal(hidden[1], embedded) and torch.equal(hidden[2], embedded)
    # once the zero-initialised weights move, time and condition change the output
    perturb_zeros(model, gen)
    y = model(x, t, cond)
    assert y.abs().min() > 0
    assert not torch.allclose(y, model(x, t.flip(0), cond))
    assert not torch.allclose(y, model(x, t, None))
    y.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_rope_attention_depends_only_on_relative_position(gen):
    cos, sin = rope_2d(4, 8)
    q, k = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    rq = apply_rope(q.expand(1, 1, 16, 8), cos, sin)[0, 0]
    rk = apply_rope(k.expand(1, 1, 16, 8), cos, sin)[0, 0]
    scores = (rq @ rk.T).reshape(4, 4, 4, 4)  # (row_q, col_q, row_k, col_k)
    # the same offset gives the same score: (0,0)->(1,2) equals (2,1)->(3,3)
    assert torch.allclose(scores[0, 0, 1, 2], scores[2, 1, 3, 3], atol=1e-5)
    assert torch.allclose(scores[1, 3, 0, 1], scores[3, 2, 2, 0], atol=1e-5)
    assert not torch.allclose(scores[0, 0, 1, 2], scores[0, 0, 2, 1], atol=1e-3)
    # a rotation keeps norms
    assert torch.allclose(rq.norm(dim=1), q.norm().expand(16), atol=1e-5)


def test_mmdit_padding_and_null_caption(gen):
    torch.manual_seed(1)
    model = DiT(3, 16, patch_size=4, dim=32, depth=2, heads=2, text_vocab=20, text_len=8)
    perturb_zeros(model, gen)
    x, t = torch.randn(2, 3, 16, 16, generator=gen), torch.rand(2, generator=gen)
    caps = tokenize_captions(["a red disc on the left", "a small blue square at the top"])
    y = model(x, t, caps)
    # padding tokens are masked out of attention: what a padded slot holds cannot matter
    with torch.no_grad():
        model.text.pos[:, 8].normal_(0, 3.0, generator=gen)  # slot 8 is padding in both
    assert torch.allclose(model(x, t, caps), y, atol=1e-6)
    with torch.no_grad():
        model.text.pos[:, 7].normal_(0, 3.0, generator=gen)  # a word of the second caption
    changed = model(x, t, caps)
    assert torch.allclose(changed[0], y[0], atol=1e-6) and not torch.allclose(changed[1], y[1])
    # the text conditions the image through joint attention
    swapped = caps.flip(0)
    assert not torch.allclose(model(x, t, swapped), y)
    # None is the empty caption (all padding): the CFG null condition
    assert torch.equal(model(x, t, None), model(x, t, torch.full((2, 8), -1)))
    with pytest.raises(ValueError, match=r"cond must have shape \(B, 8\)"):
        model(x, t, caps[:, :5])
    with pytest.raises(TypeError, match="token ids"):
        model(x, t, caps.float())
    with pytest.raises(ValueError, match=r"token ids must lie in \[-1, 19\]"):
        model(x, t, caps + 5)


def test_hidden_tokens_hook_and_repa_projectors(gen):
    for projector in ("mlp", "conv"):
        model = DiT(
            1, 8, patch_size=2, dim=32, depth=3, heads=2, repa_dim=24, repa_projector=projector
        )
        x, t = torch.randn(2, 1, 8, 8, generator=gen), torch.rand(2, generator=gen)
        out, hidden = model(x, t, return_hidden=(2,))
        assert torch.equal(out, model(x, t)) and set(hidden) == {2}
        assert hidden[2].shape == (2, 16, 32)
        assert model.project(hidden[2]).shape == (2, 16, 24)
    # the conv projector sees the token grid: a token's projection depends on its neighbours
    tokens = torch.zeros(1, 16, 32)
    tokens[0, 5] = 1.0  # token (row 1, col 1) of the 4×4 grid
    moved = (model.project(tokens) - model.project(torch.zeros(1, 16, 32)))[0].abs().sum(1)
    assert torch.equal(moved.reshape(4, 4)[:3, :3] > 0, torch.ones(3, 3, dtype=torch.bool))
    assert (moved > 0).sum() == 9  # exactly its 3×3 neighbourhood
    with pytest.raises(ValueError, match=r"return_hidden must hold block indices in \[1, 3\]"):
        model(x, t, return_hidden=(0,))
    with pytest.raises(ValueError, match="no REPA projector"):
        DiT(1, 8, dim=32, heads=2).project(hidden[2])


def test_build_model_round_trip_and_documented_parameter_counts():
    model = DiT(3, 16, patch_size=4, dim=32, heads=2, text_vocab=20, text_len=8, pos="learned")
    rebuilt = build_model(model.config)
    assert isinstance(rebuilt, DiT) and rebuilt.config == model.config
    rows = re.findall(r"``(DiT\(.*?\))``[^\d\n]*([\d ]+)\n", dit_module.__doc__)
    assert len(rows) >= 3
    for expr, count in rows:
        assert count_parameters(eval(expr, {"DiT": DiT})) == int(count.replace(" ", "")), expr


def test_label_dropout_drops_whole_captions(gen):
    caps = tokenize_captions(make_shapes(4000).captions)
    dropped = drop_labels(caps, 0.25, gen)
    gone = (dropped == -1).all(1)
    assert torch.equal(dropped[~gone], caps[~gone])  # a kept caption is kept whole
    assert abs(gone.double().mean().item() - 0.25) < 4 * (0.25 * 0.75 / 4000) ** 0.5
    labels = torch.arange(10)
    # for class labels the draws are the same as before (one uniform per row)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(
        drop_labels(labels, 0.5, g1), torch.where(torch.rand(10, generator=g2) < 0.5, -1, labels)
    )
