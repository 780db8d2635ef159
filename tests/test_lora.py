"""LoRA adapters (visgen.nn.lora): B = 0 reproduces the base network exactly, only A and B
train, merge/unmerge are exact inverses, and a merged layer equals the unmerged one."""

import copy

import pytest
import torch
from torch import nn

from visgen.fewstep.flowmap import FlowMapNet
from visgen.nn import MLP, UNet, add_lora, lora_parameters, merge_lora
from visgen.nn.lora import LoRAConv2d, LoRALinear

F64 = torch.float64


def _randomise_b(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear | LoRAConv2d):
                m.lora_b.weight.copy_(torch.randn(m.lora_b.weight.shape, generator=gen) * 0.1)


@pytest.mark.parametrize(
    "make, shape, cond",
    [
        (lambda: MLP((1, 8, 8), 64, 2, num_classes=10), (5, 1, 8, 8), torch.arange(5)),
        (lambda: UNet(1, 8, channels=8, mults=(1, 2), num_classes=10), (3, 1, 8, 8), None),
    ],
)
def test_zero_b_reproduces_the_base_exactly(make, shape, cond, gen):
    torch.manual_seed(0)
    base = make().to(F64)
    wrapped = copy.deepcopy(base)
    names = add_lora(wrapped, rank=4, alpha=8)
    assert names and any(isinstance(wrapped.get_submodule(n), LoRALinear) for n in names)
    x = torch.randn(shape, generator=gen, dtype=F64)
    t = torch.rand(shape[0], generator=gen, dtype=F64)
    assert torch.equal(wrapped(x, t, cond), base(x, t, cond))  # B = 0: bitwise the base output
    _randomise_b(wrapped, gen)
    assert not torch.allclose(wrapped(x, t, cond), base(x, t, cond))


def test_only_the_adapters_train(gen):
    model = MLP(2, 32, 2).to(F64)
    add_lora(model, rank=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_a." in n or ".lora_b." in n for n in trainable)
    assert {id(p) for p in lora_parameters(model)} == {
        id(p) for p in model.parameters() if p.requires_grad
    }
    x = torch.randn(16, 2, generator=gen, dtype=F64)
    model(x, torch.rand(16, generator=gen, dtype=F64)).pow(2).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    # at B = 0 the gradient reaches B (A's gradient is B^T(...) = 0): LoRA starts moving at once
    layer = model.layers[0]
    assert layer.lora_b.weight.grad.abs().sum() > 0
    assert layer.lora_a.weight.grad.abs().sum() == 0


def test_parameter_count_and_scale():
    base = nn.Linear(40, 30)
    layer = LoRALinear(base, rank=3, alpha=12)
    assert layer.scale == 4.0
    assert sum(p.numel() for p in lora_parameters(layer)) == 3 * (40 + 30)
    assert LoRALinear(nn.Linear(4, 4), rank=2).scale == 1.0  # alpha defaults to the rank


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_merge_unmerge_round_trip(kind, gen):
    torch.manual_seed(1)
    if kind == "linear":
        base = nn.Linear(12, 7).to(F64)
        layer = LoRALinear(base, rank=3, alpha=6)
        x = torch.randn(9, 12, generator=gen, dtype=F64)
    else:
        base = nn.Conv2d(3, 5, 3, stride=2, padding=1).to(F64)
        layer = LoRAConv2d(base, rank=2, alpha=3)
        x = torch.randn(4, 3, 9, 9, generator=gen, dtype=F64)
    _randomise_b(layer, gen)
    w0 = base.weight.detach().clone()
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    merged_out = layer(x)
    # the merged layer is a plain layer with W0 + (α/r) B A: same output, no adapter call
    plain = nn.functional.linear if kind == "linear" else nn.functional.conv2d
    direct = (
        plain(x, w0 + layer.delta_weight(), base.bias)
        if kind == "linear"
        else plain(x, w0 + layer.delta_weight(), base.bias, stride=2, padding=1)
    )
    torch.testing.assert_close(merged_out, unmerged, atol=1e-12, rtol=0)
    torch.testing.assert_close(merged_out, direct, atol=1e-12, rtol=0)
    layer.merge()  # merging twice is a no-op
    torch.testing.assert_close(layer(x), unmerged, atol=1e-12, rtol=0)
    layer.unmerge()
    assert not layer.merged
    torch.testing.assert_close(base.weight, w0, atol=1e-14, rtol=0)
    torch.testing.assert_close(layer(x), unmerged, atol=1e-12, rtol=0)


def test_merge_lora_on_a_whole_network(gen):
    torch.manual_seed(2)
    model = UNet(1, 8, channels=8, mults=(1, 2), num_classes=10).to(F64)
    add_lora(model, rank=2)
    _randomise_b(model, gen)
    x = torch.randn(2, 1, 8, 8, generator=gen, dtype=F64)
    t = torch.tensor([0.3, 0.8], dtype=F64)
    before = model(x, t, torch.tensor([1, 2]))
    assert merge_lora(model) > 0
    torch.testing.assert_close(model(x, t, torch.tensor([1, 2])), before, atol=1e-10, rtol=0)


def test_include_selects_layers_and_flowmap_student():
    base = {"name": "mlp", "shape": [2], "width": 16, "depth": 2}
    net = FlowMapNet(base)
    names = add_lora(net, 2, include=lambda name, m: "gap" not in name)
    assert names and not any("gap" in n for n in names)
    assert all(isinstance(net.get_submodule(n), LoRALinear) for n in names)


def test_errors():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv2d(1, 1, 1), 2)
    with pytest.raises(TypeError, match="nn.Conv2d"):
        LoRAConv2d(nn.Linear(2, 2), 2)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="groups"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2), 2)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(nn.Sequential(nn.SiLU()), 2)
    with pytest.raises(TypeError, match="include"):
        add_lora(nn.Linear(2, 2), 2, include="out")
