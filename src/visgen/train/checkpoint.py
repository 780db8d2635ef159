"""Checkpoints: ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (config), written atomically.

The JSON holds the configuration needed to rebuild the model and resume, plus the byte size
and SHA-256 of the tensor file, so a truncated or corrupted checkpoint is reported as such
instead of loading garbage. Nothing is ever unpickled. Each file is written to a temporary
name in the same folder, flushed, then moved into place with ``os.replace`` (atomic on
POSIX); the JSON goes last, so it only ever describes a complete tensor file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "checkpoint_paths",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "visgen-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be trusted (truncated, corrupted, wrong format)."""


def checkpoint_paths(path) -> tuple[Path, Path]:
    """(tensor file, JSON file) of a checkpoint given its stem, either file, or a training
    output folder (which holds ``checkpoint.{safetensors,json}``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Save ``tensors`` and the JSON-able ``config``; returns the JSON path.

    Tensors are stored contiguous on the CPU; shared storage is copied.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"tensors[{k!r}] must be a torch.Tensor, got {type(v).__name__}")
    st_path, json_path = checkpoint_paths(path)
    blob = st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
    meta = {
        "format": FORMAT,
        "tensors": st_path.name,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "config": config,
    }
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    atomic_write_bytes(st_path, blob)
    atomic_write_bytes(json_path, text.encode())
    return json_path


def load_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, config) of a checkpoint; :class:`CheckpointError` if it cannot be trusted."""
    st_path, json_path = checkpoint_paths(path)
    if not json_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {str(path)!r} (looked for {str(json_path)!r} and its .safetensors)"
        )
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint config {str(json_path)!r} is corrupted: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(json_path)!r} is not a {FORMAT} checkpoint config")
    if not st_path.exists():
        raise CheckpointError(f"checkpoint tensors {str(st_path)!r} are missing")
    blob = st_path.read_bytes()
    if len(blob) != meta["bytes"]:
        raise CheckpointError(
            f"checkpoint tensors {str(st_path)!r} are truncated or overwritten: "
            f"expected {meta['bytes']} bytes, found {len(blob)}"
        )
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint tensors {str(st_path)!r} are corrupted (SHA-256 does not match the config)"
        )
    try:
        tensors = st_load(blob)
    except SafetensorError as err:  # the hash matched: the writer itself produced garbage
        raise CheckpointError(f"cannot parse {str(st_path)!r}: {err}") from err
    return tensors, meta["config"]
