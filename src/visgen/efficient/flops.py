r"""FLOP accounting: what a forward pass costs, per submodule, counted not timed.

Caching and sparse attention are judged by the compute they skip. Wall-clock time on a shared
CPU says little (and masked attention is not faster on a CPU at all), so the library counts
floating-point operations the way papers report them: 2 FLOPs per multiply–add of every
matrix product (integer ones too), convolution and attention (QKᵀ and PV), nothing for element-wise work
(norms, activations, additions), which is memory-bound and small next to them.
:func:`flop_table` runs one forward under ``torch.utils.flop_counter.FlopCounterMode`` and
returns the count of every submodule (parents include their children); the caches of
:mod:`visgen.efficient` read their per-step costs from it once and add them up as they skip.
The count is exact for the operators it covers and linear in the batch size.
:func:`flop_counter` counts the total only (the same formulas, without the module tracking
that costs ``FlopCounterMode`` a third of a small U-Net's sampling time): what a run costs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry, shape_wrapper

__all__ = ["attention_flops", "first_rows", "flop_counter", "flop_table"]


def first_rows(value, n: int = 1):
    """The first ``n`` rows of a tensor (or of every tensor in a dict); None stays None."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: first_rows(v, n) for k, v in value.items()}
    return value[:n]


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    *batch, lq, d = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    pairs = math.prod(batch) * lq * lk
    return 2 * pairs * d + 2 * pairs * dv


def _int_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


# torch's counter knows the CUDA attention kernels, not the CPU one SDPA dispatches to here,
# and no integer matmul (counted like a float one: the same multiply-adds, on integers)
_CUSTOM = {
    op: formula
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_flops),
        ("_int_mm", _int_mm_flops),
    )
    if (op := getattr(torch.ops.aten, name, None)) is not None
}


def _module_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` (no printing) that also counts CPU attention, per submodule."""
    return FlopCounterMode(display=False, custom_mapping=_CUSTOM)


class _TotalFlops(TorchDispatchMode):
    """The total of ``FlopCounterMode`` (its registry and the CPU attention of ``_CUSTOM``, an
    operator without a formula decomposed first, as it does) without its per-module tracking:
    every module call costs that tracking two Python hooks."""

    def __init__(self):
        super().__init__()
        self.registry = {**flop_registry, **{op: shape_wrapper(f) for op, f in _CUSTOM.items()}}
        self.total = 0
        self.atomic = {torch.ops.prim.device.default}  # operators without a decomposition

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = self.registry.get(func._overloadpacket)
        if formula is None and func not in self.atomic:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
            self.atomic.add(func)
        out = func(*args, **kwargs)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out

    def get_total_flops(self) -> int:
        return self.total


def flop_counter() -> _TotalFlops:
    """A dispatch mode that counts the FLOPs of everything run inside it: ``with
    flop_counter() as fc: ...; fc.get_total_flops()`` — ``FlopCounterMode``'s total (CPU
    attention and integer matmuls included), cheaper (no per-module tracking)."""
    return _TotalFlops()


@torch.no_grad()
def flop_table(model: nn.Module, *args, **kwargs) -> dict[str, int]:
    """FLOPs of one ``model(*args, **kwargs)`` call by submodule name ("" = the whole call).

    Names are those of ``model.named_modules()`` ("down.0", "blocks.2.image.mlp"); a parent
    counts its children and the operators it runs itself (e.g. a DiT block's attention).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with _module_counter() as counter:
        model(*args, **kwargs)
    root = type(model).__name__
    table = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            continue
        key = "" if name == root else name.removeprefix(root + ".")
        table[key] = int(sum(ops.values()))
    table.setdefault("", int(counter.get_total_flops()))
    return table


def attention_flops(pairs: int, head_dim: int) -> int:
    """FLOPs of attention over ``pairs`` query–key pairs (summed over heads and batch):
    2d for the score q·k and 2d for adding p·v, per pair."""
    return 4 * int(pairs) * int(head_dim)
