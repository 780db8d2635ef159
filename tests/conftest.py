import importlib
import os
import random

import numpy as np
import pytest
import torch
from hypothesis import settings

# The same examples on every run and machine: a property failure reproduces, CI never flakes.
settings.register_profile("visgen", derandomize=True, deadline=None)
settings.load_profile("visgen")

os.environ.setdefault("VISGEN_FAST", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _same_global_rng_in_every_test():
    """Seed the global generators before each test: a model built without a generator (its
    init draws from the global RNG) is the same whichever tests ran before on the worker."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def chapter_module():
    """``load(name, ids)``: import the tests' module ``name``, which registers the tour chapters
    ``ids`` on import (again, if an earlier test unregistered them); unregistered afterwards."""
    from visgen.course import tour

    registered = []

    def load(name: str, ids: tuple[str, ...]):
        module = importlib.import_module(name)
        if any(i not in tour._REGISTRY for i in ids):
            module = importlib.reload(module)
        registered.extend(ids)
        return module

    yield load
    for i in registered:
        tour._REGISTRY.pop(i, None)
