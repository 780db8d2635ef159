"""Lecture 8's generators side by side on the same digits: raster AR vs VAR vs Switti vs MAR.

One run samples every generator of :mod:`visgen.ar.generators` (the cached assets of the tour
chapter L08: same data, the same 32-entry codebooks for the token models, same width and depth)
for the same class labels and reports, per generator,

* sequential forward passes and token evaluations per sample (counted, CFG rows included) and
  attention query–key pairs of one sequence in one layer;
* sampling time (CPU seconds of the one thread: on a loaded machine wall-clock would measure
  the other jobs) and its ratio to raster AR, the median of ``--repeats`` runs interleaved over
  the generators, at two batch sizes: ``--latency-batch`` samples (1: each pass is short and
  the count of sequential passes decides the time, as for interactive generation on a GPU;
  the median of ``--latency-repeats`` rounds) and all ``--n`` (compute-bound on a CPU: then
  the token evaluations decide);
* Fréchet distance on the evaluation classifier's features (and on PCA-16 pixels), classifier
  confidence and agreement with the requested class, next to the real-data floor and the
  tokenizers' own reconstructions.

It also prints the tokenizers' reconstruction PSNR, codebook usage and perplexity (per scale
for VAR's), FSQ and VQGAN included.

    python benchmarks/ar.py                 # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/ar.py   # FAST assets (the tests' bars)
    python benchmarks/ar.py --seeds 0,1,2   # spread over sample seeds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from visgen import budget, is_fast, set_threads
from visgen.ar import codebook_usage, perplexity, psnr
from visgen.ar.generators import SETTINGS, sampler
from visgen.ar.training import tokenizer
from visgen.data import get_dataset
from visgen.metrics import data_floor, image_metrics
from visgen.timing import interleaved_medians, machine

RUNS = {
    "raster": {},
    "var": {},
    "switti": {},
    "switti_cfg_off": {},
    "mar_1": {"steps": 1},
    "mar_4": {"steps": 4},
    "mar_16": {"steps": 16},
}
TOKENIZERS = (
    "vq_digits_plain",
    "vq_digits",
    "fsq_digits",
    "vqgan_digits",
    "msvq_digits",
    "msvq_digits_uncentered",
)


def _tokenizers() -> list[dict]:
    test = get_dataset("digits", "test").x
    rows = []
    for name in TOKENIZERS:
        tok = tokenizer(name)
        indices = tok.tokenize(test)
        maps = indices if isinstance(indices, list) else [indices]
        recon = tok.decode_tokens(indices)
        rows.append({
            "tokenizer": name,
            "psnr": psnr(recon, test),
            "mse": float((recon - test).pow(2).mean()),
            "usage": [codebook_usage(i, tok.num_codes) for i in maps],
            "perplexity": [perplexity(i, tok.num_codes) for i in maps],
            "codes": tok.num_codes,
        })  # fmt: skip
        if tok.multiscale:
            cumulative = tok.quantizer.reconstruct(indices)
            rows[-1]["cumulative_mse"] = [
                float((tok.decode(f) - test).pow(2).mean()) for f in cumulative
            ]
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=budget(full=1000, fast=300))
    p.add_argument("--seeds", default="0", help="sample seeds, comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of all --n per generator")
    p.add_argument(
        "--latency-repeats", type=int, default=50, help="timed small calls per generator"
    )
    p.add_argument("--latency-batch", type=int, default=1, help="samples per timed small call")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    set_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cond = torch.arange(args.n) % 10
    # train (or load) every asset before anything is timed
    samplers = {name: sampler(name.split("_")[0] if name.startswith("mar") else name, **opts)
                for name, opts in RUNS.items()}  # fmt: skip
    small = cond[: args.latency_batch]
    fixed = torch.Generator()

    def job(sample, c):
        return lambda: sample(c, fixed.manual_seed(1234))

    latency = interleaved_medians({n: job(s, small) for n, s in samplers.items()},
                                  args.latency_repeats)  # fmt: skip
    times = interleaved_medians({n: job(s, cond) for n, s in samplers.items()}, args.repeats)
    results = {}
    for name, sample in samplers.items():
        per_seed = []
        for seed in seeds:
            x, stats = sample(cond, torch.Generator().manual_seed(seed))
            per_seed.append(image_metrics(x, "digits", cond=cond))
        results[name] = {
            "passes": stats.passes,
            "token_evals_per_sample": stats.token_evals / args.n,
            "attention_pairs": stats.attention_pairs,
            "seconds": times[name].cpu,
            "latency_seconds": latency[name].cpu,
            **{k: [m[k] for m in per_seed] for k in ("fd", "fd_pca16", "confidence", "agreement")},
        }
    floor = data_floor("digits", n=args.n)
    train = get_dataset("digits").x[: args.n]
    recon = {name: image_metrics(tokenizer(name).reconstruct(train).clamp(-1, 1), "digits")
             for name in ("vq_digits", "msvq_digits")}  # fmt: skip
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "load": os.getloadavg(),
        "fast": is_fast(),
        "n": args.n,
        "latency_batch": args.latency_batch,
        "seeds": seeds,
        "settings": SETTINGS,
        "floor": floor,
        "tokenizer_reconstructions": recon,
        "generators": results,
        "tokenizers": _tokenizers(),
    }
    _print(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


def _spread(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _print(out: dict) -> None:
    load = tuple(round(v, 1) for v in out["load"])
    print(f"# {out['date']}, {out['machine']}, load {load}, n = {out['n']}, seeds "
          f"{out['seeds']}, FAST = {out['fast']}\n")  # fmt: skip
    small = out["latency_batch"]
    head = (f"| generator | passes | token evals / sample | attention pairs | CPU ms for {small} "
            f"sample(s) (speed-up over raster) | CPU s for {out['n']} (speed-up) | FD | FD PCA-16 "
            "| confidence | right class |")  # fmt: skip
    print(head + "\n" + "|---" * 10 + "|")
    f = out["floor"]
    empty = "| " * 5
    print(f"| real digits (floor) {empty}| {f['fd']:.2f} | {f['fd_pca16']:.3f} | "
          f"{f['confidence']:.3f} | |")  # fmt: skip
    for name, m in out["tokenizer_reconstructions"].items():
        print(f"| {name} reconstructions {empty}| {m['fd']:.2f} | {m['fd_pca16']:.3f} | "
              f"{m['confidence']:.3f} | |")  # fmt: skip
    raster = out["generators"]["raster"]
    for name, r in out["generators"].items():
        fast = raster["latency_seconds"] / r["latency_seconds"]
        bulk = raster["seconds"] / r["seconds"]
        print(f"| {name} | {r['passes']} | {r['token_evals_per_sample']:.0f} | "
              f"{r['attention_pairs']} | {1e3 * r['latency_seconds']:.2f} ({fast:.2f}×) | "
              f"{r['seconds']:.2f} ({bulk:.2f}×) | {_spread(r['fd'])} | {_spread(r['fd_pca16'])} | "
              f"{_spread(r['confidence'])} | {_spread(r['agreement'])} |")  # fmt: skip
    print("\n| tokenizer | PSNR dB | MSE | usage per scale | perplexity per scale | cumulative MSE "
          "|\n|---|---|---|---|---|---|")  # fmt: skip
    for t in out["tokenizers"]:
        usage = " / ".join(f"{u:.0%}" for u in t["usage"])
        ppl = " / ".join(f"{v:.1f}" for v in t["perplexity"])
        cum = " / ".join(f"{v:.3f}" for v in t.get("cumulative_mse", []))
        print(f"| {t['tokenizer']} | {t['psnr']:.2f} | {t['mse']:.4f} | {usage} | {ppl} | {cum} |")


if __name__ == "__main__":
    main()
