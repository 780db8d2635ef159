"""Lecture 11: conditioning generators on text, control maps and image prompts.

* :mod:`~visgen.conditioning.controls`: control maps (mask, edges, heatmap), IoU and the exact
  attribute reader of generated shapes;
* :mod:`~visgen.conditioning.clip`: a tiny CLIP (contrastive caption and image encoders) and
  the caption–image score;
* :mod:`~visgen.conditioning.text`: one DiT reading captions by pooled adaLN, cross-attention
  or MMDiT joint attention; classifier-free guidance on text with negative prompts;
* :mod:`~visgen.conditioning.controlnet`: ControlNet for the U-Net and the DiT, control
  strength, composition;
* :mod:`~visgen.conditioning.ip_adapter`: IP-Adapter's decoupled cross-attention;
* :mod:`~visgen.conditioning.transfusion`: one transformer that captions and draws.

The trained models are assets of the training cache (``clip_shapes16``, ``text_dit_<mode>``,
``controlnet_*``, ``ip_adapter_shapes16``, ``transfusion_shapes16``; :mod:`.assets`).
"""

from visgen.conditioning.base import checksum
from visgen.conditioning.clip import (
    Contrastive,
    ImageEncoder,
    TinyCLIP,
    clip_attribute_accuracy,
    clip_score,
    tiny_clip,
)
from visgen.conditioning.controlnet import (
    ControlNet,
    ControlTraining,
    MultiControlNet,
    adapter_parameters,
)
from visgen.conditioning.controls import (
    CONTROLS,
    attribute_accuracy,
    control_map,
    iou,
    read_attributes,
    shape_mask,
)
from visgen.conditioning.ip_adapter import ImagePromptTraining, IPAdapter, null_images
from visgen.conditioning.text import JIT, TEXT_DIT, forward_flops, text_dit_spec, text_guidance
from visgen.conditioning.transfusion import Transfusion, TransfusionTraining

__all__ = [
    "CONTROLS",
    "JIT",
    "TEXT_DIT",
    "Contrastive",
    "ControlNet",
    "ControlTraining",
    "IPAdapter",
    "ImageEncoder",
    "ImagePromptTraining",
    "MultiControlNet",
    "TinyCLIP",
    "Transfusion",
    "TransfusionTraining",
    "adapter_parameters",
    "attribute_accuracy",
    "checksum",
    "clip_attribute_accuracy",
    "clip_score",
    "control_map",
    "forward_flops",
    "iou",
    "null_images",
    "read_attributes",
    "shape_mask",
    "text_dit_spec",
    "text_guidance",
    "tiny_clip",
]
