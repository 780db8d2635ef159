"""Measure each sample metric's noise floor: data vs independent data of the 8-Gaussian target.

``python -m visgen.metrics.floors [--n 2000] [--repeats 10]`` prints a Markdown table
(mean ± std over independent draws); docs/metrics.md records its output.
"""

from __future__ import annotations

import argparse

import torch

from visgen.metrics.samples import energy_distance, mmd_rbf, mode_coverage, sliced_wasserstein
from visgen.oracles import eight_gaussians


def measure(n: int = 2000, repeats: int = 10, seed: int = 0) -> dict[str, list[float]]:
    g = torch.Generator().manual_seed(seed)
    gmm = eight_gaussians()
    out: dict[str, list[float]] = {
        "energy_distance": [],
        "mmd_rbf(h=0.3)": [],
        "sliced_w2": [],
        "in_mode": [],
        "min_fraction": [],
    }
    for _ in range(repeats):
        x, y = gmm.sample(n, g), gmm.sample(n, g)
        out["energy_distance"].append(energy_distance(x, y))
        out["mmd_rbf(h=0.3)"].append(mmd_rbf(x, y, 0.3))
        out["sliced_w2"].append(sliced_wasserstein(x, y, generator=g))
        cov = mode_coverage(x, gmm.means, 0.3)
        out["in_mode"].append(cov.in_mode)
        out["min_fraction"].append(cov.min_fraction)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    res = measure(args.n, args.repeats)
    print(f"| metric (N = {args.n}, {args.repeats} draws) | mean | std |\n|---|---|---|")
    for k, v in res.items():
        t = torch.tensor(v)
        print(f"| {k} | {t.mean():.4g} | {t.std():.2g} |")


if __name__ == "__main__":
    main()
