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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import CheckpointError, ConfigError, SpecError
from rnnx.models.config import ModelConfig
from rnnx.spec import DataSpec
from rnnx.version import __version__

FORMAT = 1  # version of the metadata layout
META_KEY = "rnnx"  # safetensors metadata key holding the JSON
FILENAME = "model.safetensors"  # looked up inside a directory

PathLike = str | os.PathLike


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
    from safetensors.torch import save as save_bytes

    target = Path(path)
    if target.is_dir():
        target = target / FILENAME
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise CheckpointError(
            f"{target}: expected an rnnx zoo model with a ModelConfig .config, got {type(model).__name__}"
        )
    try:
        meta = json.dumps(
            {
                "format": FORMAT,
                "kind": config.kind,
                "config": config.to_dict(),
                "rnnx_version": __version__,
                "extra": extra or {},
            }
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{target}: extra must be JSON-serialisable, got {e}") from None
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(target, save_bytes(tensors, metadata={META_KEY: meta}))


def _resolve(path: PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        if not (p / FILENAME).is_file():
            raise CheckpointError(f"{p}: directory has no {FILENAME}")
        return p / FILENAME
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}  # safetensors dtype -> bytes per element


def _header(p: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor names and shapes, and the metadata, read from the header alone (no tensor data).

    Every entry's byte range is checked against its shape and the file size, so nothing
    after this can be asked to allocate more than the file holds.
    """
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{p}: not a readable safetensors file (header length {n} for a file of {size} bytes)"
            )
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{p}: not a readable safetensors file (header: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{p}: not a readable safetensors file (header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    data_bytes = size - 8 - n
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        try:
            shape = tuple(int(d) for d in entry["shape"])
            start, stop = (int(o) for o in entry["data_offsets"])
            itemsize = _ITEMSIZE[entry["dtype"]]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{p}: not a readable safetensors file (entry {name!r}: {e})") from None
        numel = 1
        for d in shape:
            numel *= d
        if min(shape, default=0) < 0 or not 0 <= start <= stop <= data_bytes or stop - start != numel * itemsize:
            raise CheckpointError(
                f"{p}: weight {name}: shape {list(shape)} does not match its "
                f"{stop - start} bytes at [{start}, {stop}) of {data_bytes}"
            )
        shapes[name] = shape
    return shapes, metadata if isinstance(metadata, dict) else {}


def _meta(p: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if META_KEY not in metadata:
        raise CheckpointError(f"{p}: safetensors file without rnnx metadata (key {META_KEY!r}); not an rnnx checkpoint")
    try:
        meta = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: rnnx metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"{p}: expected rnnx checkpoint format {FORMAT}, got {got!r}")
    return meta


def _read(path: PathLike) -> tuple[Path, dict[str, Any], dict[str, tuple[int, ...]]]:
    """The checkpoint's path, its rnnx metadata and its tensors' shapes (no data read)."""
    p = _resolve(path)
    shapes, metadata = _header(p)
    return p, _meta(p, metadata), shapes


def _expected_shapes(p: Path, config: ModelConfig, stored: dict[str, tuple[int, ...]]) -> None:
    """Compare the file's tensors with what ``config`` builds, before anything is allocated.

    The model is built on the meta device (shapes only). A config claiming more recurrent
    layers than the file has tensors is refused before even that, so an absurd config
    costs milliseconds.
    """
    from rnnx.models.registry import build_from_config

    layers = int(getattr(config, "num_layers", 1) or 1) * int(getattr(config, "num_directions", 1) or 1)
    if layers > len(stored):
        raise CheckpointError(
            f"{p}: weights do not match the config: num_layers="
            f"{getattr(config, 'num_layers', 1)} needs at least {layers} tensors, "
            f"the file has {len(stored)}"
        )
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_from_config(config).state_dict().items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{p}: weights do not match the config: missing {missing}, unexpected {unexpected}")
    for k, shape in stored.items():
        if shape != expected[k]:
            raise CheckpointError(f"{p}: weight {k}: expected shape {expected[k]}, got {shape}")


def load(path: PathLike) -> nn.Module:
    """Rebuild a zoo model from a checkpoint (file, or directory holding ``model.safetensors``).

    The header (names, shapes, byte ranges) is checked against the config before any
    weight is read or the model is built, so a hostile file is refused cheaply.

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: missing/corrupt file, not rnnx, invalid config, mismatched weights.
    """
    from safetensors.torch import load_file

    from rnnx.models.registry import build_from_config

    p, meta, shapes = _read(path)
    try:
        config = ModelConfig.from_dict(meta.get("config"))
        config.validate()
    except ConfigError as e:
        raise CheckpointError(f"{p}: invalid config ({e})") from None
    _expected_shapes(p, config, shapes)
    try:
        tensors = load_file(str(p))
    except Exception as e:  # safetensors raises its own error types for corrupt data
        raise CheckpointError(f"{p}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    model = build_from_config(config)
    model.load_state_dict(tensors)
    data = (meta.get("extra") or {}).get("data")
    if data is not None:  # the task's data contract travels on to the exported file
        try:
            # not an nn.Module attribute type (Tensor | Module): set it as the plain attribute it is
            setattr(model, "rnnx_data", DataSpec.from_dict(data, f"{p}: extra.data"))  # noqa: B010 - read by rnnx.exporter.contract.data_spec
        except SpecError as e:
            raise CheckpointError(str(e)) from None
    return model.eval()


def load_extra(path: PathLike) -> dict:
    """The ``extra`` dict saved with the checkpoint (empty if none)."""
    _, meta, _ = _read(path)
    return dict(meta.get("extra") or {})
