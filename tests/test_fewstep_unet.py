"""Few-step students of the convolutional teacher ``fm_digits_unet`` (task ``digits_unet``):
the three best methods of ``benchmarks/fewstep.py`` on it, at FAST budgets (FAST teacher,
1000 training steps), students copied from the teacher (convolutional, same weights).

FD = Fréchet distance on the evaluation classifier's features, N = 397 test labels, fixed
noise. Measured 2026-12-07 (FAST teacher: FD 9.59 at 50 Euler NFE, 49.6 / 12.0 at 1 / 4 Euler
NFE), students at seeds 0 / 1 / 2:

* DMD, 40 updates (batch 128, 512 teacher ODE pairs), 1 NFE: 14.6 / 11.6 / 13.3 (spread
  3.0); bar 19.2 = 2× the teacher's 50-NFE FD (the issue's one-step goal). ~23 CPU-s.
* Drifting, teacher-copied U-Net, 100 updates (batch 256), 1 NFE: 25.3 / 15.8 / 20.4 (spread
  9.5); bar 30, against 49.6 for the untrained copy (the teacher's one Euler step). ~10 CPU-s.
* Multi-boundary CD (4 segments), 50 updates (batch 256), 4 jumps: 10.04 / 10.06 / 9.95
  (spread 0.11); bar 11, below the 12.0 it starts from (4 Euler steps of the teacher). ~10 CPU-s.

* ECT (consistency training from the teacher's weights, lr 1e-4, iCT's σ weight), 100
  updates (batch 512): 1 / 4 NFE 15.5 / 11.9, 15.8 / 11.7, 16.3 / 12.2 (spreads 0.8 / 0.5)
  against 49.6 / 22.8 for its untrained start (the teacher's one-step denoiser chained by the
  consistency sampler); bars 19.2 (the one-step goal) and 13.5 at 4 NFE. ~30 CPU-s.

Each test trains at seed 0 only (CI cost); the bars leave the measured spread as margin.
"""

import pytest
import torch

from visgen.course import helpers
from visgen.data import get_dataset
from visgen.fewstep import METHODS, ect_interval, get_task, recipe
from visgen.fewstep.features import FeatureTap, multi_level_layers
from visgen.sampling import sample_euler, uniform


@pytest.fixture(scope="module")
def unet():
    task = get_task("digits_unet")
    cond = get_dataset("digits", "test").labels
    z = torch.randn((len(cond), *task.shape), generator=torch.Generator().manual_seed(1))
    return task, z, cond


def _fd(x, cond) -> float:
    return helpers.digits_row("", x.clamp(-1, 1), cond)["FD (classifier)"]


def _student_fd(unet, method, steps, nfe, seed=0, **options):
    task, z, cond = unet
    options = {**recipe(method, task.name), **options}
    gen = METHODS[method][1](task, steps, torch.Generator().manual_seed(seed), **options)
    assert type(gen.model).__name__ in ("UNet", "FlowMapNet")  # a convolutional student
    return _fd(gen.sample(z, nfe, cond, torch.Generator().manual_seed(2)), cond)


def test_multi_level_heads_read_every_encoder_resolution_and_the_middle_block():
    net = get_task("digits_unet").teacher.model
    layers = multi_level_layers(net)
    feats = FeatureTap(net, layers)(torch.randn(2, 1, 8, 8), torch.rand(2), torch.tensor([0, 1]))
    assert [name for name, _ in layers] == ["down.0", "down.2", "mid.2"]
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 8, 8), (32, 4, 4), (32, 4, 4)]


def test_ect_interval_starts_at_denoising_and_shrinks_by_q_per_stage():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    sigma = t / (1 - t)  # flow matching: σ = σ_t / α_t
    assert (ect_interval(t, 0) == 0).all()  # n(σ) ≥ 1: stage 0 is plain denoising (r = 0)
    for stage in (2, 3, 5):
        r = ect_interval(t, stage)
        assert (r < t).all() and (r >= 0).all()
        gap = sigma - r / (1 - r)
        expected = sigma * (1 + 8 * torch.sigmoid(-sigma)) / 2**stage
        pos = r > 0
        assert torch.allclose(gap[pos], expected[pos], rtol=1e-6)


def test_dmd_one_step_student_of_the_unet_is_within_twice_the_teachers_fd(unet):
    task, z, cond = unet
    teacher = _fd(sample_euler(task.teacher, z, uniform(50), cond), cond)
    got = _student_fd(unet, "dmd", 40, 1, batch_size=128, reference_pairs=512)
    assert got <= 2 * teacher, (got, teacher)


def test_drifting_with_the_teacher_copied_unet_beats_the_teachers_one_step(unet):
    task, z, cond = unet
    one_step = _fd(sample_euler(task.teacher, z, uniform(1), cond), cond)
    got = _student_fd(unet, "drifting", 100, 1, batch_size=256)
    assert got <= 30 < one_step, (got, one_step)


def test_multiboundary_cd_four_jumps_beat_four_euler_steps_of_the_teacher(unet):
    task, z, cond = unet
    euler4 = _fd(sample_euler(task.teacher, z, uniform(4), cond), cond)
    got = _student_fd(unet, "multiboundary_cd", 50, 4, batch_size=256)
    assert got <= 11 < euler4, (got, euler4)


def test_lora_consistency_distillation_trains_only_the_adapters_and_the_gap_embedding():
    task = get_task("digits_unet")
    gen = METHODS["multiboundary_cd"][1](task, 3, torch.Generator().manual_seed(0), lora=2)
    teacher = dict(task.teacher.model.named_parameters())
    moved = set()
    for name, p in gen.model.named_parameters():
        base = name.removeprefix("net.").replace(".base.", ".").replace("embed.inner.", "embed.")
        if base in teacher:  # a frozen teacher weight: must be bit-identical
            assert torch.equal(p, teacher[base]), name
        else:
            moved.add(name.split(".lora_")[0] if ".lora_" in name else name)
    lora_b = [p for n, p in gen.model.named_parameters() if n.endswith("lora_b.weight")]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it trained
    assert any(n.startswith("net.embed.gap") for n in moved)


def test_ect_improves_on_its_start_at_one_and_four_nfe(unet):
    task, z, cond = unet
    train = METHODS["consistency_training"][1]
    options = recipe("consistency_training", task.name)
    fds = {}
    for steps in (0, 100):
        gen = train(task, steps, torch.Generator().manual_seed(0), **options)
        for nfe in (1, 4):
            x = gen.sample(z, nfe, cond, torch.Generator().manual_seed(2))
            fds[steps, nfe] = _fd(x, cond)
    assert fds[0, 1] > 40 and fds[0, 4] > 20, fds  # the start: the teacher's blurred denoiser
    assert fds[100, 1] <= 19.2 and fds[100, 4] <= 13.5, fds
