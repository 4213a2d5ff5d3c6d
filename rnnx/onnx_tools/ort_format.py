"""The onnxruntime mobile format (``.ort``): an optimized, flatbuffer copy of an ONNX file.

The ``rnnx.spec`` metadata survives the conversion, so :class:`rnnx.runtime.StreamingSession`
and ``rnnx inspect`` read a ``.ort`` file like the ``.onnx`` it came from. The graph is
optimized at onnxruntime's *basic* level (constant folding, redundant node removal): the
level onnxruntime recommends for ``.ort`` files that may run on other execution providers
(NNAPI, CoreML) and the one fp16 graphs load with.

A step graph recorded in the source's spec (``model.step.onnx``) is not converted: the
``.ort`` file's spec has ``step_graph`` cleared, and its runtime steps through the main graph.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rnnx.errors import ExportError, ModelFileError
from rnnx.onnx_tools.graph import load_onnx, store_spec, stored_spec
from rnnx.runtime.backend import OrtBackend, convert_to_ort, open_graph

ORT_MAGIC = b"ORTM"  # flatbuffer file identifier at bytes 4..8 of every .ort file


def is_ort_file(head: bytes) -> bool:
    """True when the first 8 bytes of a file are those of the onnxruntime format."""
    return len(head) >= 8 and head[4:8] == ORT_MAGIC


def to_ort(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert an rnnx ``.onnx`` file to the onnxruntime format, keeping its ``rnnx.spec``.

    The spec's ``step_graph`` (a file beside the ``.onnx``, not converted) is cleared.

    Args:
        src: the ``.onnx`` file.
        dst: the ``.ort`` file to write (parent folders are created).

    Returns:
        ``dst`` as a Path.

    Raises:
        ModelFileError: ``src`` is no regular file.
        ExportError: onnxruntime cannot load or convert the graph.
    """
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        convert_to_ort(_without_step_graph(src), out)
    except RuntimeError as e:  # onnxruntime's own message
        raise ExportError(f"{src}: onnxruntime cannot convert it to the .ort format ({str(e)[:200]})") from None
    return out


def _without_step_graph(src: str | os.PathLike) -> str | bytes:
    """``src``'s path, or its bytes with the spec's ``step_graph`` cleared when it has one."""
    try:
        model = load_onnx(src)
    except ModelFileError:
        if not os.path.isfile(src):  # missing, a folder, a FIFO: load_onnx's message says which
            raise
        return os.fspath(src)  # a file but not ONNX: onnxruntime says why
    spec = stored_spec(model, src)
    if spec is None or spec.step_graph is None:
        return os.fspath(src)
    store_spec(model, dataclasses.replace(spec, step_graph=None))
    return model.SerializeToString()


def _session(path: str | os.PathLike) -> OrtBackend:
    try:
        return open_graph(path, "fp32")
    except ModelFileError as e:
        raise ModelFileError(f"{path}: not a loadable .ort model ({str(e)[:300]})") from None


def ort_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The custom metadata of a ``.ort`` file, read by onnxruntime (it parses the format)."""
    return _session(path).metadata()


def ort_io(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """Graph inputs and outputs of a ``.ort`` file as ``{name, shape, dtype}`` dicts."""
    sess = _session(path)
    return [v.to_dict() for v in sess.inputs()], [v.to_dict() for v in sess.outputs()]
