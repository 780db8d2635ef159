import os

import pytest
import torch

os.environ.setdefault("VISGEN_FAST", "1")
torch.set_num_threads(1)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
