"""Read the state contract back from an exported file (ONNX, TorchScript, torch.export, ExecuTorch).

TorchScript and torch.export (``.pt2``) files are zip archives; the spec is read from their
``extra/rnnx.spec`` member with :mod:`zipfile`, so nothing in the file is executed or
unpickled. An ExecuTorch program (``.pte``) carries it as a constant method, read through
ExecuTorch's runtime (:mod:`rnnx.runtime.executorch_backend`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import onnx

from rnnx.atomic import path_kind
from rnnx.errors import ModelFileError, SpecError
from rnnx.onnx_tools.graph import load_onnx, stored_spec
from rnnx.onnx_tools.ort_format import is_ort_file, ort_metadata
from rnnx.spec import METADATA_KEY, ModelSpec

ZIP_MAGIC = b"PK\x03\x04"  # TorchScript and torch.export archives are zip files
PTE_MAGIC = b"ET"  # bytes 4-5 of an ExecuTorch program (flatbuffer file identifier "ET" + version)


def _zip_format(path: Path) -> str:
    """ "pt2" for a torch.export archive (it has an ``archive_format`` member), else "torchscript"."""
    try:
        with zipfile.ZipFile(path) as z:
            return "pt2" if any(n.endswith("/archive_format") for n in z.namelist()) else "torchscript"
    except (zipfile.BadZipFile, OSError):
        return "torchscript"  # read_spec reports the corrupt archive


def file_format(path: str | os.PathLike) -> str:
    """``"onnx"``, ``"ort"`` (onnxruntime format), ``"torchscript"``, ``"pt2"`` (torch.export) or
    ``"pte"`` (ExecuTorch), judged by content.

    Raises:
        ModelFileError: missing, a directory, or empty.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelFileError(f"{p}: expected a model file (.onnx or TorchScript .pt), got {path_kind(p)}")
    with open(p, "rb") as f:
        head = f.read(8)
    if not head:
        raise ModelFileError(f"{p}: file is empty, expected an ONNX or TorchScript model")
    if is_ort_file(head):
        return "ort"
    if head[:4] == ZIP_MAGIC:
        return _zip_format(p)
    if head[4:6] == PTE_MAGIC and head[6:8].isdigit():
        return "pte"
    return "onnx"


def _spec_text_torchscript(path: str | os.PathLike) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(f"/extra/{METADATA_KEY}")]
            if not any(
                n.endswith("/data.pkl") or n.endswith("/constants.pkl") or n.endswith("/archive_format")
                for n in z.namelist()
            ):
                raise ModelFileError(f"{path}: a zip file but not a TorchScript model")
            return z.read(names[0]).decode("utf-8") if names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: corrupt TorchScript model ({e})") from None


def read_spec(path: str | os.PathLike) -> ModelSpec:
    """The :class:`ModelSpec` stored in an exported ``.onnx``, ``.ort`` or TorchScript file.

    Args:
        path: the exported file.

    Returns:
        The parsed and validated spec.

    Raises:
        ModelFileError: the file is missing, corrupt, not a model, or has no ``rnnx.spec``.
        SpecError: the stored spec is malformed.

    Example::

        read_spec("model.onnx").state_by_name()["h"].shape  # -> (1, 'batch', 32)
    """
    fmt = file_format(path)
    if fmt == "onnx":
        return load_with_spec(path)[1]
    if fmt == "ort":
        text = ort_metadata(path).get(METADATA_KEY)
    elif fmt == "pte":
        from rnnx.runtime.executorch_backend import pte_spec_text

        text = pte_spec_text(Path(path))
    else:  # torchscript, pt2
        text = _spec_text_torchscript(path)
    if text is None:
        raise _no_spec(path, fmt)
    try:
        return ModelSpec.from_json(text)
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None


def load_with_spec(path: str | os.PathLike) -> tuple[onnx.ModelProto, ModelSpec]:
    """An rnnx ONNX file parsed once: the model (without external data) and its spec.

    Raises:
        ModelFileError: not ONNX, or no ``rnnx.spec``. SpecError: the stored spec is malformed.
    """
    model = load_onnx(path)
    spec = stored_spec(model, path)
    if spec is None:
        raise _no_spec(path, "onnx")
    return model, spec


def _no_spec(path: str | os.PathLike, fmt: str) -> ModelFileError:
    return ModelFileError(
        f"{path}: no {METADATA_KEY!r} metadata; this {fmt} file was not "
        f"exported by rnnx (re-export it with `rnnx export`)"
    )


def has_spec(path: str | os.PathLike) -> bool:
    """True when ``path`` carries an ``rnnx.spec`` (well-formed or not): an rnnx model file."""
    try:
        read_spec(path)
    except SpecError:
        return True
    except ModelFileError:
        return False
    return True


__all__ = ["ZIP_MAGIC", "file_format", "has_spec", "load_onnx", "load_with_spec", "read_spec"]
