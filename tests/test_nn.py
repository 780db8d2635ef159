import math
import re

import pytest
import torch

import visgen.nn.unet as unet_module
from visgen.nn import (
    MLP,
    Classifier,
    LabelEmbedding,
    SinusoidalEmbedding,
    UNet,
    build_model,
    count_parameters,
    drop_labels,
)


def test_sinusoidal_embedding_formula():
    emb = SinusoidalEmbedding(8)
    t = torch.tensor([0.0, 0.25, 1.0])
    e = emb(t)
    w = 1000.0 * torch.exp(-math.log(10_000.0) * torch.arange(4) / 4)
    assert torch.allclose(e[:, :4], torch.cos(t[:, None] * w), atol=1e-5)
    assert torch.allclose(e[:, 4:], torch.sin(t[:, None] * w), atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)


def test_label_embedding_null_label():
    emb = LabelEmbedding(3, 5)
    null = emb(None, 4)
    assert torch.equal(null, emb(torch.full((4,), -1), 4))
    assert torch.equal(emb(torch.tensor([0, 2, -1, 1]), 4)[2], null[0])
    with pytest.raises(ValueError, match="cond must lie"):
        emb(torch.tensor([0, 3, 0, 0]), 4)
    with pytest.raises(ValueError, match="shape"):
        emb(torch.tensor([0, 1]), 4)


def test_drop_labels_rate(gen):
    cond = torch.zeros(20_000, dtype=torch.long)
    dropped = (drop_labels(cond, 0.1, gen) == -1).double().mean()
    assert abs(dropped - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20_000)  # 4 standard errors
    assert torch.equal(drop_labels(cond, 0.0, gen), cond)


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_mlp_shapes_and_conditioning(shape, gen):
    torch.manual_seed(0)
    m = MLP(shape, width=32, depth=2, num_classes=4)
    x, t = torch.randn(5, *shape, generator=gen), torch.rand(5, generator=gen)
    y = m(x, t, torch.tensor([0, 1, 2, 3, -1]))
    assert y.shape == x.shape
    assert not torch.equal(m(x, t, torch.full((5,), 1)), m(x, t, torch.full((5,), 2)))
    assert torch.equal(m(x, t), m(x, t, torch.full((5,), -1)))
    with pytest.raises(ValueError, match="x must have shape"):
        m(torch.randn(5, 3), t)
    with pytest.raises(ValueError, match="unconditional"):
        MLP(shape, width=8)(x, t, torch.zeros(5, dtype=torch.long))


def test_unet_starts_at_zero_and_depends_on_time_and_class(gen):
    torch.manual_seed(0)
    m = UNet(3, 16, channels=16, mults=(1, 2), num_classes=12)
    x, t = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, generator=gen)
    assert torch.equal(
        m(x, t, torch.tensor([0, 1, 2, -1])), torch.zeros_like(x)
    )  # zero-init output
    # after perturbing every zero-initialised weight the output depends on t and on the class
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0 and p.dim() > 1:
                p.normal_(0, 0.05, generator=gen)
    y = m(x, t, torch.tensor([0, 1, 2, -1]))
    assert not torch.allclose(y, m(x, t.flip(0), torch.tensor([0, 1, 2, -1])))
    assert not torch.allclose(y, m(x, t, torch.tensor([3, 1, 2, -1])))
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_unet_documented_parameter_counts():
    rows = re.findall(r"``(UNet\(.*?\))``\s+([\d ]+)\n", unet_module.__doc__)
    assert len(rows) >= 4
    for expr, count in rows:
        model = eval(expr, {"UNet": UNet})
        assert count_parameters(model) == int(count.replace(" ", "")), expr


@pytest.mark.parametrize("size", [8, 16, 32])
def test_unet_sizes(size):
    m = UNet(1, size, channels=8, mults=(1, 2, 2) if size > 8 else (1, 2))
    assert m(torch.randn(2, 1, size, size), torch.rand(2)).shape == (2, 1, size, size)
    with pytest.raises(ValueError, match="divisible"):
        UNet(1, 10, mults=(1, 2, 2))


def test_build_model_round_trip():
    for model in (MLP(2, width=16), UNet(1, 8, channels=8, mults=(1, 2)), Classifier(3, 12)):
        rebuilt = build_model(model.config)
        assert type(rebuilt) is type(model) and rebuilt.config == model.config
        assert count_parameters(rebuilt) == count_parameters(model)
    with pytest.raises(ValueError, match="model name"):
        build_model({"name": "transformer"})
    with pytest.raises(TypeError, match="config"):
        build_model("mlp")


def test_classifier_features():
    c = Classifier(1, 10, feature_dim=24)
    x = torch.randn(3, 1, 8, 8)
    assert c.features(x).shape == (3, 24) and c(x).shape == (3, 10)
    with pytest.raises(ValueError, match="shape"):
        c(torch.randn(3, 3, 8, 8))
