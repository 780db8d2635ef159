r"""The trainer: AdamW, linear warm-up + cosine learning rate, gradient clipping, EMA,
atomic checkpoints with exact resume, a tqdm bar, data parallelism over torch.distributed.

One step s:

1. a generator seeded from (seed, s) draws the global batch — B row indices with replacement —
   and, through the method, its randomness (t, ε, label dropout);
2. this rank's rows give per-sample losses ℓ_i; the rank back-propagates Σ_{own i} ℓ_i / B and
   gradients are summed over ranks, so every rank holds ∇ (1/B) Σ_i ℓ_i;
3. the gradient norm is clipped to ``grad_clip``, AdamW (Loshchilov & Hutter 2019, arXiv
   1711.05101) steps with η_s = η · min(1, (s + 1)/warmup) during warm-up, then the cosine decay
   η_s = η_min + ½(η − η_min)(1 + cos π p), p the fraction of post-warm-up steps done;
4. the EMA weights follow θ̄ ← d θ̄ + (1 − d) θ with d = min(ema_decay, (1 + s)/(10 + s)), the
   usual warm-up of the decay so short runs are not dominated by the initial weights.

Because every random draw is a function of (seed, s), a run resumed from a checkpoint at step
s continues exactly the loss curve of an uninterrupted run (tested bit for bit on the CPU).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from visgen._checks import check_positive
from visgen.data.registry import Dataset
from visgen.train.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from visgen.train.distributed import (
    all_reduce_grads,
    broadcast_parameters,
    default_device,
    init_distributed,
)

__all__ = [
    "TrainConfig",
    "Trainer",
    "ema_update",
    "learning_rate",
    "step_generator",
    "warmed_decay",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run (stored in every checkpoint)."""

    steps: int
    batch_size: int = 256
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int = 0

    def __post_init__(self):
        check_positive(self.steps, "steps", integer=True)
        check_positive(self.batch_size, "batch_size", integer=True)
        check_positive(self.lr, "lr")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        for name in ("warmup", "ckpt_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0 (grad_clip 0 = no clipping)")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown training options {sorted(unknown)}; expected {sorted(known)}"
            )
        return cls(**d)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """η_s: linear warm-up over ``cfg.warmup`` steps, then cosine decay to ``cfg.min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(p, 1.0)))


def warmed_decay(step: int, decay: float) -> float:
    """The EMA decay at update ``step`` (0-based): d = min(decay, (1 + s)/(10 + s))."""
    return min(decay, (1 + step) / (10 + step))


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ̄ ← d θ̄ + (1 − d) θ for every parameter; buffers (running statistics, counters) are
    copied. ``ema`` and ``model`` have the same architecture."""
    _ema_step(_EmaPairs(ema, model), decay)


class _EmaPairs:
    """The tensors one EMA step reads and writes, listed once (walking the modules every step
    costs as much as the update of a small network)."""

    def __init__(self, ema: nn.Module, model: nn.Module):
        self.ema, self.params = list(ema.parameters()), list(model.parameters())
        self.ema_buffers, self.buffers = list(ema.buffers()), list(model.buffers())


@torch.no_grad()
def _ema_step(pairs: _EmaPairs, decay: float) -> None:
    # one C++ loop over the tensors instead of one Python call each; the same lerp kernel per
    # tensor, so the result is bit-identical to ``e.lerp_(p, 1 - decay)`` (tests/test_train.py)
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")
    if pairs.ema:
        torch._foreach_lerp_(pairs.ema, pairs.params, 1 - decay)
    if pairs.ema_buffers:
        torch._foreach_copy_(pairs.ema_buffers, pairs.buffers)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``: a function of (seed, step) only (resume and ranks agree)."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


class Trainer:
    """Train ``model`` with ``method`` on ``data``.

    Args:
        model: an ``nn.Module`` with a ``config`` dict (see :func:`visgen.nn.build_model`).
        method: a method of :mod:`visgen.train.methods` (``draw`` + ``loss``).
        data: a :class:`~visgen.data.Dataset`; its labels are used when ``labels`` is true
            (default: when the model has ``num_classes`` > 0).
        out: a folder for ``checkpoint.{safetensors,json}`` (rank 0 writes); None: no files.
        device: defaults to this rank's GPU if CUDA is available, else the CPU.

    After :meth:`fit`, ``model`` holds the last weights, ``ema`` the EMA weights, ``history``
    the global mean loss of every step.
    """

    def __init__(
        self,
        model: nn.Module,
        method,
        data: Dataset,
        config: TrainConfig,
        *,
        out=None,
        labels: bool | None = None,
        device=None,
        progress: bool = True,
        desc: str = "train",
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(data, Dataset):
            raise TypeError(f"data must be a visgen.data.Dataset, got {type(data).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.rank, self.world = init_distributed()
        if config.batch_size % self.world:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the world size {self.world}"
            )
        self.device = torch.device(device) if device is not None else default_device()
        self.model, self.method, self.data, self.config = (
            model.to(self.device),
            method,
            data,
            config,
        )
        if labels is None:
            labels = getattr(model, "config", {}).get("num_classes", 0) > 0
        if labels and data.labels is None:
            raise ValueError(f"data set {data.name!r} has no labels but the model is conditional")
        self.labels = labels
        self.out, self.progress, self.desc = (Path(out) if out else None), progress, desc
        broadcast_parameters(self.model)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # foreach: the same AdamW arithmetic per tensor (bit-identical, tests/test_train.py)
        # in a few C++ loops; on the CPU torch would otherwise pick one Python loop per tensor
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay, foreach=True
        )
        self._ema_pairs = _EmaPairs(self.ema, self.model)
        self.step, self.history = 0, []

    # --- configuration and state ----------------------------------------------------------
    def run_config(self) -> dict:
        """What was trained: model, method, data and optimisation settings (JSON-able)."""
        return {
            "model": self.model.config,
            "method": self.method.spec,
            "data": self.data.name,
            "labels": self.labels,
            "train": asdict(self.config),
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        for i, state in self.optimizer.state_dict()["state"].items():
            tensors.update({f"optim.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
        tensors["history"] = torch.tensor(self.history, dtype=torch.float64)
        return tensors

    def save(self, path) -> Path:
        """Write a checkpoint (tensors + JSON with ``run_config`` and the step)."""
        return save_checkpoint(path, self.state_tensors(), {**self.run_config(), "step": self.step})

    def load(self, path) -> None:
        """Restore model, EMA, optimiser, step and loss history from a checkpoint of this run."""
        tensors, config = load_checkpoint(path)
        mine = self.run_config()
        diff = sorted(k for k in mine if config.get(k) != mine[k])
        if diff:
            raise ValueError(
                f"checkpoint {str(path)!r} is from a different run: {', '.join(diff)} differ"
            )

        def part(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.ema.load_state_dict(part("ema."))
        optim = self.optimizer.state_dict()
        state: dict[int, dict] = {}
        for k, v in part("optim.").items():
            i, name = k.split(".", 1)
            state.setdefault(int(i), {})[name] = v.to(self.device) if v.dim() else v
        optim["state"] = state
        self.optimizer.load_state_dict(optim)
        self.step, self.history = int(config["step"]), tensors["history"].tolist()

    # --- training -------------------------------------------------------------------------
    def _batch(self, step: int) -> dict:
        g = step_generator(self.config.seed, step)
        idx = torch.randint(0, len(self.data), (self.config.batch_size,), generator=g)
        # data sets are float32; the batch follows the model's dtype (float64 models train too)
        batch = {"x0": self.data.x[idx].to(next(self.model.parameters()).dtype)}
        if self.labels:
            batch["cond"] = self.data.labels[idx]
        batch = self.method.draw(batch, g)
        rows = slice(
            self.rank * self.config.batch_size // self.world,
            (self.rank + 1) * self.config.batch_size // self.world,
        )
        return {
            k: v[rows].to(self.device) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }

    def train_step(self) -> float:
        """One optimisation step; returns the global mean loss of the batch."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.method.loss(self.model, self._batch(self.step))
        local = losses.sum() / cfg.batch_size
        local.backward()
        loss = float(all_reduce_grads(self.params, local.detach()))
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {self.step}; lower lr or check data")
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        _ema_step(self._ema_pairs, warmed_decay(self.step, cfg.ema_decay))
        self.step += 1
        self.history.append(loss)
        return loss

    def fit(self, *, resume: bool = False) -> Trainer:
        """Train up to ``config.steps``; with ``resume``, continue from ``out``'s checkpoint."""
        ckpt = self.out / "checkpoint" if self.out else None
        if resume:
            if ckpt is None:
                raise ValueError("resume=True needs an out folder")
            if checkpoint_paths(ckpt)[1].exists():
                self.load(ckpt)
        cfg = self.config
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            desc=self.desc,
            disable=not self.progress or self.rank != 0,
            dynamic_ncols=True,
            leave=False,
        )
        running = None
        while self.step < cfg.steps:
            loss = self.train_step()
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            if self.step % 25 == 0 or self.step == cfg.steps:
                bar.set_postfix(
                    loss=f"{running:.4f}", lr=f"{learning_rate(self.step - 1, cfg):.1e}"
                )
            if (
                ckpt is not None
                and self.rank == 0
                and cfg.ckpt_every
                and self.step % cfg.ckpt_every == 0
            ):
                self.save(ckpt)
        bar.close()
        if ckpt is not None and self.rank == 0:
            self.save(ckpt)
        self.ema.eval()
        return self
