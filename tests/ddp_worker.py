"""Run by tests/test_distributed.py under torchrun: train a few steps data-parallel, save params.

Usage: torchrun --nproc_per_node 2 tests/ddp_worker.py OUT_DIR
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from visgen.data import get_dataset
from visgen.nn import MLP
from visgen.train import TrainConfig, Trainer, make_method, rank_and_world

CONFIG = TrainConfig(steps=12, batch_size=64, lr=3e-3, warmup=3, grad_clip=0.5)


def make_trainer(out=None) -> Trainer:
    torch.manual_seed(0)
    model = MLP(2, width=32, depth=2, num_classes=8)
    method = make_method({"name": "fm", "label_dropout": 0.2})
    return Trainer(
        model, method, get_dataset("eight_gaussians"), CONFIG, out=out, progress=False, device="cpu"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    trainer = make_trainer(out).fit()
    rank, world = rank_and_world()
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    tensors["history"] = torch.tensor(trainer.history, dtype=torch.float64)
    tensors["world"] = torch.tensor(world)
    save_file(tensors, str(out / f"rank{rank}.safetensors"))
