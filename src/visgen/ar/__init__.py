"""Autoregressive visual generation (lecture 8): tokenizers (VQ-VAE, FSQ, VQGAN, VAR's
multi-scale residual VQ), next-token AR in raster order, next-scale AR (VAR, Switti), masked AR
over continuous tokens with a per-token flow-matching or diffusion head (MAR), and diffusion as
spectral autoregression.

Its models, training methods and assets are registered by :mod:`visgen.ar.training`, a provider
of :data:`visgen.nn.MODELS`, :data:`visgen.train.METHODS` and :data:`visgen.train.ASSETS`
(imported on first lookup, whatever was imported before).
"""

from visgen.ar.fsq import FSQ
from visgen.ar.heads import TokenHead, head_loss, head_times, sample_head
from visgen.ar.mar import (
    MAR,
    MARSample,
    cfg_scale,
    cosine_mask_schedule,
    mar_loss,
    mask_from_order,
    masked_head_loss,
    patchify,
    random_orders,
    sample_mask_ratio,
    sample_tokens,
    unpatchify,
)
from visgen.ar.multiscale import MultiScaleQuantizer, check_scales
from visgen.ar.quantize import VectorQuantizer, codebook_usage, kmeans, perplexity, psnr
from visgen.ar.raster import ARSample, RasterAR, generate_raster
from visgen.ar.sampling import GenerationStats, cfg_logits, filter_logits, sample_logits
from visgen.ar.spectral import crossover_frequency, fit_power_law, power_law_images, rapsd
from visgen.ar.tokenizer import Tokenizer
from visgen.ar.training import MARTraining, TokenARTraining, TokenizerTraining, tokenizer
from visgen.ar.transformer import TokenTransformer
from visgen.ar.var import NextScaleAR, attention_pairs, generate_next_scale, scale_groups

__all__ = [
    "FSQ",
    "MAR",
    "ARSample",
    "GenerationStats",
    "MARSample",
    "MARTraining",
    "MultiScaleQuantizer",
    "NextScaleAR",
    "RasterAR",
    "TokenARTraining",
    "TokenHead",
    "TokenTransformer",
    "Tokenizer",
    "TokenizerTraining",
    "VectorQuantizer",
    "attention_pairs",
    "cfg_logits",
    "cfg_scale",
    "check_scales",
    "codebook_usage",
    "cosine_mask_schedule",
    "crossover_frequency",
    "filter_logits",
    "fit_power_law",
    "generate_next_scale",
    "generate_raster",
    "head_loss",
    "head_times",
    "kmeans",
    "mar_loss",
    "mask_from_order",
    "masked_head_loss",
    "patchify",
    "perplexity",
    "power_law_images",
    "psnr",
    "random_orders",
    "rapsd",
    "sample_head",
    "sample_logits",
    "sample_mask_ratio",
    "sample_tokens",
    "scale_groups",
    "tokenizer",
    "unpatchify",
]
