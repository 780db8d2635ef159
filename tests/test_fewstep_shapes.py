"""The ``shapes`` few-step task: a trained flow-matching teacher on 16×16 colour shapes (12
classes) and a one-step student distilled from it (FAST budgets, fixed seeds).

Measured (teacher ``fm_shapes16`` at 1500 steps, N = 300 with labels cycling through the 12
classes, against the test split): teacher at 50 Euler NFE FD 95 (real shapes at the same N:
109 ± 28), right class 0.54 (chance 1/12); the teacher in one Euler step FD 2186 (the blurred
class mean). MMD distillation, 100 generator updates: one step FD 238, right class 0.46.
"""

import torch

from visgen.fewstep import get_task, train_mmd
from visgen.metrics import image_metrics
from visgen.sampling import sample_euler, uniform

N = 300


def test_shapes_teacher_and_a_one_step_mmd_student():
    task = get_task("shapes")
    assert task.shape == (3, 16, 16) and task.num_classes == 12
    assert task.teacher.prediction == "x0"  # JiT: an MLP this narrow cannot output the noise
    y = torch.arange(N) % 12
    z = torch.randn(N, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    def metrics(x):
        return image_metrics(x.clamp(-1, 1), "shapes16", cond=y)

    one, fifty = (metrics(sample_euler(task.teacher, z, uniform(k), y)) for k in (1, 50))
    assert fifty["fd"] < 250 and fifty["agreement"] > 0.4, fifty
    student = train_mmd(task, 100, torch.Generator().manual_seed(0), batch_size=128)
    x = student.sample(z, 1, y, torch.Generator().manual_seed(2))
    got = metrics(x)
    assert got["fd"] < one["fd"] / 4 and got["agreement"] > 0.3, (got, one)
