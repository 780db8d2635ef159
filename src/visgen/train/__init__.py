"""Training: methods, the trainer (EMA, checkpoints, torch.distributed) and cached assets."""

from visgen.train.assets import (
    ASSETS,
    CACHE_VERSION,
    Trained,
    asset,
    cache_dir,
    load_trained,
    normalize_spec,
    register_asset,
    spec_key,
    train_cached,
)
from visgen.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from visgen.train.distributed import init_distributed, rank_and_world
from visgen.train.methods import METHODS, Classification, Diffusion, make_method
from visgen.train.trainer import TrainConfig, Trainer, learning_rate, step_generator

__all__ = [
    "ASSETS",
    "CACHE_VERSION",
    "METHODS",
    "CheckpointError",
    "Classification",
    "Diffusion",
    "TrainConfig",
    "Trained",
    "Trainer",
    "asset",
    "cache_dir",
    "init_distributed",
    "learning_rate",
    "load_checkpoint",
    "load_trained",
    "make_method",
    "normalize_spec",
    "rank_and_world",
    "register_asset",
    "save_checkpoint",
    "spec_key",
    "step_generator",
    "train_cached",
]
