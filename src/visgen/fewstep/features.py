r"""Features of a diffusion network taken by forward hooks, and discriminator heads on them.

ADD/LADD, DMD2's GAN term and MMD distillation read the activations of a diffusion network at
a noised input x_t (LADD: arXiv 2403.12015, §3, heads on the teacher's own features; homework
5 hooks the U-Net mid-block). :class:`FeatureTap` registers forward hooks on chosen layers,
runs the network once and returns what those layers saw, so the network code stays
untouched. Default layers (:func:`default_feature_layers`): every hidden vector of an
:class:`~visgen.nn.MLP` (the inputs of its layers 2…depth and of its output layer, each
(B, width)) and the output of a :class:`~visgen.nn.UNet`'s middle block ((B, C, h, w): h·w
spatial "patches").

:class:`Discriminator` puts one small head on each tapped layer and averages their logits:
an MLP on vectors, 1×1 convolutions averaged over positions on feature maps (LADD's
token-wise heads), plus a projection term ⟨e_y, φ⟩ for class labels (Miyato & Koyama 2018,
arXiv 1802.05637).
"""

from __future__ import annotations

import torch
from torch import nn

from visgen.nn import MLP, UNet

__all__ = ["Discriminator", "FeatureTap", "default_feature_layers", "multi_level_layers"]


def default_feature_layers(net: nn.Module) -> list[tuple[str, bool]]:
    """[(layer name, read its input?)] of the default feature layers of a visgen network."""
    if isinstance(net, MLP):
        return [(f"layers.{i}", True) for i in range(1, len(net.layers))] + [("out", True)]
    if isinstance(net, UNet):
        return [(f"mid.{len(net.mid) - 1}", False)]
    raise TypeError(
        f"no default feature layers for {type(net).__name__}; pass layers=[(name, inputs), ...]"
    )


def multi_level_layers(net: nn.Module) -> list[tuple[str, bool]]:
    """Feature layers at every level of a network, for LADD's multi-level heads.

    LADD (arXiv 2403.12015, §3) puts a head on the features of several teacher blocks, not
    only the last one. For a :class:`~visgen.nn.UNet`: the output of the last residual block
    of every encoder resolution and of the middle block (for ``fm_digits_unet``: 8×8×16,
    4×4×32, 4×4×32); the decoder is never run. An MLP's default layers are already one per
    hidden layer.
    """
    if not isinstance(net, UNet):
        return default_feature_layers(net)
    ends = [i - 1 for i, layer in enumerate(net.down) if isinstance(layer, nn.Conv2d)]
    ends.append(len(net.down) - 1)  # a downsampling conv closes each level but the last
    return [(f"down.{i}", False) for i in ends] + default_feature_layers(net)


class _Seen(Exception):
    """Raised by the last tap hook: the rest of the network's pass is not needed."""


class FeatureTap:
    """``tap(x, t, cond) -> [features per layer]``: one pass of ``net`` with forward hooks.

    ``layers`` lists (module name, inputs?) pairs: ``inputs=True`` keeps what the module
    received, else what it returned. Gradients flow through the tap (ADD/LADD/MMD train the
    generator through frozen features). The pass stops as soon as every tapped layer has been
    seen (each feature is its layer's first call): what follows — the output layer of an MLP,
    a U-Net's whole decoder — would be computed only to be thrown away. The features are the
    same as a full pass's, bit for bit; only modules that run after the last tapped layer are
    skipped (measured on L07's students: see BENCHMARKS.md, tour cost).
    """

    def __init__(self, net: nn.Module, layers=None):
        layers = default_feature_layers(net) if layers is None else list(layers)
        modules = dict(net.named_modules())
        for name, _ in layers:
            if name not in modules:
                raise ValueError(
                    f"net has no layer {name!r}; layers: {', '.join(list(modules)[1:])}"
                )
        self.net, self.layers = net, [(modules[name], bool(inp)) for name, inp in layers]

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> list[torch.Tensor]:
        seen: list[list[torch.Tensor]] = [[] for _ in self.layers]

        def keep(box: list[torch.Tensor], value: torch.Tensor) -> None:
            box.append(value)
            if all(seen):
                raise _Seen

        handles = []
        for (module, inputs), box in zip(self.layers, seen):
            if inputs:
                handles.append(module.register_forward_pre_hook(lambda m, a, b=box: keep(b, a[0])))
            else:
                handles.append(module.register_forward_hook(lambda m, a, o, b=box: keep(b, o)))
        try:
            self.net(x, t, cond)
        except _Seen:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, box in enumerate(seen) if not box]
        if missing:
            raise RuntimeError(f"the tapped layers {missing} did not run in the network's pass")
        return [box[0] for box in seen]


def _project(embed: nn.Embedding | None, labels, h: torch.Tensor) -> torch.Tensor:
    """⟨e_y, h⟩ per sample (0 where there is no embedding, no label or the null label −1)."""
    if embed is None or labels is None:
        return torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
    labels = torch.as_tensor(labels, device=h.device)
    proj = (embed(labels.clamp_min(0)) * h).sum(1)
    return torch.where(labels >= 0, proj, torch.zeros_like(proj))


class _Head(nn.Module):
    def __init__(self, channels: int, spatial: bool, num_classes: int, num_levels: int, width: int):
        super().__init__()
        layer = nn.Conv2d(channels, width, 1) if spatial else nn.Linear(channels, width)
        self.body, self.spatial = nn.Sequential(layer, nn.SiLU()), spatial
        self.logit = nn.Linear(width, 1)
        self.classes = nn.Embedding(num_classes, width) if num_classes else None
        self.levels = nn.Embedding(num_levels, width) if num_levels else None

    def forward(self, features: torch.Tensor, cond=None, level=None) -> torch.Tensor:
        h = self.body(features)
        if self.spatial:
            h = h.mean((2, 3))
        out = self.logit(h).squeeze(1)
        return out + _project(self.classes, cond, h) + _project(self.levels, level, h)


class Discriminator(nn.Module):
    """Trainable heads on the features of a (frozen) network: ``D(x_t, t, cond, level) -> (B,)``.

    Built from one probe batch so each head matches its layer's shape (vector or map).
    ``num_levels`` > 0 adds a projection on the index of the generator level a sample is
    compared at (real samples get the level of the fakes they are compared with), so each
    level is judged against the data on its own: at toy scale single samples do not look
    fake, only their distribution does, and an unconditional D can be fooled by levels whose
    errors cancel in the mixture.
    """

    def __init__(
        self,
        tap: FeatureTap,
        probe: torch.Tensor,
        num_classes: int = 0,
        num_levels: int = 0,
        width: int = 128,
    ):
        super().__init__()
        self.tap = tap
        with torch.no_grad():
            feats = tap(probe, torch.full((probe.shape[0],), 0.5, dtype=probe.dtype))
        self.heads = nn.ModuleList(
            _Head(f.shape[1], f.dim() == 4, num_classes, num_levels, width) for f in feats
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None, level=None) -> torch.Tensor:
        feats = self.tap(x, t, cond)
        return torch.stack([head(f, cond, level) for head, f in zip(self.heads, feats)]).mean(0)
