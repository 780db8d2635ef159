r"""A real INT8 linear layer for CPUs: W8A8 with dynamic per-token activation scales, eager
PyTorch, no compiler and no extra dependency.

.. math::
    y = \big(\hat X \hat W^⊤\big) ⊙ (s_X s_W^⊤) + b, \qquad
    \hat X = \mathrm{round}(X / s_X),\ s_X = \max_j |X_{ij}| / 127 \text{ (per token)}, \quad
    \hat W = \mathrm{round}(W / s_W),\ s_W = \max_j |W_{oj}| / 127 \text{ (per output channel)},

the integer product accumulated exactly in int32 by ``torch._int_mm`` (oneDNN's VNNI kernel
on x86: ≈ 400 GOP/s on one core of the course machine against ≈ 60–90 GFLOP/s for the fp32
matmul). Numerically it is the fake-quantised W8A8 layer of :mod:`visgen.efficient.quant`
(per-channel weights, per-token activations), up to float rounding in the rescale.

**Why a naive wrapper is slower than fp32** (measured 0.73× during development): the quantise and
rescale passes allocate fresh tensors of the layer's size on every call — on this machine the
fresh pages cost more than the arithmetic (the fp32 layer pays that once, for its output; a
naive W8A8 layer pays it for |X|, X/s, the int8 copy, the int32 product and its float copy),
and mixed-dtype element-wise ops (int32 × float) take a slow casting path. This layer keeps
one workspace per layer for every intermediate (``out=`` and in-place ops), converts int32 →
float with one vectorised copy and folds the two rescales and the bias into an in-place
multiply and one ``addcmul``; only the output is allocated, as for ``nn.Linear``.

**Why this path** (torch 2.13): ``torch.ao.quantization.quantize_dynamic`` is
deprecated ("will be removed in 2.10"); torchao's INT8 is fast only under ``torch.compile``
(minutes of compilation per shape) and is an extra dependency; ``torch._int_mm`` is the
matmul torchao's own eager fallback calls, so it is the piece most likely to stay. If it is
missing or refuses a shape, the same integers are multiplied in float32 — exact while every
partial sum stays below 2²⁴ (in-features ≤ 1040), so the fallback gives the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from visgen.efficient.quant import block_linears

__all__ = ["Int8Linear", "int8_linears", "int8_matmul"]

_QMAX = 127


def int8_matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """int8 (m, k) @ int8 (k, n) → int32 (m, n), exact: ``torch._int_mm`` where available,
    else a float32 product of the integers (exact for k ≤ 1040)."""
    if a.dtype != torch.int8 or b.dtype != torch.int8:
        raise TypeError(f"a and b must be int8 tensors, got {a.dtype} and {b.dtype}")
    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is not None:
        try:
            return int_mm(a, b) if out is None else int_mm(a, b, out=out)
        except (RuntimeError, NotImplementedError):
            pass
    if a.shape[1] * _QMAX**2 >= 2**24:
        raise ValueError(f"the float fallback is exact only for k <= 1040, got k = {a.shape[1]}")
    product = a.float() @ b.float()
    return product.to(torch.int32) if out is None else out.copy_(product)


class Int8Linear(nn.Module):
    """An ``nn.Linear`` replaced by the INT8 W8A8 computation of the module docstring.

    The weight is quantised once (int8, stored transposed for the matmul); activations are
    quantised per token at every call. Inputs (…, in) of any leading shape.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach().float()
        scale = w.abs().amax(1) / _QMAX
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(w / scale[:, None]).clamp(-_QMAX, _QMAX).to(torch.int8)
        self.register_buffer("weight_t", q.T.contiguous())  # (in, out)
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(len(w))
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._workspace: tuple = ()

    def _buffers_for(self, rows: int):
        if not self._workspace or self._workspace[0].shape[0] != rows:
            k, n = self.in_features, self.out_features
            self._workspace = (
                torch.empty(rows, k),  # |x|, then x / s
                torch.empty(rows, k, dtype=torch.int8),
                torch.empty(rows, n, dtype=torch.int32),
                torch.empty(rows, n),
            )
        return self._workspace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            raise TypeError(f"Int8Linear takes float32 inputs, got {x.dtype}")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must end with {self.in_features} features, got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        scaled, q, acc, acc_f = self._buffers_for(x.shape[0])
        amax = torch.abs(x, out=scaled).amax(1, keepdim=True)
        amax = torch.where(amax > 0, amax, torch.ones_like(amax))
        torch.mul(x, _QMAX / amax, out=scaled).round_()  # |x|·127/max|x| ≤ 127: no clamp
        q.copy_(scaled)
        int8_matmul(q, self.weight_t, out=acc)
        acc_f.copy_(acc).mul_(self.weight_scale)
        y = torch.addcmul(self.bias, acc_f, amax.div_(_QMAX))
        return y.reshape(*lead, self.out_features)


@torch.no_grad()
def int8_linears(
    model: nn.Module, include: Callable[[str, nn.Module], bool] = block_linears
) -> nn.Module:
    """A copy of ``model`` with the ``nn.Linear`` layers ``include(name, module)`` selects
    (default: a DiT's attention and MLP maps, as :func:`~visgen.efficient.quantize_linears`)
    replaced by :class:`Int8Linear`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    quantized = copy.deepcopy(model)
    modules = dict(quantized.named_modules())
    names = [n for n, m in modules.items() if isinstance(m, nn.Linear) and include(n, m)]
    if not names:
        raise ValueError("include selects no nn.Linear layer of the model")
    for name in names:
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else quantized, child, Int8Linear(modules[name]))
    return quantized
