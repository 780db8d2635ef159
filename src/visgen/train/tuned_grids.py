"""Time grids optimised for a standard teacher (LD3, :mod:`visgen.sampling.tuning`), cached
beside it.

``tuned_grid("fm_digits", "unipc", 10)`` fits the grid on a calibration set of noises (and
random class labels for a class-conditional teacher) drawn from a fixed seed, against the
teacher's own converged solve from the same noises, and stores it as JSON under
``cache_dir()/grids`` keyed by the teacher's cache key, the solver, the NFE and the calibration
settings: FAST and full teachers get their own grids, and a second call only reads the file.
"""

from __future__ import annotations

import json

import torch

from visgen.sampling.solvers import SOLVERS, grid_for_nfe, sample
from visgen.sampling.tuning import noise_start, optimize_grid
from visgen.train.assets import asset, asset_key, cache_dir, cache_entry, training_data
from visgen.train.checkpoint import atomic_write_bytes

__all__ = ["calibration_set", "tuned_grid"]

REFERENCE_NFE = 400
VERSION = 2  # bump when optimize_grid changes what it returns: cached grids are then refitted


def calibration_set(name: str, n: int, seed: int = 0):
    """(noise x at :func:`~visgen.sampling.tuning.noise_start`, labels or None) for asset
    ``name``: the data's sample shape, uniform class labels for a class-conditional model."""
    teacher = asset(name, progress=False)
    data = training_data(teacher.config["data"])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *data.x.shape[1:], generator=g)
    classes = teacher.config["model"].get("num_classes", 0)
    labels = torch.randint(0, classes, (n,), generator=g) if classes else None
    return x, labels


def tuned_grid(
    name: str, solver: str, nfe: int, *, calibration: int = 256, seed: int = 0
) -> torch.Tensor:
    """The LD3 grid of ``solver`` at ``nfe`` NFE for the teacher asset ``name`` (cached)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    if not isinstance(calibration, int) or calibration < 2:
        raise ValueError(f"calibration must be an int >= 2, got {calibration!r}")
    stem = f"grids/{asset_key(name)}-{solver}-{nfe}-n{calibration}-s{seed}-v{VERSION}"
    path = cache_dir() / f"{stem}.json"
    with cache_entry(
        cache_dir(), stem, kind="grid", name=f"{solver} {nfe} NFE grid of {name}"
    ) as cached:
        if not cached:
            den = asset(name, progress=False).denoiser()
            x, labels = calibration_set(name, calibration, seed)
            start = noise_start(den.schedule)
            fine = grid_for_nfe(REFERENCE_NFE, "unipc", den.schedule, "logsnr", t_start=start)
            reference = sample(den, x, REFERENCE_NFE, "unipc", fine, labels)
            ts = optimize_grid(den, solver, nfe, x, labels, reference=reference, t_start=start)
            record = {"asset": name, "solver": solver, "nfe": nfe, "ts": ts.tolist()}
            atomic_write_bytes(path, json.dumps(record, indent=1).encode())
    return torch.tensor(json.loads(path.read_text())["ts"], dtype=torch.float64)
