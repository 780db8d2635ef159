"""Trained few-step students by (method, task, steps, seed, options), cached on disk.

The tour and the benchmark ask :func:`trained` instead of training: the first call trains
(``METHODS[method](task, steps, generator, **options)``) and writes the student's weights and
``info`` as a checkpoint (:mod:`visgen.train.checkpoint`, atomic, safetensors + JSON) under
``<cache_dir>/fewstep``; later calls rebuild the untrained generator (``steps = 0``) and
load the weights. The key hashes the method, ``task.key`` (which names the teacher's own
cache entry), steps, seed, options, the method's revision (see
:func:`~visgen.fewstep.base.register_method`) and :data:`visgen.train.CACHE_VERSION`. A file
lock makes parallel processes train each entry once.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from visgen._checks import check_choice
from visgen.fewstep.base import METHODS, REVISIONS, FewStepGenerator, Task
from visgen.fewstep.tasks import get_task
from visgen.train.assets import CACHE_VERSION, cache_dir, cache_entry
from visgen.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["trained"]


def trained(
    method: str, task: Task | str, steps: int, *, seed: int = 0, cache=None, **options
) -> FewStepGenerator:
    """The student of ``method`` on ``task`` after ``steps`` updates, from the cache or trained now.

    ``options`` (JSON-able) go to the method's training function; ``info["wall_s"]`` is
    the training time in seconds of the run that filled the cache entry.
    """
    check_choice(method, "method", sorted(METHODS))
    if isinstance(task, str):
        task = get_task(task)
    _, train = METHODS[method]
    text = json.dumps(
        {
            "v": CACHE_VERSION,
            "method": method,
            "task": task.key,
            "steps": steps,
            "seed": seed,
            "options": options,
            **({"revision": REVISIONS[method]} if REVISIONS[method] > 1 else {}),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    root = cache_dir() if cache is None else Path(cache)
    stem = f"fewstep/{task.name}-{method}-{digest}"
    with cache_entry(root, stem, kind="student", name=f"{method} on {task.name}") as cached:
        if cached:
            tensors, config = load_checkpoint(root / stem)
            student = train(task, 0, torch.Generator().manual_seed(seed), **options)
            student.model.load_state_dict(tensors)
            student.info = config["info"]
            return student
        start = time.perf_counter()
        student = train(task, steps, torch.Generator().manual_seed(seed), **options)
        student.info["wall_s"] = time.perf_counter() - start
        tensors = {k: v.contiguous() for k, v in student.model.state_dict().items()}
        save_checkpoint(
            root / stem, tensors, {"method": method, "task": task.key, "info": student.info}
        )
    return student
