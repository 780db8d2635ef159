"""Networks: MLP, UNet and DiT/MMDiT denoisers, a KL autoencoder, an evaluation classifier,
shared embeddings, LoRA adapters.

Every network stores its constructor arguments in ``model.config`` (with ``"name"``), so a
checkpoint's JSON rebuilds it with :func:`build_model`.
"""

from __future__ import annotations

from torch import nn

from visgen._registry import Registry
from visgen.nn.autoencoder import Autoencoder
from visgen.nn.classifier import Classifier
from visgen.nn.dit import TEXT_MODES, DiT, DiTConfig
from visgen.nn.embeddings import (
    ConditionEmbedding,
    LabelEmbedding,
    SinusoidalEmbedding,
    drop_labels,
)
from visgen.nn.lora import LoRAConv2d, LoRALinear, add_lora, lora_parameters, merge_lora
from visgen.nn.mlp import MLP
from visgen.nn.unet import UNet, count_parameters

__all__ = [
    "MODELS",
    "TEXT_MODES",
    "MLP",
    "Autoencoder",
    "Classifier",
    "ConditionEmbedding",
    "DiT",
    "DiTConfig",
    "LabelEmbedding",
    "LoRAConv2d",
    "LoRALinear",
    "SinusoidalEmbedding",
    "UNet",
    "add_lora",
    "build_model",
    "count_parameters",
    "drop_labels",
    "lora_parameters",
    "merge_lora",
]

MODELS: Registry[type[nn.Module]] = Registry(
    "model name",
    {"mlp": MLP, "unet": UNet, "classifier": Classifier, "dit": DiT, "autoencoder": Autoencoder},
    providers=(
        "visgen.fewstep.flowmap",
        "visgen.video.dit",
        "visgen.ar.training",
        "visgen.threed.multiview",
        "visgen.conditioning.clip",
        "visgen.conditioning.controlnet",
        "visgen.conditioning.ip_adapter",
        "visgen.conditioning.transfusion",
    ),
)
"""Architectures by config name. A module outside :mod:`visgen.nn` that adds one
(``MODELS["flowmap"] = FlowMapNet``) is listed in ``providers`` (:mod:`visgen._registry`)."""


def build_model(config: dict) -> nn.Module:
    """A network from its ``config`` dict (``{"name": "mlp", ...constructor arguments}``)."""
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError(f"config must be a dict with a 'name' key, got {config!r}")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    return MODELS.lookup(config["name"])(**kwargs)
