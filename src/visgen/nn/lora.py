r"""LoRA: low-rank adapters on the linear and convolutional layers of a frozen network.

Hu et al. 2021 (arXiv 2106.09685, eq. 3): a frozen weight W₀ (out × in) is adapted as

.. math:: W = W_0 + \frac{α}{r} B A, \qquad A ∈ ℝ^{r×in},\ B ∈ ℝ^{out×r},

with A Gaussian (here Kaiming-uniform, as the paper's reference code) and **B = 0**, so the
wrapped network computes exactly what the base network computes until B is trained; only
A and B (r (in + out) numbers per layer instead of in · out) receive gradients. For a
convolution the same holds with A a convolution of the base kernel size to r channels and
B a 1×1 convolution back to the output channels (the product is again a kernel of the base
shape). :meth:`LoRALinear.merge` folds (α/r) B A into W₀ for inference at the base cost and
:meth:`LoRALinear.unmerge` takes it out again.

Consistency distillation of Stable Diffusion in homework 4 trains a rank-64 LoRA on the
U-Net; the course's toy students are small enough to train in full, so homework 4 uses
:func:`add_lora` on the student's linear layers with a small rank to show the mechanics.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visgen._checks import check_positive

__all__ = ["LoRAConv2d", "LoRALinear", "add_lora", "lora_parameters", "merge_lora"]


class _LoRA(nn.Module):
    """What LoRALinear and LoRAConv2d share: the frozen base, A, B, the scale α/r, merging
    (each subclass builds ``lora_a``, ``lora_b`` and its ``delta_weight()`` = (α/r) B A)."""

    def __init__(self, base: nn.Module, rank: int, alpha: float | None):
        super().__init__()
        check_positive(rank, "rank", integer=True)
        alpha = float(rank if alpha is None else alpha)
        check_positive(alpha, "alpha")
        self.base = base.requires_grad_(False)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        self.merged = False

    def _init(self) -> None:
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scale * self.lora_b(self.lora_a(x))

    @torch.no_grad()
    def merge(self) -> None:
        """W₀ ← W₀ + (α/r) B A: one layer of the base cost (a no-op when merged)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W₀ ← W₀ − (α/r) B A, undoing :meth:`merge` (a no-op when not merged)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


class LoRALinear(_LoRA):
    """``LoRALinear(base, rank, alpha=rank)``: base(x) + (α/r) B(A(x)) for an ``nn.Linear`` base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        super().__init__(base, rank, alpha)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_a = nn.Linear(base.in_features, rank, bias=False, **kw)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False, **kw)
        self._init()

    def delta_weight(self) -> torch.Tensor:
        """(α/r) B A, shaped like the base weight."""
        return self.scale * self.lora_b.weight @ self.lora_a.weight


class LoRAConv2d(_LoRA):
    """``LoRAConv2d(base, rank, alpha=rank)``: A = conv with the base's kernel, stride, padding
    and dilation to r channels, B = 1×1 conv back; for an ``nn.Conv2d`` base with groups = 1."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float | None = None):
        if not isinstance(base, nn.Conv2d):
            raise TypeError(f"base must be an nn.Conv2d, got {type(base).__name__}")
        if base.groups != 1:
            raise ValueError(f"LoRAConv2d needs groups = 1, got {base.groups}")
        super().__init__(base, rank, alpha)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_a = nn.Conv2d(
            base.in_channels,
            rank,
            base.kernel_size,
            base.stride,
            base.padding,
            base.dilation,
            bias=False,
            padding_mode=base.padding_mode,
            **kw,
        )
        self.lora_b = nn.Conv2d(rank, base.out_channels, 1, bias=False, **kw)
        self._init()

    def delta_weight(self) -> torch.Tensor:
        """(α/r) B A as a kernel of the base shape."""
        a = self.lora_a.weight.flatten(1)  # (r, in · kh · kw)
        b = self.lora_b.weight.flatten(1)  # (out, r)
        return self.scale * (b @ a).reshape(self.base.weight.shape)


def add_lora(model: nn.Module, rank: int, alpha: float | None = None, *, include=None) -> list[str]:
    """Freeze ``model`` and wrap its ``nn.Linear`` / ``nn.Conv2d`` layers in LoRA (in place).

    ``include(name, module) -> bool`` chooses the layers (default: every linear layer and
    every convolution with groups = 1). Returns the wrapped layers' names. Parameters added
    to ``model`` afterwards, or set trainable again by the caller, train as usual.
    """
    if include is not None and not callable(include):
        raise TypeError(f"include must be callable as include(name, module), got {include!r}")
    model.requires_grad_(False)
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if (isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1))
        and name  # the model itself: wrap a single layer with LoRALinear / LoRAConv2d
        and not isinstance(module, _LoRA)
        and "lora_" not in name
        and (include is None or include(name, module))
    ]
    for name, module in chosen:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        wrapper = LoRALinear if isinstance(module, nn.Linear) else LoRAConv2d
        setattr(parent, attr, wrapper(module, rank, alpha))
    if not chosen:
        raise ValueError("add_lora found no nn.Linear or nn.Conv2d layer to wrap")
    return [name for name, _ in chosen]


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every LoRA layer of ``model``."""
    return [
        p
        for m in model.modules()
        if isinstance(m, _LoRA)
        for p in (m.lora_a.weight, m.lora_b.weight)
    ]


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer of ``model`` into its base weight; returns how many."""
    layers = [m for m in model.modules() if isinstance(m, _LoRA)]
    for m in layers:
        m.merge()
    return len(layers)
