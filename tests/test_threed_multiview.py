"""The multi-view transformer (lecture 12): exact equivalences, no training."""

import math

import pytest
import torch

from visgen.nn import build_model
from visgen.threed import Cameras, MultiViewDiT, orbit
from visgen.threed.datasets import cameras as data_cameras
from visgen.train.methods import make_method


def _randomised(model: MultiViewDiT, seed: int = 0) -> MultiViewDiT:
    # adaLN-Zero makes a fresh model output 0: give every weight a value so the test can fail
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.double().eval()


def _batch(B=2, V=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    az = 360 * torch.rand(B * V, generator=g)
    el = 20 + 20 * torch.rand(B * V, generator=g)
    cams = data_cameras(az, el).as_vector().reshape(B, V, 16).double()
    x = torch.randn(B, V, 3, 16, 16, generator=g, dtype=torch.float64)
    t = torch.rand(B, generator=g, dtype=torch.float64)
    return x, t, cams


@pytest.mark.parametrize("camera", ["extrinsics", "plucker_world"])
def test_view_mixing_off_equals_per_view_attention(camera):
    # float64, so that only the attention pattern can make a difference (not summation order)
    model = _randomised(MultiViewDiT(camera=camera, depth=2, patch_size=4, dim=32))
    x, t, cams = _batch()
    B, V = x.shape[:2]
    off = model(x, t, {"cameras": cams, "joint": torch.zeros(B, dtype=torch.bool)})
    single = model(
        x.reshape(B * V, 1, 3, 16, 16), t.repeat_interleave(V), cams.reshape(B * V, 1, 16)
    )
    assert (off - single.reshape(off.shape)).abs().max() <= 1e-6
    joint = model(x, t, {"cameras": cams})
    assert (joint - off).abs().max() > 1e-2  # mixing on: the views see each other
    # one batch with both kinds of samples (a per-sample attention mask) gives each its own
    mixed = model(x, t, {"cameras": cams, "joint": torch.tensor([True, False])})
    assert (mixed[0] - joint[0]).abs().max() <= 1e-6
    assert (mixed[1] - off[1]).abs().max() <= 1e-6


def test_fresh_model_predicts_zero_and_given_views_come_back_unchanged():
    model = MultiViewDiT(inputs="tokens", camera="plucker", patch_size=8, dim=32, depth=2).double()
    x, t, cams = _batch(V=3)
    views = torch.randn(2, 3, 3, 16, 16, dtype=torch.float64)
    given = torch.tensor([[True, False, False], [True, True, False]])
    out = model(x, t, {"cameras": cams, "inputs": given, "views": views})
    assert torch.equal(out[given], views[given]) and out[~given].abs().max() == 0
    assert build_model(model.config).config == model.config
    # what is not given is never read: the content of views at generated positions is ignored
    model = _randomised(model)
    a = model(x, t, {"cameras": cams, "inputs": given, "views": views})
    b = model(
        x,
        t,
        {
            "cameras": cams,
            "inputs": given,
            "views": torch.where(given[..., None, None, None], views, 7.0),
        },
    )
    assert torch.equal(a, b)


def _rotate_world(cams: torch.Tensor, angle: float, shift=(0.0, 0.0, 0.0)) -> torch.Tensor:
    c = Cameras.from_vector(cams, 16, 16)
    G = torch.eye(4)
    G[:3, :3] = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0],
                              [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]])  # fmt: skip
    G[:3, 3] = torch.tensor(shift)
    return Cameras(G.double() @ c.c2w, c.K, 16, 16).as_vector().reshape(cams.shape)


@pytest.mark.parametrize(
    ("camera", "inputs", "shift"),
    [("relative", "concat", (0.0, 0.0, 0.0)), ("plucker", "tokens", (0.3, -0.2, 0.5))],
)
def test_novel_view_models_see_only_relative_cameras(camera, inputs, shift):
    # Zero-1-to-3's pose is invariant to turning the world about its up axis; SEVA's Plücker
    # maps in the first camera's frame to any rigid motion of the world
    model = _randomised(MultiViewDiT(inputs=inputs, camera=camera, dim=32, depth=2))
    x, t, cams = _batch(V=3)
    if inputs == "concat":
        args = (x[:, 1:], {"cameras": cams, "views": x[:, :1]})
    else:
        given = torch.tensor([True, False, False]).expand(2, 3)
        args = (x, {"cameras": cams, "inputs": given, "views": x})
    out = model(args[0], t, args[1])
    moved = model(args[0], t, {**args[1], "cameras": _rotate_world(cams, 0.9, shift)})
    assert (out - moved).abs().max() <= 1e-6
    # ... while an absolute encoding changes
    for camera in ("extrinsics", "plucker_world"):
        absolute = _randomised(MultiViewDiT(camera=camera, dim=32, depth=2))
        a = absolute(x, t, cams)
        b = absolute(x, t, _rotate_world(cams, 0.9))
        assert (a - b).abs().max() > 1e-2


@pytest.mark.parametrize("inputs", ["tokens", "concat"])
def test_multiview_method_noises_only_the_generated_views(inputs, gen):
    method = make_method({"name": "multiview_fm", "inputs": inputs,
                          "input_views": [1, 2] if inputs == "tokens" else [0]})  # fmt: skip
    x, t, cams = _batch(B=64, V=3)
    x, cams = x.float(), cams.float()
    batch = method.draw({"x0": x, "cond": cams}, gen)
    given = batch["given"]
    if inputs == "tokens":  # 1 or 2 given views, always the first ones
        assert set(given.sum(1).tolist()) == {1, 2} and given[:, 0].all()
    seen = {}

    def model(xt, tt, cond):
        seen.update(xt=xt, cond=cond)
        # an x-predictor that is exact on given views and off by 1 elsewhere
        out = xt + 1.0
        if "inputs" in cond:
            out = torch.where(cond["inputs"][..., None, None, None], cond["views"], out)
        return out

    losses = method.loss(model, batch)
    tt = batch["t"][:, None, None, None, None]
    if inputs == "concat":  # the input view stays clean; the other views are the targets
        assert torch.equal(seen["cond"]["views"], x[:, :1])
        assert torch.allclose(seen["xt"], (1 - tt) * x[:, 1:] + tt * batch["noise"])
    else:  # given views carry no loss: the per-sample loss is the mean over generated views
        g = given[..., None, None, None]
        assert torch.equal(seen["cond"]["views"], torch.where(g, x, 0.0))
        xt, target = seen["xt"], batch["noise"] - x
        v_hat = (xt - model(xt, batch["t"], seen["cond"])) / tt.clamp_min(0.05)
        err = (v_hat - target).pow(2).flatten(2).mean(2)
        expected = (err * ~given).sum(1) / (~given).sum(1)
        assert torch.allclose(losses, expected)


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="camera"):
        MultiViewDiT(camera="fov")
    with pytest.raises(ValueError, match="inputs"):
        MultiViewDiT(inputs="pixels")
    model = MultiViewDiT(inputs="concat", dim=32, depth=1).double()
    x, t, cams = _batch(V=2)
    with pytest.raises(ValueError, match="cond\\['views'\\]"):
        model(x[:, 1:], t, {"cameras": cams})
    with pytest.raises(ValueError, match="cond\\['cameras'\\]"):
        model(x[:, 1:], t, {"cameras": cams[:, :1], "views": x[:, :1]})
    with pytest.raises(ValueError, match="single_view"):
        make_method({"name": "multiview_fm", "single_view": 2.0})
    with pytest.raises(ValueError, match="input_views applies"):
        make_method({"name": "multiview_fm", "input_views": [1]})
    assert len(orbit([0.0, 90.0])) == 2
