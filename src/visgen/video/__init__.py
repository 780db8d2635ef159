"""Video generation (lecture 9)."""

from visgen.nn import MODELS
from visgen.train.methods import METHODS
from visgen.video.dit import TextCache, VideoDiT, VideoDiTConfig

__all__ = ["Forcing", "TextCache", "VideoDiT", "VideoDiTConfig"]
from visgen.video.forcing import Forcing

MODELS["video_dit"] = VideoDiT
METHODS["forcing"] = Forcing
