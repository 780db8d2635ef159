r"""ControlNet: a trainable copy of a frozen generator's encoder, joined through zero convolutions.

Zhang, Rao & Agrawala 2023 (arXiv 2302.05543, §3.1–3.2, eq. 1–2). A frozen block F(·; Θ) is
joined by a trainable copy F(·; Θ_c) that reads the condition c through a zero-initialised
layer Z(·; Θ_z1), and its output returns through another zero layer Z(·; Θ_z2):

.. math::
    y_c = F(x; Θ) + Z\big(F(x + Z(c; Θ_{z1}); Θ_c); Θ_{z2}\big).

Both Z start at zero, so at initialisation y_c = F(x; Θ) exactly and training starts from the
base model (no harmful noise enters its features); the base's weights never change.

* **U-Net** (:class:`~visgen.nn.UNet`): the copy is the input conv, the encoder and the middle
  block; the condition enters through a small hint encoder (3×3 convs, SiLU, the last one
  zero) added after the copy's input conv; one zero 1×1 conv per skip connection and one for
  the middle block give the residuals the locked U-Net adds to its skips and middle output
  (the repository's ``cldm.py``: 12 + 1 zero convs on Stable Diffusion).
* **DiT** (:class:`~visgen.nn.DiT`), as PixArt-δ does (arXiv 2401.05252, §3): the copy is the
  patch embedding and the first ``blocks`` transformer blocks; the patchified condition enters
  through a zero linear layer added to the copy's tokens, and a zero linear layer after each
  copied block gives the residual added to the base's tokens after the same block.

CPU-scale simplification: the copy reads the frozen base's time, text and position
embeddings instead of training its own copy of them.

:class:`MultiControlNet` applies ControlNets with a **control strength** each (the official
``control_scales``): their residuals are scaled and summed, so two ControlNets trained
separately on the same base compose, and strength 0 is the base exactly. The ``control``
method trains one on (image, condition, caption) triples whose condition is computed from
the image (:func:`~visgen.conditioning.control_map`), dropping the prompt 50 % of the time
as the paper does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.conditioning.base import checksum, frozen, pretrained_weights
from visgen.conditioning.controls import CONTROLS, control_map
from visgen.conditioning.text import JIT
from visgen.config import budget
from visgen.nn import MODELS, DiT, UNet
from visgen.nn.dit import patchify
from visgen.nn.unet import ResBlock
from visgen.train.assets import register_asset
from visgen.train.methods import METHODS, Diffusion

__all__ = [
    "ControlNet",
    "ControlTraining",
    "MultiControlNet",
    "adapter_parameters",
    "controlnet_spec",
]


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


FROZEN = ("base.", "encoder.")  # the parts of an adapter it never trains


def adapter_parameters(model: nn.Module) -> int:
    """Parameters an adapter trains: everything but its frozen ``base`` (and ``encoder``)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(FROZEN))


def _check_cond(cond, channels: int) -> tuple:
    if not isinstance(cond, dict) or set(cond) != {"base", "control"}:
        raise ValueError(
            "cond must be a dict {'base': the base model's condition, 'control': maps (B, C, H, W)}"
        )
    control = cond["control"]
    if not isinstance(control, torch.Tensor) or control.dim() != 4 or control.shape[1] != channels:
        raise ValueError(
            f"cond['control'] must be (B, {channels}, H, W) control maps, "
            f"got {getattr(control, 'shape', control)}"
        )
    return cond["base"], control


class ControlNet(nn.Module):
    """``ControlNet(base, *, base_key=None, blocks=2, hint_channels=1, hint_width=16)``.

    ``base``: an asset name (a DiT or UNet denoiser) or the network itself; ``blocks``: how
    many DiT blocks the copy holds (ignored for a UNet, whose whole encoder is copied).
    Called as ``model(x, t, {"base": cond of the base, "control": (B, hint_channels, H, W)})``.
    """

    def __init__(
        self,
        base,
        *,
        base_key: str | None = None,
        blocks: int = 2,
        hint_channels: int = 1,
        hint_width: int = 16,
    ):
        super().__init__()
        check_positive(hint_channels, "hint_channels", integer=True)
        check_positive(hint_width, "hint_width", integer=True)
        self.base, entry = frozen(base, base_key, (DiT, UNet), "base")
        self.hint_channels = hint_channels
        self.config = {
            "name": "controlnet",
            **entry,
            "blocks": blocks,
            "hint_channels": hint_channels,
            "hint_width": hint_width,
        }
        if isinstance(self.base, DiT):
            self._build_dit(blocks)
        else:
            self._build_unet(hint_width)
        self.requires_grad_(True)
        self.base.requires_grad_(False)
        self._copy_encoder()

    def _copied(self) -> dict[str, nn.Module]:
        """The trainable copy: its module name → the base's module it starts from."""
        if isinstance(self.base, DiT):
            names = {"embed": self.base.embed}
            names.update(
                {f"blocks.{i}": b for i, b in enumerate(self.base.blocks[: len(self.blocks)])}
            )
            return names
        return {name: getattr(self.base, name) for name in ("embed", "inp", "down", "mid")}

    def _copy_encoder(self) -> None:
        for name, source in self._copied().items():
            self.get_submodule(name).load_state_dict(source.state_dict())

    def load_pretrained(self) -> None:
        """Load the trained base asset and copy its encoder again (zero layers stay zero)."""
        if self.config["base"] is not None:
            self.base.load_state_dict(pretrained_weights(self.config["base"]))
            self._copy_encoder()

    def _build_dit(self, blocks: int) -> None:
        cfg = self.base.cfg
        if not isinstance(blocks, int) or not 1 <= blocks <= cfg.depth - 1:
            raise ValueError(f"blocks must be an int in [1, {cfg.depth - 1}], got {blocks!r}")
        p = cfg.patch_size
        self.embed = copy.deepcopy(self.base.embed)
        self.hint = _zero(nn.Linear(p * p * self.hint_channels, cfg.dim))
        self.blocks = copy.deepcopy(self.base.blocks[:blocks])
        self.zero = nn.ModuleList(_zero(nn.Linear(cfg.dim, cfg.dim)) for _ in range(blocks))

    def _build_unet(self, width: int) -> None:
        base = self.base
        self.embed = copy.deepcopy(base.embed)
        self.inp = copy.deepcopy(base.inp)
        self.down = copy.deepcopy(base.down)
        self.mid = copy.deepcopy(base.mid)
        channels = [base.inp.out_channels]
        for layer in base.down:
            conv = layer.block1[-1] if isinstance(layer, ResBlock) else layer
            channels.append(conv.out_channels)
        self.hint = nn.Sequential(
            nn.Conv2d(self.hint_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.SiLU(),
            _zero(nn.Conv2d(width, channels[0], 3, padding=1)),
        )
        self.zero = nn.ModuleList(_zero(nn.Conv2d(c, c, 1)) for c in [*channels, channels[-1]])

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # the base is locked
        return self

    def residuals(self, x: torch.Tensor, t: torch.Tensor, cond, control: torch.Tensor) -> list:
        """The zero layers' outputs: what the base adds to its tokens (DiT) or skips (UNet)."""
        if control.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"control maps must match the image size {tuple(x.shape[-2:])}, "
                f"got {tuple(control.shape[-2:])}"
            )
        if isinstance(self.base, DiT):
            c, text, keep = self.base.condition(t, cond)
            h = self.embed(patchify(x, self.base.cfg.patch_size))
            h = h + self.hint(patchify(control, self.base.cfg.patch_size))
            if self.base.pos is not None:
                h = h + self.base.pos
            out = []
            for block, zero in zip(self.blocks, self.zero):
                h, text = block(h, c, self.base.rope, text, keep)
                out.append(zero(h))
            return out
        emb = self.embed(t, cond)
        h = self.inp(x) + self.hint(control)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        return [zero(s) for zero, s in zip(self.zero, [*hs, h])]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        base_cond, control = _check_cond(cond, self.hint_channels)
        return self.base(x, t, base_cond, control=self.residuals(x, t, base_cond, control))


MODELS["controlnet"] = ControlNet


class MultiControlNet(nn.Module):
    """ControlNets on one base with a strength each: the base plus Σ_k s_k · residuals_k.

    ``cond`` = {"base": ..., "control": (B, Σ_k hint_channels_k, H, W)}: the maps of the
    nets, concatenated on the channel axis in the order of ``nets``. Strength 0 for every net
    is the base exactly (its residuals are multiplied by 0 and added).
    """

    def __init__(self, nets, strengths):
        super().__init__()
        nets, strengths = list(nets), [float(s) for s in strengths]
        if not nets or not all(isinstance(n, ControlNet) for n in nets):
            raise TypeError("nets must be a non-empty list of ControlNets")
        if len(strengths) != len(nets):
            raise ValueError(f"strengths must hold {len(nets)} numbers, got {len(strengths)}")
        digest = checksum(nets[0].base)
        if any(checksum(n.base) != digest for n in nets[1:]):
            raise ValueError("ControlNets compose only around the same base (weights differ)")
        self.nets, self.strengths = nn.ModuleList(nets), strengths
        self.base = nets[0].base

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        channels = sum(n.hint_channels for n in self.nets)
        base_cond, control = _check_cond(cond, channels)
        total = None
        for net, s, c in zip(
            self.nets, self.strengths, control.split([n.hint_channels for n in self.nets], 1)
        ):
            res = [s * r for r in net.residuals(x, t, base_cond, c)]
            total = res if total is None else [a + b for a, b in zip(total, res)]
        return self.base(x, t, base_cond, control=total)


class ControlTraining(Diffusion):
    """The ``control`` method: flow matching of a ControlNet on (x0, control_map(x0), prompt).

    ``control`` names the map (:data:`~visgen.conditioning.CONTROLS`); ``label_dropout`` (the
    prompt dropout, 0.5 by default as in the paper) replaces the base condition by the null
    condition while the control map stays. Other options as the ``fm`` method.
    """

    def __init__(self, control: str = "mask", label_dropout: float = 0.5, **options):
        options.pop("name", None)
        super().__init__("fm", label_dropout=label_dropout, **options)
        self.control = check_choice(control, "control", CONTROLS)
        self.spec = {**self.spec, "name": "control", "control": control}

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        out = super().draw(batch, generator)
        out["cond"] = {"base": out.get("cond"), "control": control_map(batch["x0"], self.control)}
        return out


METHODS["control"] = ControlTraining


# --- standard assets ----------------------------------------------------------------------


def controlnet_spec(
    base: str, control: str, steps: int, *, seed: int = 0, batch_size: int = 64, lr: float = 2e-3
):
    """Training spec of a ControlNet on ``base`` (an asset name) for the map ``control``."""
    check_choice(control, "control", CONTROLS)
    return {
        "model": {"name": "controlnet", "base": base, "blocks": 2},
        "method": {"name": "control", "control": control, **JIT},
        "data": "shapes16_captions" if base.startswith("text_dit") else "shapes16",
        "labels": True,
        "train": {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "warmup": 20,
            "ema_decay": 0.99,
            "seed": seed,
        },
    }


def _unet_shapes16() -> dict:
    return {
        "model": {
            "name": "unet", "in_channels": 3, "size": 16, "channels": 8, "mults": [1, 2],
            "num_classes": 12,
        },
        "method": {"name": "fm", **JIT, "label_dropout": 0.1},
        "data": "shapes16",
        "train": {"steps": budget(full=600, fast=300), "batch_size": 32, "lr": 3e-3, "warmup": 50},
    }  # fmt: skip


register_asset("unet_shapes16", _unet_shapes16)
# Steps per map (batch 64, lr 4e-3). The mask net's IoU first passes 0.5 at step 75 (the
# "sudden convergence"; step 100 at lr 2e-3); the authors advise training on well past it. At
# lr 2e-3 the mask net needed 200 steps (150 left IoU at 0.58-0.61 over seeds 0-2, 200 gave
# 0.67-0.71); at lr 4e-3, 150 steps give 0.70-0.73, the edges net 0.54-0.55 (200 at 2e-3:
# 0.51-0.53) and the heatmap net at 75 steps 0.39-0.43 (100 at 2e-3: 0.40-0.42), for three
# quarters of the CPU time (N = 100; BENCHMARKS.md, "Lecture 11").
_STEPS = {"mask": 150, "edges": 150, "heatmap": 75}
for _control, _steps in _STEPS.items():
    register_asset(
        f"controlnet_dit_{_control}",
        lambda control=_control, steps=_steps: controlnet_spec(
            "text_dit_cross", control, steps, lr=4e-3
        ),
    )
register_asset(
    "controlnet_unet_edges", lambda: controlnet_spec("unet_shapes16", "edges", 300, batch_size=32)
)
