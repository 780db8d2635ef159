import os

import pytest
import torch
from hypothesis import settings

# The same examples on every run and machine: a property failure reproduces, CI never flakes.
settings.register_profile("visgen", derandomize=True, deadline=None)
settings.load_profile("visgen")

os.environ.setdefault("VISGEN_FAST", "1")
torch.set_num_threads(1)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
