"""Video generation and autoregressive video diffusion (lecture 9).

* :mod:`visgen.video.dit` — the video DiT: full 3D or factorised space–time attention,
  bidirectional or frame-block-causal with frame RoPE, KV and cross-attention caches;
* :mod:`visgen.video.sampling` — chunk-by-chunk generation with the caches, its
  recomputation oracle, token-forward counts and the KV-memory estimate;
* :mod:`visgen.video.forcing` — teacher forcing and diffusion forcing (a training method);
* :mod:`visgen.video.distill` — CausVid and Self-Forcing (video-level DMD);
* :mod:`visgen.video.metrics`, :mod:`visgen.video.evaluation` — trajectory error against the
  physics, drift, temporal consistency, frame Fréchet distance; the drift protocol;
* :mod:`visgen.video.assets` — the trained models as named assets (``visgen.train.asset``).

The data are :mod:`visgen.data.video`. Each module registers its model, methods or assets
itself; the registries import them on demand (:mod:`visgen._registry`).
"""

from visgen.video.distill import CausVid, SelfForcing
from visgen.video.dit import TextCache, VideoDiT, VideoDiTConfig
from visgen.video.forcing import Forcing

__all__ = ["CausVid", "Forcing", "SelfForcing", "TextCache", "VideoDiT", "VideoDiTConfig"]
