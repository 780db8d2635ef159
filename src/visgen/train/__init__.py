"""Training: methods, the trainer (EMA, checkpoints, torch.distributed), cached assets, the
autoencoder of latent diffusion and REPA's encoders."""

from visgen.train.assets import (
    ASSETS,
    CACHE_VERSION,
    Trained,
    asset,
    asset_key,
    cache_dir,
    load_trained,
    normalize_spec,
    register_asset,
    spec_key,
    train_cached,
    training_data,
)
from visgen.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from visgen.train.distributed import init_distributed, rank_and_world
from visgen.train.latent import AutoencoderTraining, autoencoder, latent_dataset
from visgen.train.methods import METHODS, Classification, Diffusion, make_method
from visgen.train.repa import hidden_features
from visgen.train.trainer import (
    TrainConfig,
    Trainer,
    ema_update,
    learning_rate,
    step_generator,
    warmed_decay,
)
from visgen.train.tuned_grids import calibration_set, tuned_grid

__all__ = [
    "ASSETS",
    "AutoencoderTraining",
    "CACHE_VERSION",
    "METHODS",
    "CheckpointError",
    "Classification",
    "Diffusion",
    "TrainConfig",
    "Trained",
    "Trainer",
    "asset",
    "asset_key",
    "autoencoder",
    "calibration_set",
    "cache_dir",
    "ema_update",
    "warmed_decay",
    "hidden_features",
    "init_distributed",
    "latent_dataset",
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
    "training_data",
    "tuned_grid",
]
