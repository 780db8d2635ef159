r"""One transformer for multi-view and novel-view diffusion: MVDream, Zero-1-to-3 and SEVA/CAT3D
styles, from the blocks of :mod:`visgen.nn.dit`.

Every view is cut into patches (:func:`~visgen.nn.dit.patchify`) and embedded; each DiT block
(adaLN-Zero :class:`~visgen.nn.dit.Stream`, 2D RoPE within a view) is conditioned per view on
c_v = MLP(sin t) + camera embedding. Self-attention is where the views meet:

* **joint ("3D") attention** (MVDream, Shi et al. 2023, arXiv 2308.16512, §3.1): the batch of
  B·V views with N tokens each is regrouped (B·V, N, C) → (B, V·N, C), attention runs over all
  V·N tokens of a sample, and the result is regrouped back for the MLP;
* **per-view attention** (view mixing off, ``cond["joint"]`` False): each view attends to its
  own N tokens only — exactly a single-image model applied to every view. Training samples with
  mixing off play the role of MVDream's 2D images; samples with mixing on, its 3D renders.

How cameras and input views enter (``camera`` × ``inputs``):

=============  ==========================================================================
camera         encoding
=============  ==========================================================================
``extrinsics`` MVDream: the camera-to-world rotation and unit translation (12 numbers) →
               2-layer MLP, added to the time embedding of that view
``relative``   Zero-1-to-3 (Liu et al. 2023, arXiv 2303.11328, §3.2): (Δθ, sin Δφ, cos Δφ,
               Δr) from the input view's camera → MLP, added to the time embedding
``plucker``    SEVA / CAT3D (arXiv 2503.14489, 2405.10314): the per-pixel Plücker map
               (d, c × d) in the first view's camera frame, concatenated to the pixel channels
=============  ==========================================================================

``inputs="concat"`` (Zero-1-to-3): the clean input view is concatenated to the noisy target's
channels; ``inputs="tokens"`` (CAT3D / SEVA): input views are views of the sequence, clean, with
a mask channel = 1 (0 for the views being generated), seen by the targets through joint
attention. The model is called as ``model(x, t, cond)`` with the noisy target views x
(B, V_t, C, H, W) and ``cond = {"cameras": (B, V, 16), "views": (B, V_i, C, H, W),
"joint": (B,) bool}`` (the first V_i of the V cameras belong to the input views; ``views`` only
when ``input_views`` > 0; ``joint`` defaults to True); it returns (B, V_t, C, H, W).

CPU-sized simplifications: pixels instead of latents, no text or CLIP embedding, Zero-1-to-3's
CLIP image embedding left out (the concatenated input view carries the image), SEVA's scene
scale normalisation left out (every camera is at radius 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.nn import MODELS
from visgen.nn.attention import apply_rope, group_mask, rope_2d
from visgen.nn.dit import FinalLayer, Stream, patchify, unpatchify
from visgen.nn.embeddings import ConditionEmbedding
from visgen.threed.cameras import Cameras, zero123_pose

__all__ = ["MultiViewDiT", "camera_features"]

_CAMERA_DIMS = {"extrinsics": 12, "relative": 4, "plucker": 0, "plucker_world": 0}


def camera_features(cams: Cameras, views: int, kind: str) -> torch.Tensor:
    """Per-view camera encodings of B samples × ``views`` cameras (B·V cameras, sample-major).

    ``extrinsics`` (B·V, 12): rotation + unit translation of c2w (MVDream); ``relative`` (B·V, 4):
    Zero-1-to-3's pose from each sample's first camera; ``plucker`` (B·V, 6, H, W): Plücker maps
    in each sample's first camera frame (SEVA).
    """
    check_choice(kind, "camera", tuple(_CAMERA_DIMS))
    if kind == "extrinsics":
        t = cams.centers
        t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return torch.cat([cams.R.reshape(-1, 9), t], -1)
    if kind == "plucker_world":
        return cams.plucker()
    first = cams[torch.arange(0, len(cams), views).repeat_interleave(views)]
    if kind == "relative":
        return zero123_pose(first, cams)
    return cams.relative_to(first).plucker()


class MultiViewDiT(nn.Module):
    """``MultiViewDiT(channels=3, size=16, input_views=0, camera="extrinsics", inputs="tokens",
    patch_size=4, dim=64, depth=4, heads=4, mlp_ratio=4.0)``; see the module docstring."""

    def __init__(
        self,
        channels: int = 3,
        size: int = 16,
        input_views: int = 0,
        camera: str = "extrinsics",
        inputs: str = "tokens",
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        for name, value in (("channels", channels), ("size", size), ("patch_size", patch_size),
                            ("dim", dim), ("depth", depth), ("heads", heads)):  # fmt: skip
            check_positive(value, name, integer=True)
        if not isinstance(input_views, int) or input_views < 0:
            raise ValueError(f"input_views must be a non-negative int, got {input_views!r}")
        check_choice(camera, "camera", tuple(_CAMERA_DIMS))
        check_choice(inputs, "inputs", ("tokens", "concat"))
        if inputs == "concat" and input_views != 1:
            raise ValueError("inputs='concat' (Zero-1-to-3) needs exactly one input view")
        if size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide size {size}")
        if dim % heads or (dim // heads) % 4:
            raise ValueError(
                f"dim/heads must be an int divisible by 4 (2D RoPE), got {dim}/{heads}"
            )
        self.config = {
            "name": "multiview_dit", "channels": channels, "size": size,
            "input_views": input_views, "camera": camera, "inputs": inputs,
            "patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads,
            "mlp_ratio": mlp_ratio,
        }  # fmt: skip
        self.channels, self.size, self.patch_size = channels, size, patch_size
        self.input_views, self.camera, self.inputs = input_views, camera, inputs
        pixel_channels = channels
        if inputs == "concat":
            pixel_channels += channels
        if camera.startswith("plucker"):
            pixel_channels += 6
        if inputs == "tokens" and input_views:
            pixel_channels += 1  # the input mask
        self.embed = nn.Linear(patch_size * patch_size * pixel_channels, dim)
        self.time = ConditionEmbedding(dim)
        cam_dim = _CAMERA_DIMS[camera]
        self.camera_mlp = (
            nn.Sequential(nn.Linear(cam_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            if cam_dim
            else None
        )
        cos, sin = rope_2d(size // patch_size, dim // heads)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(Stream(dim, heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(dim, patch_size * patch_size * channels)
        for module in self.modules():  # DiT's initialisation, then adaLN-Zero
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for module in (*self.blocks, self.final):
            for p in module.ada.parameters():
                nn.init.zeros_(p)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    # --- inputs -----------------------------------------------------------------------------
    def _parse(self, x: torch.Tensor, cond):
        C, S = self.channels, self.size
        if x.dim() != 5 or tuple(x.shape[2:]) != (C, S, S):
            raise ValueError(f"x must have shape (B, V, {C}, {S}, {S}), got {tuple(x.shape)}")
        B, Vt = x.shape[:2]
        if isinstance(cond, torch.Tensor) and not self.input_views:
            cond = {"cameras": cond}
        if not isinstance(cond, dict) or "cameras" not in cond:
            raise ValueError("cond must be a dict with 'cameras' (B, V, 16) (and 'views', 'joint')")
        cams = cond["cameras"]
        V = self.input_views + Vt
        if cams.shape != (B, V, 16):
            raise ValueError(
                f"cond['cameras'] must have shape ({B}, {V}, 16) for {self.input_views} input "
                f"and {Vt} target views, got {tuple(cams.shape)}"
            )
        views = cond.get("views")
        if self.input_views:
            expected = (B, self.input_views, C, S, S)
            if views is None or tuple(views.shape) != expected:
                got = None if views is None else tuple(views.shape)
                raise ValueError(f"cond['views'] must hold the input views {expected}, got {got}")
        joint = cond.get("joint")
        joint = torch.ones(B, dtype=torch.bool) if joint is None else joint.bool().reshape(B)
        return Cameras.from_vector(cams.to(x.dtype), S, S), views, joint

    def _tokens(self, x, cams, views):
        """Pixel inputs of every token view (B, V_tok, C_in, H, W) and their camera features."""
        B, Vt = x.shape[:2]
        Vi = self.input_views
        V = Vi + Vt
        feats = camera_features(cams, V, self.camera)
        if self.camera.startswith("plucker"):
            rays, vec = feats.reshape(B, V, 6, self.size, self.size), None
        else:
            rays, vec = None, feats.reshape(B, V, -1)
        if self.inputs == "concat":
            pixels = torch.cat([x, views.expand(-1, Vt, -1, -1, -1)], 2)
            if rays is not None:
                pixels = torch.cat([pixels, rays[:, Vi:]], 2)
            return pixels, (None if vec is None else vec[:, Vi:])
        pixels = x if not Vi else torch.cat([views, x], 1)
        if rays is not None:
            pixels = torch.cat([pixels, rays], 2)
        if Vi:
            mask = torch.zeros(B, V, 1, self.size, self.size, dtype=x.dtype)
            mask[:, :Vi] = 1.0
            pixels = torch.cat([pixels, mask], 2)
        return pixels, vec

    # --- forward ----------------------------------------------------------------------------
    def _attend(self, stream: Stream, h, c, views: int, joint, mask):
        mod = stream.modulation(c, h)
        q, k, v = stream.qkv_heads(h, mod)
        q, k = (
            apply_rope(q, self.rope_cos, self.rope_sin),
            apply_rope(k, self.rope_cos, self.rope_sin),
        )
        if joint.any():  # MVDream's regrouping: (B·V, N, C) → (B, V·N, C) for self-attention
            q, k, v = (rearrange(a, "(b v) h n d -> b h (v n) d", v=views) for a in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out = rearrange(out, "b h (v n) d -> (b v) h n d", v=views)
        else:  # view mixing off everywhere: plain per-view attention
            out = F.scaled_dot_product_attention(q, k, v)
        return stream.finish(h, out, mod)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        cams, views, joint = self._parse(x, cond)
        B, Vt = x.shape[:2]
        pixels, vec = self._tokens(x, cams, views)
        V = pixels.shape[1]
        h = self.embed(patchify(pixels.flatten(0, 1), self.patch_size))  # (B·V, N, dim)
        c = self.time(t).repeat_interleave(V, 0)
        if vec is not None:
            c = c + self.camera_mlp(vec.flatten(0, 1))
        mask = None
        if joint.any() and not joint.all():  # per-sample: full for joint, block-diagonal else
            n = h.shape[1]
            group = torch.arange(V).repeat_interleave(n)
            diagonal = group_mask(group, group, "diagonal")
            mask = (diagonal[None] | joint[:, None, None])[:, None]
        for stream in self.blocks:
            h = self._attend(stream, h, c, V, joint, mask)
        out = unpatchify(self.final(h, c), self.patch_size, self.channels, self.size)
        return out.reshape(B, V, *out.shape[1:])[:, V - Vt :]


MODELS["multiview_dit"] = MultiViewDiT
