r"""Latent space: training the KL autoencoder, its cached assets, and latent data sets.

* The ``vae`` method (:class:`AutoencoderTraining`) minimises
  (1/D)‖x − dec(μ + σ ε)‖² + (β/D) KL(q(z|x) ‖ N(0, I)) (Rombach et al. 2022, arXiv
  2112.10752, §3; :mod:`visgen.nn.autoencoder`).
* Asset ``vae_shapes16`` (16×16×3 → 8×8×4 latents, f = 2); :func:`autoencoder` returns an
  autoencoder asset with its latent scaling factor s = 1/std(μ) measured on its training data.
* :func:`latent_dataset` (the ``latent:<asset>`` data sets of :func:`visgen.train.training_data`)
  encodes a data set once to s·μ(x): any diffusion method then trains in latent space as it
  would on pixels, and samples are decoded with ``autoencoder(name).from_latent(z)``.
"""

from __future__ import annotations

import torch

from visgen.config import budget
from visgen.data.registry import Dataset, get_dataset
from visgen.nn.autoencoder import Autoencoder
from visgen.train.assets import asset, asset_key, register_asset
from visgen.train.methods import METHODS

__all__ = ["AutoencoderTraining", "autoencoder", "latent_dataset"]


class AutoencoderTraining:
    """The ``vae`` method: reconstruction MSE + β·KL per input value, ``kl_weight`` = β."""

    name = "vae"

    def __init__(self, kl_weight: float = 1e-3):
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight!r}")
        self.kl_weight = kl_weight
        self.spec = {"name": "vae", "kl_weight": kl_weight}

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        # ε of the reparametrisation, drawn with x0's shape: a compressing autoencoder's latent
        # has fewer values than its input (checked by Autoencoder), so it uses the first ones
        x0 = batch["x0"]
        return {**batch, "noise": torch.randn(x0.shape, generator=generator, dtype=x0.dtype)}

    def loss(self, model, batch: dict) -> torch.Tensor:
        if not isinstance(model, Autoencoder):
            raise TypeError(f"the vae method trains an Autoencoder, got {type(model).__name__}")
        x0 = batch["x0"]
        q = model.encode(x0)
        noise = batch["noise"].flatten(1)[:, : q.mean[0].numel()].reshape(q.mean.shape)
        recon = model.decode(q.sample(noise))
        values = x0[0].numel()
        return (recon - x0).pow(2).flatten(1).mean(1) + self.kl_weight * q.kl() / values


METHODS["vae"] = AutoencoderTraining


def _vae(data: str, channels: int, size: int, levels: int):
    def recipe() -> dict:
        return {
            "model": {
                "name": "autoencoder",
                "in_channels": channels,
                "size": size,
                "latent_channels": 4,
                "width": 16,
                "levels": levels,
            },
            "method": {"name": "vae", "kl_weight": 1e-4},
            "data": data,
            "train": {
                "steps": budget(full=1000, fast=600),
                "batch_size": 64,
                "lr": 3e-3,
                "ema_decay": 0.99,
            },
        }

    return recipe


register_asset("vae_shapes16", _vae("shapes16", 3, 16, 1))

_FITTED: dict[str, Autoencoder] = {}


def autoencoder(name: str) -> Autoencoder:
    """The trained autoencoder asset ``name`` (frozen, EMA weights) with its scale fitted."""
    trained = asset(name, progress=False)
    if not isinstance(trained.model, Autoencoder):
        raise TypeError(f"asset {name!r} is not an autoencoder")
    key = str(trained.path)
    if key not in _FITTED:
        trained.model.fit_scale(get_dataset(trained.config["data"]).x)
        _FITTED[key] = trained.model
    return _FITTED[key]


@torch.no_grad()
def latent_dataset(
    name: str, split: str = "train", *, key: str | None = None, batch_size: int = 1024
) -> Dataset:
    """The training data of autoencoder asset ``name`` as scaled latents s·μ(x), labels kept.

    ``key``: the autoencoder's expected cache key (:func:`~visgen.train.asset_key`); a
    mismatch (the recipe or the budget changed) is an error rather than silently other latents.
    """
    if key is not None and key != asset_key(name):
        raise ValueError(
            f"latents of {name!r} were requested for autoencoder {key}, but the asset is now "
            f"{asset_key(name)} (FAST vs full budget, or a changed recipe)"
        )
    vae = autoencoder(name)
    data = get_dataset(asset(name, progress=False).config["data"], split)
    z = torch.cat(
        [vae.to_latent(data.x[i : i + batch_size]) for i in range(0, len(data), batch_size)]
    )
    return Dataset(f"latent:{name}:{asset_key(name)}", z, data.labels, data.num_classes)
