r"""Post-training quantisation by fake quantisation: integer grids, SmoothQuant and SVDQuant.

**Fake quantisation.** Symmetric b-bit integers with q_max = 2^{b−1} − 1 and one scale per
set S of values (the whole tensor, a row, or a group of consecutive values):

.. math::
    s_S = \max_{i∈S} |x_i| / q_{max}, \qquad
    Q(x_i) = s_S · \mathrm{clamp}(\mathrm{round}(x_i / s_S), −q_{max}, q_{max}),

so |Q(x) − x| ≤ s/2, and Q is idempotent. ``granularity`` ``tensor``; ``channel`` = one scale
per row of the last axis (per *output channel* of a weight (out, in), per *token* of
activations (…, in) — the two that an integer matmul can rescale after accumulating);
``group`` = ``group_size`` consecutive values along the last axis (SVDQuant's INT4 uses 64).
Computing in floating point on the integer grid gives exactly what integer hardware gives up
to the accumulation's rounding (:mod:`visgen.efficient.int8` runs the real thing).

**Bit widths.** Integer formats have 2–8 bits. **16 bits means the floating-point format the
model runs in, not an integer grid** — the papers' notation: W4A16 keeps activations in
16-bit floats, the "16-bit low-rank branch" of SVDQuant is unquantised. So W16A16 *is* the
plain model and :class:`QuantLinear` at 16/16 bits (no smoothing, rank 0) computes exactly
``F.linear(x, W, b)``, bit for bit. (An integer grid of 16 bits would not be exact: 2¹⁵ − 1
levels cannot hold a 24-bit float mantissa.)

**SmoothQuant** (Xiao et al. 2023, arXiv 2211.10438, eq. 4): activation outliers sit in a few
input channels j; dividing them out, :math:`Y = (X \mathrm{diag}(s)^{−1})(\mathrm{diag}(s) W^⊤)`
with :math:`s_j = \max|X_j|^α / \max|W_{:,j}|^{1−α}` moves the difficulty into the weights,
which quantise better per output channel. **SVDQuant** (Li et al. 2024, arXiv 2411.05007,
§4, eq. 5–7): after smoothing, keep a rank-r part L = U_r Σ_r V_rᵀ of the weight in 16 bits
(the SVD absorbs the outliers smoothing moved into W) and quantise only the residual R = W − L
and the smoothed activations to 4 bits: :math:`Y ≈ \hat X L^⊤ + Q(\hat X) Q(R)^⊤`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from visgen._checks import check_choice, check_positive, check_tensor

__all__ = [
    "FLOAT_BITS",
    "GRANULARITIES",
    "QuantLinear",
    "block_linears",
    "fake_quant",
    "outlier_problem",
    "quantize_linears",
    "relative_error",
    "smoothing_factors",
]

FLOAT_BITS = 16
GRANULARITIES = ("tensor", "channel", "group")


def _check_bits(bits, name: str = "bits") -> int:
    if not isinstance(bits, int) or not (2 <= bits <= 8 or bits == FLOAT_BITS):
        raise ValueError(
            f"{name} must be an integer format of 2..8 bits or {FLOAT_BITS} (floating point, "
            f"not quantised), got {bits!r}"
        )
    return bits


def fake_quant(
    x: torch.Tensor, bits: int, granularity: str = "tensor", group_size: int = 64
) -> torch.Tensor:
    """Symmetric ``bits``-bit fake quantisation of x (see the module docstring); 16 bits
    returns x itself."""
    check_tensor(x, "x")
    _check_bits(bits)
    check_choice(granularity, "granularity", GRANULARITIES)
    if bits == FLOAT_BITS:
        return x
    qmax = 2 ** (bits - 1) - 1
    shape = x.shape
    if granularity == "tensor":
        v = x.reshape(1, -1)
    elif granularity == "channel":
        v = x.reshape(-1, shape[-1])
    else:
        check_positive(group_size, "group_size", integer=True)
        if shape[-1] % group_size:
            raise ValueError(f"group_size {group_size} must divide the last axis {shape[-1]}")
        v = x.reshape(-1, group_size)
    scale = v.abs().amax(1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero set stays 0
    return (torch.round(v / scale).clamp(-qmax, qmax) * scale).reshape(shape)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """‖approx − exact‖_F / ‖exact‖_F."""
    return float((approx - exact).detach().norm() / exact.detach().norm())


def smoothing_factors(act_max: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5):
    """SmoothQuant's per-input-channel factors s_j = max|X_j|^α / max|W_{:,j}|^{1−α}.

    ``act_max`` (in,) holds max |X_j| over calibration data, ``weight`` is (out, in).
    Channels that never fire (or dead weight columns) keep s = 1.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    w_max = weight.abs().amax(0)
    if act_max.shape != w_max.shape:
        raise ValueError(
            f"act_max must have shape {tuple(w_max.shape)}, got {tuple(act_max.shape)}"
        )
    s = act_max.clamp_min(1e-5) ** alpha / w_max.clamp_min(1e-5) ** (1 - alpha)
    return torch.where((act_max > 0) & (w_max > 0), s, torch.ones_like(s))


class QuantLinear(nn.Module):
    r"""A linear layer computed on fake-quantised operands:
    :math:`y = Q_a(x/s)\,Q_w(R)^⊤ + (x/s)\,L^⊤ + b` with R = W diag(s) − L.

    Args:
        linear: the float layer (its weight and bias are copied).
        w_bits, a_bits: weight / activation bits (2..8, or 16 = kept in floating point).
        w_granularity, a_granularity, group_size: as in :func:`fake_quant` (weights
            default per output channel, activations per token).
        smooth: SmoothQuant factors s (in,) or None (s = 1).
        rank: r of SVDQuant's low-rank branch L (kept in floating point), 0 = none.
    """

    def __init__(
        self,
        linear: nn.Linear,
        *,
        w_bits: int = 8,
        a_bits: int = 8,
        w_granularity: str = "channel",
        a_granularity: str = "channel",
        group_size: int = 64,
        smooth: torch.Tensor | None = None,
        rank: int = 0,
    ):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        self.w_bits, self.a_bits = _check_bits(w_bits, "w_bits"), _check_bits(a_bits, "a_bits")
        self.a_granularity = check_choice(a_granularity, "a_granularity", GRANULARITIES)
        self.group_size = group_size
        if not isinstance(rank, int) or not 0 <= rank <= min(linear.weight.shape):
            raise ValueError(
                f"rank must be an int in [0, {min(linear.weight.shape)}], got {rank!r}"
            )
        w = linear.weight.detach()
        if smooth is not None:
            smooth = smooth.detach()
            if smooth.shape != (linear.in_features,) or not bool((smooth > 0).all()):
                raise ValueError(f"smooth must hold {linear.in_features} positive factors")
            w = w * smooth
        self.register_buffer("smooth", None if smooth is None else smooth.clone())
        self.register_buffer("down", None)  # low-rank branch: x ↦ (x V_r Σ_r) U_rᵀ
        self.register_buffer("up", None)
        if rank:
            u, sigma, vh = torch.linalg.svd(w.double(), full_matrices=False)
            self.down = (vh[:rank].T * sigma[:rank]).to(w.dtype)  # (in, r)
            self.up = u[:, :rank].T.contiguous().to(w.dtype)  # (r, out)
            w = w - self.down.double().mm(self.up.double()).T.to(w.dtype)
        self.register_buffer("weight", fake_quant(w, w_bits, w_granularity, group_size))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None:
            x = x / self.smooth
        y = F.linear(fake_quant(x, self.a_bits, self.a_granularity, self.group_size),
                     self.weight, self.bias)  # fmt: skip
        if self.down is not None:
            y = y + (x @ self.down) @ self.up
        return y


def block_linears(name: str, module: nn.Module) -> bool:
    """The default layer selection: the attention and MLP maps inside a DiT's blocks; the
    adaLN maps, the patch embedding and the output layer stay in floating point (quantised
    DiTs keep their first and last layers and the tiny conditioning maps in 16 bits)."""
    return ".image." in name and ".ada" not in name


@torch.no_grad()
def quantize_linears(
    model: nn.Module,
    calibrate: Callable[[nn.Module], object] | None = None,
    *,
    alpha: float | None = None,
    include: Callable[[str, nn.Module], bool] = block_linears,
    **options,
) -> nn.Module:
    """A copy of ``model`` whose selected ``nn.Linear`` layers are :class:`QuantLinear`.

    ``options`` go to :class:`QuantLinear` (bits, granularities, rank). With ``alpha`` the
    layers are smoothed (SmoothQuant): ``calibrate(model)`` runs the float model on
    calibration inputs while forward hooks record each layer's per-channel max |x|.
    ``include(name, module)`` picks the layers (default: a DiT's attention and MLP maps).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and include(n, m)]
    if not names:
        raise ValueError("include selects no nn.Linear layer of the model")
    act_max = {}
    if alpha is not None:
        if calibrate is None:
            raise ValueError("smoothing (alpha) needs calibrate(model) to measure activations")

        def record(name):
            def hook(module, inputs, output):
                m = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
                act_max[name] = torch.maximum(act_max.get(name, m), m)

            return hook

        modules = dict(model.named_modules())
        hooks = [modules[n].register_forward_hook(record(n)) for n in names]
        try:
            calibrate(model)
        finally:
            for h in hooks:
                h.remove()
    quantized = copy.deepcopy(model)
    modules = dict(quantized.named_modules())
    for name in names:
        parent, _, child = name.rpartition(".")
        layer = modules[name]
        smooth = None
        if alpha is not None:
            smooth = smoothing_factors(act_max[name], layer.weight, alpha)
        setattr(modules[parent] if parent else quantized, child,
                QuantLinear(layer, smooth=smooth, **options))  # fmt: skip
    return quantized


def outlier_problem(
    tokens: int = 1024,
    features: int = 256,
    outputs: int = 256,
    *,
    outlier_channels: float = 0.01,
    act_scale: float = 20.0,
    weight_outliers: float = 0.001,
    weight_scale: float = 10.0,
    generator: torch.Generator | None = None,
):
    """A linear layer with the outliers of real diffusion transformers (SVDQuant §3, Fig. 3):
    X (tokens, features) with ``outlier_channels`` of its input channels ``act_scale`` ×
    larger, and W (outputs, features) with ``weight_outliers`` of its entries
    ``weight_scale`` × larger. Returns (X, layer)."""
    x = torch.randn(tokens, features, generator=generator)
    hot = torch.randperm(features, generator=generator)[
        : max(1, round(outlier_channels * features))
    ]
    x[:, hot] *= act_scale
    layer = nn.Linear(features, outputs)
    with torch.no_grad():
        w = torch.randn(outputs, features, generator=generator) / features**0.5
        mask = torch.rand(outputs, features, generator=generator) < weight_outliers
        layer.weight.copy_(torch.where(mask, w * weight_scale, w))
        layer.bias.zero_()
    return x, layer
