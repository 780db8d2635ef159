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

How cameras enter (``camera``):

==================  =====================================================================
camera              encoding
==================  =====================================================================
``extrinsics``      MVDream: the camera-to-world rotation and unit translation (12 numbers)
                    → 2-layer MLP, added to the time embedding of that view
``relative``        Zero-1-to-3 (Liu et al. 2023, arXiv 2303.11328, §3.2): (Δθ, sin Δφ,
                    cos Δφ, Δr) from the first view's camera → MLP, added likewise
``plucker``         SEVA (arXiv 2503.14489): per-pixel Plücker maps (d, c × d) in the first
                    view's camera frame, concatenated to the pixel channels
``plucker_world``   the same in the world (object) frame, as MVDream's object-centred cameras
==================  =====================================================================

How input (clean, given) views enter (``inputs``):

* ``none``: every view is generated (MVDream).
* ``tokens`` (CAT3D, Gao et al. 2024, arXiv 2405.10314; SEVA): any view of the sequence may be
  given — ``cond["inputs"]`` (B, V) marks them and ``cond["views"]`` (B, V, C, H, W) holds their
  clean content. A given view enters clean, with a mask channel = 1 (0 for views being
  generated), and the network returns it unchanged: the model is an x-predictor (x̂0 of a given
  view is the view), so samplers keep it fixed and losses ignore it.
* ``concat`` (Zero-1-to-3): one input view ``cond["views"]`` (B, 1, C, H, W) is concatenated
  to the channels of every generated view; its camera comes first in ``cond["cameras"]``.

The model is called as ``model(x, t, cond)`` with x (B, V, C, H, W) — the views being
generated (``concat``) or all views (``none``, ``tokens``) — and ``cond = {"cameras": (B, V', 16)
:meth:`~visgen.threed.Cameras.as_vector` rows, "inputs": ..., "views": ..., "joint": (B,)
bool}`` (``joint`` defaults to True; a plain tensor is taken as the cameras). It returns x̂0
(B, V, C, H, W).

CPU-sized simplifications: pixels instead of latents, no text or CLIP embedding (Zero-1-to-3's
CLIP image embedding is left out: the concatenated input view carries the image), SEVA's scene
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
    """``MultiViewDiT(channels=3, size=16, inputs="none", camera="extrinsics", patch_size=4,
    dim=64, depth=4, heads=4, mlp_ratio=4.0)``; see the module docstring."""

    def __init__(
        self,
        channels: int = 3,
        size: int = 16,
        inputs: str = "none",
        camera: str = "extrinsics",
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
        check_choice(camera, "camera", tuple(_CAMERA_DIMS))
        check_choice(inputs, "inputs", ("none", "tokens", "concat"))
        if size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide size {size}")
        if dim % heads or (dim // heads) % 4:
            raise ValueError(
                f"dim/heads must be an int divisible by 4 (2D RoPE), got {dim}/{heads}"
            )
        self.config = {
            "name": "multiview_dit", "channels": channels, "size": size, "inputs": inputs,
            "camera": camera, "patch_size": patch_size, "dim": dim, "depth": depth,
            "heads": heads, "mlp_ratio": mlp_ratio,
        }  # fmt: skip
        self.channels, self.size, self.patch_size = channels, size, patch_size
        self.camera, self.inputs = camera, inputs
        pixel_channels = channels
        if inputs == "concat":
            pixel_channels += channels
        if inputs == "tokens":
            pixel_channels += 1  # the input mask
        if camera.startswith("plucker"):
            pixel_channels += 6
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
        B, V = x.shape[:2]
        if isinstance(cond, torch.Tensor):
            cond = {"cameras": cond}
        if not isinstance(cond, dict) or "cameras" not in cond:
            raise ValueError("cond must be a dict with 'cameras' (B, V, 16) (see the docstring)")
        cams = cond["cameras"]
        n_cams = V + (self.inputs == "concat")
        if cams.shape != (B, n_cams, 16):
            raise ValueError(
                f"cond['cameras'] must have shape ({B}, {n_cams}, 16) for {V} views "
                f"(inputs={self.inputs!r}), got {tuple(cams.shape)}"
            )
        views = cond.get("views")
        mask = None
        if self.inputs == "concat":
            expected = (B, 1, C, S, S)
        elif self.inputs == "tokens":
            expected = (B, V, C, S, S)
            mask = cond.get("inputs")
            mask = torch.zeros(B, V, dtype=torch.bool) if mask is None else mask.bool()
            if mask.shape != (B, V):
                raise ValueError(f"cond['inputs'] must be a (B, V) = ({B}, {V}) mask")
        if self.inputs != "none" and (views is None or tuple(views.shape) != expected):
            got = None if views is None else tuple(views.shape)
            raise ValueError(f"cond['views'] must hold the given views {expected}, got {got}")
        joint = cond.get("joint")
        joint = torch.ones(B, dtype=torch.bool) if joint is None else joint.bool().reshape(B)
        return Cameras.from_vector(cams.to(x.dtype), S, S), views, mask, joint

    def _pixels(self, x, cams, views, mask):
        """Pixel inputs of every view (B, V, C_in, H, W) and the camera vectors (or None)."""
        B, V = x.shape[:2]
        n = len(cams) // B
        feats = camera_features(cams, n, self.camera)
        if self.camera.startswith("plucker"):
            rays = feats.reshape(B, n, 6, self.size, self.size)[:, n - V :]
            vec = None
        else:
            rays, vec = None, feats.reshape(B, n, -1)[:, n - V :]
        pixels = x
        if self.inputs == "concat":
            pixels = torch.cat([x, views.expand(-1, V, -1, -1, -1)], 2)
        elif self.inputs == "tokens":
            given = mask[..., None, None, None]
            pixels = torch.cat(
                [torch.where(given, views, x), given.expand(-1, -1, 1, *x.shape[3:]).to(x.dtype)], 2
            )
        if rays is not None:
            pixels = torch.cat([pixels, rays], 2)
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
        cams, views, mask, joint = self._parse(x, cond)
        B, V = x.shape[:2]
        pixels, vec = self._pixels(x, cams, views, mask)
        h = self.embed(patchify(pixels.flatten(0, 1), self.patch_size))  # (B·V, N, dim)
        c = self.time(t).repeat_interleave(V, 0)
        if vec is not None:
            c = c + self.camera_mlp(vec.flatten(0, 1))
        attn_mask = None
        if joint.any() and not joint.all():  # per sample: full if joint, block-diagonal if not
            n = h.shape[1]
            group = torch.arange(V).repeat_interleave(n)
            diagonal = group_mask(group, group, "diagonal")
            attn_mask = (diagonal[None] | joint[:, None, None])[:, None]
        for stream in self.blocks:
            h = self._attend(stream, h, c, V, joint, attn_mask)
        out = unpatchify(self.final(h, c), self.patch_size, self.channels, self.size)
        out = out.reshape(B, V, *out.shape[1:])
        if mask is not None:  # a given view is its own x̂0
            out = torch.where(mask[..., None, None, None], views, out)
        return out


MODELS["multiview_dit"] = MultiViewDiT
