"""Lecture 10: efficient diffusion — caching, sparse attention, quantisation.

* Caching (Denoiser wrappers, one design in :mod:`~visgen.efficient.cache`: a frozen config,
  a hook that replaces the forward pass, one state per CFG branch, first and last steps
  always computed, a reset per inference): :func:`deepcache` (U-Net deep features),
  :func:`fora` (DiT attention / MLP outputs), :func:`teacache` with
  :func:`calibrate_teacache` and its fixed-schedule baseline :func:`uniform_cache` (the DiT
  block stack's residual), :func:`pab` (video attention broadcast).
* Sparse attention over video tokens (:mod:`~visgen.efficient.sparse`): Sparse VideoGen's
  spatial / temporal heads and online profiling, block sparsity, sliding-tile attention, with
  density and FLOP counts.
* Quantisation: fake quantisation, SmoothQuant and SVDQuant (:mod:`~visgen.efficient.quant`),
  SageAttention's smoothed INT8 QKᵀ (:mod:`~visgen.efficient.sage`), and a real INT8 W8A8
  linear layer for CPUs (:mod:`~visgen.efficient.int8`).
* FLOP accounting (:mod:`~visgen.efficient.flops`): compute is counted, never timed, in tests.
"""

from visgen.efficient.cache import BranchState, CachedDenoiser, CacheHook, branch_key
from visgen.efficient.deepcache import DeepCacheConfig, deepcache
from visgen.efficient.flops import attention_flops, flop_counter, flop_table
from visgen.efficient.fora import FORAConfig, fora
from visgen.efficient.int8 import Int8Linear, int8_linears, int8_matmul
from visgen.efficient.pab import PABConfig, pab
from visgen.efficient.quant import (
    FLOAT_BITS,
    QuantLinear,
    block_linears,
    fake_quant,
    outlier_problem,
    quantize_linears,
    relative_error,
    smoothing_factors,
)
from visgen.efficient.sage import key_offset_problem, quantized_scores, sage_attention, smooth_keys
from visgen.efficient.sparse import (
    block_density,
    block_mask,
    density,
    frame_attention,
    masked_attention,
    masked_flops,
    position_major,
    profile_heads,
    profile_video_dit,
    sliding_tile_mask,
    spatial_mask,
    temporal_mask,
    topk_mask,
    video_attention_inputs,
    video_heads_problem,
    video_positions,
)
from visgen.efficient.teacache import (
    MatchedComparison,
    ScheduledCacheConfig,
    TeaCacheConfig,
    TeaCacheFit,
    UniformCacheConfig,
    calibrate_teacache,
    compare_at_matched_skips,
    modulated_input,
    perfect_indicator_schedule,
    relative_l1,
    scheduled_cache,
    teacache,
    threshold_for_skips,
    uniform_cache,
)
from visgen.efficient.teachers import dit_recipe

__all__ = [
    "FLOAT_BITS",
    "BranchState",
    "CacheHook",
    "CachedDenoiser",
    "DeepCacheConfig",
    "FORAConfig",
    "Int8Linear",
    "MatchedComparison",
    "PABConfig",
    "QuantLinear",
    "ScheduledCacheConfig",
    "TeaCacheConfig",
    "TeaCacheFit",
    "UniformCacheConfig",
    "attention_flops",
    "block_density",
    "block_linears",
    "block_mask",
    "branch_key",
    "calibrate_teacache",
    "compare_at_matched_skips",
    "deepcache",
    "density",
    "dit_recipe",
    "fake_quant",
    "flop_counter",
    "flop_table",
    "fora",
    "frame_attention",
    "int8_linears",
    "int8_matmul",
    "key_offset_problem",
    "masked_attention",
    "masked_flops",
    "modulated_input",
    "outlier_problem",
    "pab",
    "perfect_indicator_schedule",
    "position_major",
    "profile_heads",
    "profile_video_dit",
    "quantize_linears",
    "quantized_scores",
    "relative_error",
    "relative_l1",
    "sage_attention",
    "scheduled_cache",
    "sliding_tile_mask",
    "smooth_keys",
    "smoothing_factors",
    "spatial_mask",
    "teacache",
    "temporal_mask",
    "threshold_for_skips",
    "topk_mask",
    "uniform_cache",
    "video_attention_inputs",
    "video_heads_problem",
    "video_positions",
]
