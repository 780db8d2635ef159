import json
import math

import pytest
import torch

from visgen.data import get_dataset
from visgen.nn import MLP, UNet
from visgen.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    learning_rate,
    load_checkpoint,
    load_trained,
    make_method,
    save_checkpoint,
    spec_key,
    train_cached,
)
from visgen.train.checkpoint import checkpoint_paths


def _trainer(steps=40, out=None, method="fm", **kw):
    torch.manual_seed(0)
    model = MLP(2, width=32, depth=2, num_classes=8)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=3e-3, warmup=5, ckpt_every=0, **kw)
    data = get_dataset("eight_gaussians")
    return Trainer(
        model,
        make_method({"name": method, "label_dropout": 0.2}),
        data,
        cfg,
        out=out,
        progress=False,
    )


def test_checkpoint_round_trips_exactly(tmp_path):
    tensors = {
        "a": torch.randn(3, 4, dtype=torch.float64),
        "b": torch.arange(5),
        "c": torch.randn(2, dtype=torch.bfloat16),
        "scalar": torch.tensor(7.5),
    }
    config = {"x": [1, 2.5, "three"], "nested": {"k": None, "flag": True}}
    path = save_checkpoint(tmp_path / "ck", tensors, config)
    assert path == tmp_path / "ck.json" and (tmp_path / "ck.safetensors").exists()
    loaded, cfg = load_checkpoint(tmp_path / "ck.safetensors")
    assert cfg == config and loaded.keys() == tensors.keys()
    for k in tensors:
        assert loaded[k].dtype == tensors[k].dtype and torch.equal(loaded[k], tensors[k])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp files left


def test_truncated_or_corrupted_checkpoint_gives_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ck", {"w": torch.randn(100)}, {"step": 1})
    st, js = checkpoint_paths(tmp_path / "ck")
    blob = st.read_bytes()
    st.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "ck")
    flipped = bytearray(blob)
    flipped[-3] ^= 0xFF
    st.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "ck")
    st.write_bytes(blob)
    js.write_text(js.read_text()[:20])
    with pytest.raises(CheckpointError, match="config .* is corrupted"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "other")
    with pytest.raises(TypeError, match="tensors"):
        save_checkpoint(tmp_path / "x", {"w": [1.0]}, {})


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=110, lr=1e-2, min_lr=1e-4, warmup=10)
    assert learning_rate(0, cfg) == pytest.approx(1e-3)
    assert learning_rate(9, cfg) == pytest.approx(1e-2)
    assert learning_rate(10, cfg) == pytest.approx(1e-2)
    assert learning_rate(60, cfg) == pytest.approx(1e-4 + 0.5 * (1e-2 - 1e-4))
    assert learning_rate(110, cfg) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(steps=10, lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"steps": 10, "epochs": 3})


def test_training_is_deterministic_and_resume_continues_the_same_loss_curve(tmp_path):
    straight = _trainer(40).fit()
    assert straight.history[-1] < straight.history[0]
    again = _trainer(40).fit()
    assert again.history == straight.history

    first = _trainer(40, out=tmp_path)
    for _ in range(25):  # interrupted after 25 of 40 steps
        first.train_step()
    first.save(tmp_path / "checkpoint")
    resumed = _trainer(40, out=tmp_path).fit(resume=True)
    assert resumed.history == straight.history  # bit for bit, the same curve
    for a, b in zip(resumed.ema.parameters(), straight.ema.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)


def test_resume_refuses_a_different_run(tmp_path):
    _trainer(10, out=tmp_path).fit()
    with pytest.raises(ValueError, match="different run: train"):
        _trainer(10, out=tmp_path, seed=1).fit(resume=True)


def test_ema_and_clipping(tmp_path):
    t = _trainer(6, out=tmp_path, grad_clip=0.01, ema_decay=0.5)
    norms, step = [], t.optimizer.step

    def recording_step(*a, **kw):
        norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in t.params)).item())
        return step(*a, **kw)

    t.optimizer.step = recording_step
    expected = [p.detach().clone() for p in t.model.parameters()]
    for s in range(6):
        t.train_step()
        d = min(0.5, (1 + s) / (10 + s))  # EMA: θ̄ ← d θ̄ + (1 − d) θ
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, t.model.parameters())]
    for e, p in zip(expected, t.ema.parameters()):
        assert torch.allclose(e, p, atol=1e-7)
    assert max(norms) <= 0.01 * (1 + 1e-5)
    t.save(tmp_path / "checkpoint")
    trained = load_trained(tmp_path / "checkpoint")
    assert trained.config["step"] == 6 and len(trained.history) == 6
    for a, b in zip(trained.model.parameters(), t.ema.parameters()):
        assert torch.equal(a, b)
    raw = load_trained(tmp_path / "checkpoint", ema=False)
    for a, b in zip(raw.model.parameters(), t.model.parameters()):
        assert torch.equal(a, b)


def test_unet_and_classifier_train(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=3, batch_size=8, warmup=1)
    data = get_dataset("digits")
    Trainer(
        UNet(1, 8, channels=8, mults=(1, 2), num_classes=10),
        make_method("ddpm"),
        data,
        cfg,
        progress=False,
    ).fit()
    from visgen.nn import Classifier

    t = Trainer(
        Classifier(1, 10, width=8), make_method("classifier"), data, cfg, progress=False
    ).fit()
    assert all(math.isfinite(h) for h in t.history)
    with pytest.raises(ValueError, match="no labels"):
        Trainer(MLP(2, num_classes=3), make_method("fm"), get_dataset("moons"), cfg, progress=False)


def _spec(steps=30):
    return {
        "model": {"name": "mlp", "shape": [2], "width": 16, "depth": 2},
        "method": "fm",
        "data": "moons",
        "train": {"steps": steps, "batch_size": 32, "warmup": 2},
    }


def test_cached_training_trains_once(tmp_path, monkeypatch):
    first = train_cached(_spec(), cache=tmp_path, progress=False)
    assert first.config["step"] == 30 and first.path.parent == tmp_path
    # equivalent specs share a key; a different budget does not
    spec2 = _spec()
    spec2["method"] = {"name": "fm", "t_sampler": "uniform", "label_dropout": 0.0}
    assert spec_key(spec2) == spec_key(_spec()) != spec_key(_spec(31))
    monkeypatch.setattr(Trainer, "fit", lambda self, **kw: pytest.fail("retrained a cached model"))
    second = train_cached(spec2, cache=tmp_path, progress=False)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    den = second.denoiser()
    assert den.prediction == "velocity" and den.velocity(torch.zeros(3, 2), 0.5).shape == (3, 2)
    meta = json.loads(first.path.read_text())
    assert meta["config"]["data"] == "moons"
    with pytest.raises(ValueError, match="unknown keys"):
        train_cached({**_spec(), "epochs": 3}, cache=tmp_path)


def test_a_float64_model_trains_on_float32_data():
    trainer = _trainer(20)
    trainer.model.double()
    trainer = Trainer(trainer.model, trainer.method, trainer.data, trainer.config, progress=False)
    history = trainer.fit().history
    assert all(math.isfinite(h) for h in history)
    assert next(trainer.ema.parameters()).dtype == torch.float64


def _reference_fit(model, method, data, cfg):
    """The trainer's update written out with per-tensor ops (AdamW's single-tensor loop and
    one ``lerp_`` per EMA tensor): the Trainer's fused-loop versions must match it bit for bit,
    so the cache entries trained before and after them are the same networks."""
    torch.manual_seed(0)
    ref = Trainer(model, method, data, cfg, progress=False)  # its _batch: the same draws
    opt = torch.optim.AdamW(ref.params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        opt.zero_grad(set_to_none=True)
        (method.loss(ref.model, ref._batch(step)).sum() / cfg.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(ref.params, cfg.grad_clip)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ref.ema.parameters(), ref.model.parameters()):
                e.lerp_(p, 1 - decay)
    return ref


@pytest.mark.parametrize("arch", ["mlp", "unet"])
def test_trainer_update_is_bit_identical_to_the_per_tensor_reference(arch):
    data = get_dataset("digits")
    cfg = TrainConfig(steps=12, batch_size=16, lr=2e-3, warmup=3, weight_decay=1e-2, grad_clip=0.5)

    def build():
        torch.manual_seed(0)
        if arch == "mlp":
            return MLP((1, 8, 8), width=32, depth=2, num_classes=10)
        return UNet(1, 8, channels=8, mults=(1, 2), num_classes=10)

    method = make_method({"name": "fm", "t_sampler": "logit_normal", "label_dropout": 0.1})
    ref = _reference_fit(build(), method, data, cfg)
    fast = Trainer(build(), method, data, cfg, progress=False).fit()
    for part in ("model", "ema"):
        ours, theirs = getattr(fast, part).state_dict(), getattr(ref, part).state_dict()
        assert ours.keys() == theirs.keys()
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), f"{part}.{k} differs from the reference"
    # and the weights moved: a test that compares two untrained networks proves nothing
    assert not torch.equal(next(fast.model.parameters()), next(build().parameters()))
