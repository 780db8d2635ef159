"""Video generation and autoregressive video diffusion (lecture 9).

* :mod:`visgen.video.dit` — the video DiT: full 3D or factorised space–time attention,
  bidirectional or frame-block-causal with frame RoPE, KV and cross-attention caches;
* :mod:`visgen.video.sampling` — chunk-by-chunk generation with the caches, its
  recomputation oracle, token-forward counts and the KV-memory estimate;
* :mod:`visgen.video.forcing` — teacher forcing and diffusion forcing (a training method);
* :mod:`visgen.video.distill` — CausVid and Self-Forcing (video-level DMD);
* :mod:`visgen.video.metrics` — trajectory error against the physics, drift, temporal
  consistency, frame Fréchet distance;
* :mod:`visgen.video.assets` — the trained models as named assets (``visgen.train.asset``).

The data are :mod:`visgen.data.video`.
"""

from visgen.nn import MODELS
from visgen.train.methods import METHODS
from visgen.video.distill import CausVid, SelfForcing
from visgen.video.dit import TextCache, VideoDiT, VideoDiTConfig
from visgen.video.forcing import Forcing

MODELS["video_dit"] = VideoDiT
METHODS.update(forcing=Forcing, self_forcing=SelfForcing, causvid=CausVid)

from visgen.video import assets  # noqa: E402  (registers the assets once the tables know them)

__all__ = ["CausVid", "Forcing", "SelfForcing", "TextCache", "VideoDiT", "VideoDiTConfig", "assets"]
