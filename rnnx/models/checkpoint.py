"""Checkpoints: ONE safetensors file, weights + config JSON in its metadata, no pickle.

Metadata key ``rnnx`` holds ``{"format": 1, "kind", "config", "rnnx_version", "extra"}``.

Example:
    >>> import tempfile, os
    >>> from rnnx.models import build
    >>> model = build("gru", input_size=5, hidden_size=8, output_size=3)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> _ = save(model, path, extra={"task": "sine"})
    >>> load(path).kind, load_extra(path)
    ('gru', {'task': 'sine'})
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

import rnnx
from rnnx.errors import CheckpointError, ConfigError
from rnnx.models.config import ModelConfig

FORMAT = 1  # version of the metadata layout
META_KEY = "rnnx"  # safetensors metadata key holding the JSON
FILENAME = "model.safetensors"  # looked up inside a directory

PathLike = Union[str, os.PathLike]


def save(model: nn.Module, path: PathLike, *, extra: dict | None = None) -> Path:
    """Write ``model``'s weights and config to one safetensors file, atomically.

    Args:
        model: a zoo model (has ``.config`` and ``.kind``).
        path: target file; a directory gets ``model.safetensors`` inside it.
        extra: JSON-serialisable facts to keep alongside (training task, metrics).

    Returns:
        The path written.

    Raises:
        CheckpointError: not a zoo model, or ``extra`` is not JSON-serialisable.
    """
    from safetensors.torch import save_file

    target = Path(path)
    if target.is_dir():
        target = target / FILENAME
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise CheckpointError(f"{target}: expected an rnnx zoo model with a ModelConfig .config, got {type(model).__name__}")
    try:
        meta = json.dumps({"format": FORMAT, "kind": config.kind, "config": config.to_dict(),
                           "rnnx_version": rnnx.__version__, "extra": extra or {}})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{target}: extra must be JSON-serialisable, got {e}") from None
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: meta})
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _resolve(path: PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        if not (p / FILENAME).is_file():
            raise CheckpointError(f"{p}: directory has no {FILENAME}")
        return p / FILENAME
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


def _read(path: PathLike) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    p = _resolve(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{p}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if META_KEY not in metadata:
        raise CheckpointError(f"{p}: safetensors file without rnnx metadata (key {META_KEY!r}); not an rnnx checkpoint")
    try:
        meta = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: rnnx metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"{p}: expected rnnx checkpoint format {FORMAT}, got {got!r}")
    return p, meta, tensors


def load(path: PathLike) -> nn.Module:
    """Rebuild a zoo model from a checkpoint (file, or directory holding ``model.safetensors``).

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: missing/corrupt file, not rnnx, invalid config, mismatched weights.
    """
    from rnnx.models.registry import build_from_config

    p, meta, tensors = _read(path)
    try:
        config = ModelConfig.from_dict(meta.get("config"))
        model = build_from_config(config)
    except ConfigError as e:
        raise CheckpointError(f"{p}: invalid config ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{p}: weights do not match the config: missing {missing}, unexpected {unexpected}")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{p}: weight {k}: expected shape {tuple(expected[k].shape)}, got {tuple(v.shape)}")
    model.load_state_dict(tensors)
    return model.eval()


def load_extra(path: PathLike) -> dict:
    """The ``extra`` dict saved with the checkpoint (empty if none)."""
    _, meta, _ = _read(path)
    return dict(meta.get("extra") or {})
