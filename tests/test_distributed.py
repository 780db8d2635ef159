"""Data-parallel training over torch.distributed (gloo) with 2 CPU processes via torchrun."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import make_trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_data_parallel_equals_single_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(Path(__file__).parent / "ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0]["world"].item() == ranks[1]["world"].item() == 2
    for k in ranks[0]:  # parameters, EMA and loss curve identical across ranks, bit for bit
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    assert (tmp_path / "checkpoint.json").exists()  # rank 0 wrote the checkpoint

    single = make_trainer().fit()  # one process, the same global batch of 64
    state = {f"model.{k}": v for k, v in single.model.state_dict().items()}
    state.update({f"ema.{k}": v for k, v in single.ema.state_dict().items()})
    for k, v in state.items():
        assert torch.allclose(ranks[0][k], v, rtol=1e-4, atol=1e-6), k
    assert torch.allclose(
        ranks[0]["history"], torch.tensor(single.history, dtype=torch.float64), rtol=1e-5
    )
