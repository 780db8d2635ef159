"""Trained models by configuration, cached on disk: the one way to get a trained standard asset.

A *spec* says what to train — ``{"model": {...}, "method": {...}, "data": name, "train":
{...}}`` (see :func:`normalize_spec`) — and :func:`train_cached` returns the trained model,
training it only if no checkpoint for that exact spec exists. The cache key is a SHA-256 of
the normalised spec (defaults filled in, so equivalent specs share an entry) and of
:data:`CACHE_VERSION`, bumped whenever a change to the code would change what a spec trains.
Entries are ordinary checkpoints (:mod:`visgen.train.checkpoint`, atomic); a file lock
lets parallel processes (pytest workers, the tour) train each entry once: a second process
that needs an entry being trained waits for the lock, then loads it.

Every cached computation — models here, few-step students (:func:`visgen.fewstep.trained`),
tuned grids (:func:`visgen.train.tuned_grid`) — goes through :func:`cache_entry`, which
records a :class:`CacheEvent` (trained or loaded, CPU and wall seconds, time spent waiting
for another process) for every :func:`record_cache_events` block that is open: the tour's
cost accounting.

The cache folder is ``$VISGEN_CACHE`` if set, else ``.cache/visgen`` in the repository root
(``~/.cache/visgen`` for an installed package). Delete it to retrain everything.

Standard assets are named recipes in :data:`ASSETS` (their sizes follow
:func:`visgen.budget`, so FAST and full runs are cached separately); :func:`asset` gets one:

>>> teacher = asset("fm_digits")          # class-conditional flow-matching MLP on digits
>>> den = teacher.denoiser()              # a visgen.Denoiser: any sampler takes it

Other modules add recipes with :func:`register_asset` and are listed in the providers of
:data:`ASSETS` (:mod:`visgen._registry`), so that ``asset(name)`` finds every recipe in a
fresh interpreter, whatever was imported before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from visgen._registry import Registry
from visgen.config import budget, cpu_seconds
from visgen.data.registry import Dataset, get_dataset
from visgen.nn import build_model
from visgen.param import Denoiser
from visgen.train.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from visgen.train.methods import make_method
from visgen.train.trainer import TrainConfig, Trainer

__all__ = [
    "ASSETS",
    "CACHE_VERSION",
    "CacheEvent",
    "Trained",
    "asset",
    "asset_key",
    "cache_dir",
    "cache_entry",
    "classifier_recipe",
    "load_trained",
    "normalize_spec",
    "record_cache_events",
    "register_asset",
    "spec_key",
    "train_cached",
    "training_data",
]

CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$VISGEN_CACHE``, else ``<repo>/.cache/visgen``, else ``~/.cache/visgen``."""
    env = os.environ.get("VISGEN_CACHE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").exists():
        return repo / ".cache" / "visgen"
    return Path.home() / ".cache" / "visgen"


@dataclass
class Trained:
    """A trained network (EMA weights, eval mode, frozen) and how it was trained."""

    model: nn.Module
    config: dict  # the run config of the checkpoint (model, method, data, train, step)
    history: torch.Tensor  # loss of every training step
    path: Path  # the checkpoint's JSON file

    @property
    def method(self):
        return make_method(self.config["method"])

    def denoiser(self) -> Denoiser:
        """The network as a :class:`~visgen.param.Denoiser` (diffusion methods only)."""
        method = self.method
        if not hasattr(method, "denoiser"):
            raise TypeError(f"a {method.name!r} model is not a denoiser")
        return method.denoiser(self.model)


def load_trained(path, *, ema: bool = True) -> Trained:
    """A checkpoint written by :class:`~visgen.train.Trainer` as a :class:`Trained`.

    ``ema=False`` loads the raw (last-step) weights instead of the EMA weights.
    """
    tensors, config = load_checkpoint(path)
    for key in ("model", "method", "step"):
        if key not in config:
            raise ValueError(
                f"{str(path)!r} is not a training checkpoint (no {key!r} in its config)"
            )
    model = build_model(config["model"])
    prefix = "ema." if ema else "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    model.eval().requires_grad_(False)
    history = tensors.get("history", torch.zeros(0, dtype=torch.float64))
    return Trained(model, config, history, checkpoint_paths(path)[1])


def normalize_spec(spec: dict) -> dict:
    """Fill in defaults: ``model`` via :func:`build_model`, ``method`` via :func:`make_method`,
    ``train`` via :class:`TrainConfig`; ``data`` must name a data set of :func:`training_data`
    (``latent:<asset>`` gets the autoencoder's cache key appended); an optional ``init``
    (an asset whose weights the model starts from) gets its cache key appended too."""
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
    missing = {"model", "method", "data", "train"} - set(spec)
    if missing:
        raise ValueError(f"spec is missing {sorted(missing)}")
    extra = set(spec) - {"model", "method", "data", "train", "labels", "init"}
    if extra:
        raise ValueError(f"spec has unknown keys {sorted(extra)}")
    with torch.random.fork_rng():
        model_config = build_model(dict(spec["model"])).config
    data = spec["data"]
    if isinstance(data, str) and data.startswith("latent:") and data.count(":") == 1:
        # latents depend on which autoencoder encodes them: pin its cache key (FAST and full
        # autoencoders differ), so a model trained on one is never reused with the other
        data = f"{data}:{asset_key(data.removeprefix('latent:'))}"
    out = {
        "model": model_config,
        "method": make_method(spec["method"]).spec,
        "data": data,
        "train": asdict(TrainConfig.from_dict(dict(spec["train"]))),
    }
    if "labels" in spec:
        out["labels"] = bool(spec["labels"])
    if "init" in spec:
        # fine-tuning starts from another asset's weights: pin its cache key, like latents
        init = spec["init"]
        out["init"] = init if init.count(":") == 1 else f"{init}:{asset_key(init)}"
    return out


def asset_key(name: str) -> str:
    """The cache key of asset ``name``'s recipe under the current budget (FAST or full)."""
    return spec_key(ASSETS.lookup(name)())


def training_data(name: str, split: str = "train") -> Dataset:
    """The data set a spec names: one of :func:`visgen.data.get_dataset`, or
    ``latent:<asset>[:<key>]``, the scaled latents of an autoencoder asset
    (:func:`visgen.train.latent.latent_dataset`)."""
    if isinstance(name, str) and name.startswith("latent:"):
        from visgen.train.latent import latent_dataset  # latent imports this module

        autoencoder, _, key = name.removeprefix("latent:").partition(":")
        return latent_dataset(autoencoder, split, key=key or None)
    return get_dataset(name, split)


def spec_key(spec: dict) -> str:
    """The cache entry name of a spec: ``<data>-<method>-<model>-<hash>``."""
    spec = normalize_spec(spec)
    text = json.dumps({"v": CACHE_VERSION, "spec": spec}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    data = spec["data"].replace("/", "_").replace(":", "_")
    return f"{data}-{spec['method']['name']}-{spec['model']['name']}-{digest}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent trainers still write atomically
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CacheEvent:
    """One use of a cache entry, recorded by :func:`record_cache_events`.

    ``cpu_s`` and ``wall_s`` are spent inside the entry by this process (and its waited-for
    children), *excluding* nested entries (a fine-tune that trains its initial asset first
    records two events that add up); ``wait_s`` is the wall time spent waiting for the
    entry's lock while another process computed it.
    """

    kind: str  # "model" (train_cached), "student" (fewstep.trained), "grid" (tuned_grid)
    name: str  # the asset name, or the entry's readable stem
    key: str  # the entry's file name in the cache (without extension)
    file: str  # path, relative to the cache folder, of the file whose existence means "cached"
    trained: bool  # computed now (True) or loaded (False)
    cpu_s: float
    wall_s: float
    wait_s: float


@dataclass
class _Frame:  # an open cache_entry: the time its nested entries took, to subtract
    nested_cpu: float = 0.0
    nested_wall: float = 0.0


_RECORDERS: list[list[CacheEvent]] = []
_OPEN: list[_Frame] = []


@contextlib.contextmanager
def record_cache_events() -> Iterator[list[CacheEvent]]:
    """Collect the :class:`CacheEvent` of every cache entry used inside the block (in the
    order the entries finish; nested blocks each get every event)."""
    events: list[CacheEvent] = []
    _RECORDERS.append(events)
    try:
        yield events
    finally:
        _RECORDERS.remove(events)


@contextlib.contextmanager
def cache_entry(root: Path, stem: str, *, kind: str, name: str) -> Iterator[bool]:
    """Hold the lock of cache entry ``root/stem`` and yield whether it is cached
    (``root/stem.json`` exists); the block computes and writes the entry when it is not.

    The lock (``root/stem.lock``) makes a second process that needs the same entry wait
    until the first has written it, then load it: every entry is computed once. The use is
    recorded as a :class:`CacheEvent` (see :func:`record_cache_events`).
    """
    root = Path(root)
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    frame = _Frame()
    with _locked(root / f"{stem}.lock"):
        wait = time.perf_counter() - start_wall
        cached = (root / f"{stem}.json").exists()
        _OPEN.append(frame)
        try:
            yield cached
        finally:
            _OPEN.pop()
    wall, cpu = time.perf_counter() - start_wall, cpu_seconds() - start_cpu
    if _OPEN:  # the enclosing entry does not count this one's time as its own
        _OPEN[-1].nested_cpu += cpu
        _OPEN[-1].nested_wall += wall
    event = CacheEvent(
        kind=kind,
        name=name,
        key=Path(stem).name,
        file=f"{stem}.json",
        trained=not cached,
        cpu_s=max(cpu - frame.nested_cpu, 0.0),
        wall_s=max(wall - wait - frame.nested_wall, 0.0),
        wait_s=wait,
    )
    for events in _RECORDERS:
        events.append(event)


def train_cached(
    spec: dict, *, progress: bool = True, cache: Path | None = None, name: str | None = None
) -> Trained:
    """The model ``spec`` describes, from the cache or trained now (seeded by ``train.seed``).

    ``name`` labels the entry in the cost accounting (:func:`asset` passes the asset's name;
    by default the readable part of the key, ``<data>-<method>-<model>``)."""
    spec = normalize_spec(spec)
    root = Path(cache) if cache is not None else cache_dir()
    key = spec_key(spec)
    label = name or key.rsplit("-", 1)[0]
    with cache_entry(root, key, kind="model", name=label) as cached:
        if not cached:
            _train(spec, root / key, progress)
    return load_trained(root / key)


def _train(spec: dict, stem: Path, progress: bool) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(spec["train"]["seed"])
        model = build_model(spec["model"])
    if hasattr(model, "load_pretrained"):  # an adapter: its frozen parts are assets
        model.load_pretrained()
    if "init" in spec:
        name, key = spec["init"].split(":")
        if asset_key(name) != key:
            raise ValueError(f"spec starts from {name} = {key}, but the asset is now "
                             f"{asset_key(name)} (FAST vs full, or changed)")  # fmt: skip
        model.load_state_dict(asset(name, progress=progress).model.state_dict())
    method, data = make_method(spec["method"]), training_data(spec["data"])
    config, desc = TrainConfig(**spec["train"]), stem.name.rsplit("-", 1)[0]
    if hasattr(method, "fit"):
        # a method with its own loop (distillation with extra networks) returns the final
        # weights and the loss of every step; stored as a Trainer checkpoint
        labels = spec.get("labels", getattr(model, "config", {}).get("num_classes", 0) > 0)
        trained, history = method.fit(model, data, config, labels=labels, progress=progress,
                                      desc=desc)  # fmt: skip
        weights = trained.state_dict()
        tensors = {f"{part}.{k}": v for part in ("model", "ema") for k, v in weights.items()}
        tensors["history"] = torch.tensor(history, dtype=torch.float64)
        run = {"model": trained.config, "method": method.spec, "data": spec["data"],
               "labels": labels, "train": spec["train"], "step": config.steps}  # fmt: skip
        if "init" in spec:
            run["init"] = spec["init"]
        save_checkpoint(stem, tensors, run)
        return
    trainer = Trainer(
        model, method, data, config, labels=spec.get("labels"), progress=progress, desc=desc
    )
    trainer.fit()
    trainer.save(stem)


# --- standard assets ----------------------------------------------------------------------


def _fm_2d() -> dict:
    return {
        "model": {"name": "mlp", "shape": [2], "width": 128, "depth": 3},
        "method": {"name": "fm"},
        "data": "eight_gaussians",
        "train": {"steps": budget(full=4000, fast=2000), "batch_size": 512, "lr": 2e-3},
    }


def _ddpm_2d() -> dict:
    return {**_fm_2d(), "method": {"name": "ddpm"}}


def _dsm_2d() -> dict:
    return {
        **_fm_2d(),
        "method": {"name": "dsm", "sigma_min": 0.01, "sigma_max": 10.0, "levels": 10},
    }


def _fm_digits() -> dict:
    return {
        "model": {"name": "mlp", "shape": [1, 8, 8], "width": 256, "depth": 3, "num_classes": 10},
        "method": {"name": "fm", "t_sampler": "logit_normal", "label_dropout": 0.1},
        "data": "digits",
        "train": {"steps": budget(full=4000, fast=1500), "batch_size": 256, "lr": 2e-3},
    }


def _ddpm_digits() -> dict:
    return {**_fm_digits(), "method": {"name": "ddpm", "label_dropout": 0.1}}


def classifier_recipe(
    data: str, channels: int, classes: int, width: int, steps: tuple[int, int], seed: int = 0
) -> Callable[[], dict]:
    """Recipe of a small image classifier (``steps`` = (full, fast)): the evaluation
    classifiers of the image metrics (test accuracy in docs/metrics.md) and REPA's encoders."""

    def recipe() -> dict:
        return {
            "model": {
                "name": "classifier",
                "in_channels": channels,
                "num_classes": classes,
                "width": width,
            },
            "method": {"name": "classifier"},
            "data": data,
            "train": {
                "steps": budget(full=steps[0], fast=steps[1]),
                "batch_size": 128,
                "lr": 5e-3,
                "weight_decay": 1e-4,
                "ema_decay": 0.99,
                "seed": seed,
            },
        }

    return recipe


ASSETS: Registry[Callable[[], dict]] = Registry(
    "asset",
    {
        "fm_2d": _fm_2d,
        "ddpm_2d": _ddpm_2d,
        "dsm_2d": _dsm_2d,
        "fm_digits": _fm_digits,
        "ddpm_digits": _ddpm_digits,
        "classifier_digits": classifier_recipe("digits", 1, 10, 16, (1500, 600)),
        "classifier_shapes16": classifier_recipe("shapes16", 3, 12, 32, (2500, 800)),
        "classifier_shapes32": classifier_recipe("shapes32", 3, 12, 32, (2500, 800)),
    },
    providers=(
        "visgen.train.latent",
        "visgen.train.repa",
        "visgen.fewstep.tasks",
        "visgen.video.assets",
        "visgen.efficient.teachers",
        "visgen.ar.training",
        "visgen.threed.training",
        "visgen.conditioning.clip",
        "visgen.conditioning.text",
        "visgen.conditioning.controlnet",
        "visgen.conditioning.ip_adapter",
        "visgen.conditioning.transfusion",
    ),
)
"""Named recipes: a function returning a spec (evaluated at call time, so budgets apply).
A module that registers recipes is listed in ``providers``, imported on first need."""


def register_asset(name: str, recipe: Callable[[], dict]) -> None:
    """Add a named recipe (a function returning a spec) to :data:`ASSETS`; call it at the top
    level of a module listed in the providers of :data:`ASSETS`."""
    if not callable(recipe):
        raise TypeError(f"recipe must be a function returning a spec, got {type(recipe).__name__}")
    ASSETS[name] = recipe


def asset(name: str, *, progress: bool = True) -> Trained:
    """The standard trained asset ``name`` (see :data:`ASSETS`), trained on first use."""
    return train_cached(ASSETS.lookup(name)(), progress=progress, name=name)
