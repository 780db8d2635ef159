r"""One speed–quality map for every lever of the course: solvers (lecture 4), few-step
students (lectures 6–7), caching and quantisation (lecture 10).

Each technique generates the same batch — the same noise and the same class labels — and is
placed on the same axes (:func:`measure`):

* **compute**: FLOPs per generated sample, counted over the whole generation
  (:func:`~visgen.efficient.flops.flop_counter`), and their ``fraction`` of the reference
  (the teacher's 50-step Euler sampler);
* **time**: CPU seconds of that run (one thread; wall-clock belongs to benchmarks, where it
  is measured interleaved against the reference);
* **fidelity**: PSNR against the reference output from the same noise (how much the shortcut
  changed *these* samples);
* **quality**: Fréchet distance of the evaluation classifier's features to the test split,
  next to the data floor (:func:`visgen.metrics.image_metrics`).

Fake-quantised models count the same FLOPs as the float model (they compute in floating point
on an integer grid); their saving is in bits and shows up in time only on the real INT8 path
(:mod:`visgen.efficient.int8`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgen.efficient.deepcache import deepcache
from visgen.efficient.flops import flop_counter
from visgen.efficient.fora import fora
from visgen.efficient.int8 import int8_linears
from visgen.efficient.quant import quantize_linears
from visgen.efficient.teacache import teacache, uniform_cache
from visgen.metrics import image_metrics, psnr
from visgen.param import Denoiser
from visgen.sampling import grids, sample_dpmpp_2m, sample_euler, sample_unipc, uniform

__all__ = ["QUANTISATION", "REFERENCE_STEPS", "Lever", "levers", "measure"]

REFERENCE_STEPS = 50  # every teacher's reference sampler: 50 Euler steps from t = 1
_W4A4 = {"w_bits": 4, "a_bits": 4, "w_granularity": "group", "a_granularity": "group"}
QUANTISATION = (
    "W8A8 (fake-quant)",
    "W8A8, real INT8",
    "W4A16, groups of 64",
    "W4A4, naive",
    "W4A4, SmoothQuant",
    "W4A4, SVDQuant rank 16",
)


@dataclass
class Lever:
    """One way of generating from a teacher: ``generate(noise, labels) -> samples``."""

    technique: str
    family: str  # teacher | solver (L4) | few-step (L6–7) | caching (L10) | quantisation (L10)
    teacher: str
    nfe: int
    generate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _euler(den):
    return lambda z, y: sample_euler(den, z, uniform(REFERENCE_STEPS), y)


def _fresh(make):
    """A cache is stateful: build a fresh wrapper for every generation."""
    return lambda z, y: sample_euler(make(), z, uniform(REFERENCE_STEPS), y)


def levers(
    teachers: dict,
    *,
    students=(),
    solver_nfes=(5, 10),
    solvers=("DPM-Solver++(2M)",),
    deepcache_intervals=(3,),
    fora_intervals=(2,),
    uniform_intervals=(),
    teacache_settings=(),
    quantisation=QUANTISATION,
    calibrate: Callable | None = None,
) -> list[Lever]:
    """The levers of the course on ``teachers`` ({name: Denoiser}; "U-Net" gets DeepCache,
    "DiT" gets FORA, TeaCache, the uniform residual cache and quantisation), in order:
    each teacher's 50-step Euler reference, the lecture-4 ``solvers`` at ``solver_nfes``,
    caching, quantisation, then ``students`` = [(name, teacher, FewStepGenerator)] at each
    of their NFEs. ``teacache_settings`` = [(threshold, coefficients)]; ``quantisation``
    names the variants of :data:`QUANTISATION` to include; ``calibrate(model)`` runs
    calibration data for SmoothQuant / SVDQuant."""
    table = {"DPM-Solver++(2M)": sample_dpmpp_2m, "UniPC": sample_unipc, "Euler": None}
    out = [Lever(f"{name} teacher", "teacher", name, REFERENCE_STEPS, _euler(den))
           for name, den in teachers.items()]  # fmt: skip
    for name, den in teachers.items():
        for solver in solvers:
            fn = table[solver]
            for nfe in solver_nfes:
                if fn is None:
                    gen = lambda z, y, den=den, nfe=nfe: sample_euler(den, z, uniform(nfe), y)
                else:
                    gen = lambda z, y, den=den, nfe=nfe, fn=fn: fn(
                        den, z, grids.logsnr(nfe, den.schedule), y
                    )
                out.append(Lever(f"{solver}, {nfe} NFE", "solver (L4)", name, nfe, gen))
    unet, dit = teachers.get("U-Net"), teachers.get("DiT")
    steps = REFERENCE_STEPS
    if unet is not None:
        for n in deepcache_intervals:
            make = lambda n=n: deepcache(unet, steps=steps, interval=n)
            out.append(Lever(f"DeepCache N = {n}", "caching (L10)", "U-Net", steps, _fresh(make)))
    if dit is not None:
        for n in fora_intervals:
            make = lambda n=n: fora(dit, steps=steps, interval=n)
            out.append(Lever(f"FORA N = {n}", "caching (L10)", "DiT", steps, _fresh(make)))
        for n in uniform_intervals:
            make = lambda n=n: uniform_cache(dit, steps=steps, interval=n)
            out.append(Lever(f"uniform cache N = {n}", "caching (L10)", "DiT", steps, _fresh(make)))
        for delta, coefficients in teacache_settings:
            make = lambda d=delta, c=coefficients: teacache(dit, steps=steps, threshold=d,
                                                            coefficients=c)  # fmt: skip
            out.append(Lever(f"TeaCache δ = {delta:.3g}", "caching (L10)", "DiT", steps,
                             _fresh(make)))  # fmt: skip
        model = dit.model
        variants = {
            "W8A8 (fake-quant)": lambda: quantize_linears(model, w_bits=8, a_bits=8),
            "W8A8, real INT8": lambda: int8_linears(model),
            "W4A16, groups of 64": lambda: quantize_linears(
                model, w_bits=4, a_bits=16, w_granularity="group"
            ),
            "W4A4, naive": lambda: quantize_linears(model, **_W4A4),
            "W4A4, SmoothQuant": lambda: quantize_linears(model, calibrate, alpha=0.5, **_W4A4),
            "W4A4, SVDQuant rank 16": lambda: quantize_linears(
                model, calibrate, alpha=0.5, rank=16, **_W4A4
            ),
        }
        for name in quantisation:
            if name not in variants:
                raise ValueError(
                    f"quantisation must name variants of {sorted(variants)}, got {name!r}"
                )
            if calibrate is None and ("Smooth" in name or "SVD" in name):
                raise ValueError(f"{name} needs calibrate(model) for its smoothing factors")
            den = Denoiser(variants[name](), dit.schedule, dit.prediction)
            out.append(Lever(name, "quantisation (L10)", "DiT", steps, _euler(den)))
    for name, teacher, student in students:
        for nfe in student.nfes:
            gen = lambda z, y, s=student, nfe=nfe: s.sample(
                z, nfe, y, torch.Generator().manual_seed(nfe)
            )
            out.append(Lever(f"{name}, {nfe} NFE", "few-step (L6–7)", teacher, nfe, gen))
    return out


@torch.no_grad()
def measure(
    generate: Callable[[], torch.Tensor],
    reference: torch.Tensor | None,
    cond=None,
    *,
    reference_flops: float | None = None,
    data: str = "digits",
    **info,
) -> dict:
    """Run ``generate()`` once and place it on the map: a row with ``info`` (technique name,
    family, NFE, …), ``flops`` per sample, ``fraction`` of ``reference_flops``, ``cpu_s``,
    ``psnr`` (mean over samples, against ``reference``; inf where identical) and the image
    metrics ``fd``, ``confidence``, ``right class``."""
    with flop_counter() as counter:
        start = time.process_time()
        x = generate()
        cpu = time.process_time() - start
    n = x.shape[0]
    flops = counter.get_total_flops() / n
    metrics = image_metrics(x.clamp(-1, 1), data, cond=cond)
    row = {
        **info,
        "flops": flops,
        "fraction": flops / reference_flops if reference_flops else float("nan"),
        "cpu_s": cpu,
        "psnr": float(psnr(x, reference).mean()) if reference is not None else float("nan"),
        "fd": metrics["fd"],
        "confidence": metrics["confidence"],
        "right class": metrics.get("agreement", float("nan")),
    }
    return row | {"_samples": x}
