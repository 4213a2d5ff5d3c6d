"""What a file's precision needs from onnxruntime, as data; the backend applies it when it opens the file.

- fp16 graphs (written by :func:`rnnx.onnx_tools.quantize`) crash onnxruntime's
  NchwcTransformer at session creation (a native crash, not an exception: onnxruntime
  1.31-1.32 on CPU) unless the optimisation level stays at ``ORT_ENABLE_EXTENDED``.
- int8 graphs store GRU/RNN/Conv weights as int8 behind ``DequantizeLinear``;
  ``session.disable_quant_qdq`` lets onnxruntime fold those into float weights once at load
  instead of dequantizing them on every step (2x slower for a GRU H=256).

The precision must therefore be known *before* the session exists: :func:`file_precision`
reads it from the ONNX file's ``rnnx.spec`` metadata with a minimal protobuf walk (no
``onnx`` import; the JavaScript client in ``examples/js`` does the same walk).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator

from rnnx.spec import METADATA_KEY

# precision -> the highest graph optimisation level (RuntimeOptions.optimization) onnxruntime survives with it
MAX_LEVEL = {"fp16": "extended"}
# precision -> session config entries it needs
CONFIG = {"int8": {"session.disable_quant_qdq": "1"}}
_METADATA_PROPS = 14  # ModelProto field number of metadata_props (StringStringEntryProto)


def _varint(buf: mmap.mmap | bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: mmap.mmap | bytes, start: int, end: int) -> Iterator[tuple[int, tuple[int, int] | None]]:
    """(field number, payload bytes or None) of each field of one protobuf message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            yield number, None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield number, (pos, pos + size)
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _metadata(buf: mmap.mmap | bytes) -> dict[str, str]:
    props: dict[str, str] = {}
    for number, span in _fields(buf, 0, len(buf)):
        if number != _METADATA_PROPS or span is None:
            continue
        entry = {n: bytes(buf[s[0] : s[1]]).decode("utf-8") for n, s in _fields(buf, *span) if s is not None}
        props[entry.get(1, "")] = entry.get(2, "")
    return props


def onnx_metadata(source: str | os.PathLike | bytes) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (a path, or its bytes), read without parsing the graph.

    Returns an empty dict for anything that is not a readable ONNX protobuf (the
    ``.ort`` format, a truncated file): the session creation reports those properly.
    """
    try:
        if isinstance(source, bytes):
            return _metadata(source)
        with open(source, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _metadata(buf)
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def file_precision(source: str | os.PathLike | bytes) -> str:
    """The ``precision`` recorded in a file's ``rnnx.spec`` ("fp32" when absent or foreign); a path or its bytes."""
    text = onnx_metadata(source).get(METADATA_KEY)
    try:
        precision = json.loads(text).get("precision", "fp32") if text else "fp32"
    except (json.JSONDecodeError, AttributeError):
        return "fp32"  # a malformed spec is reported by the contract reader, not here
    return precision if isinstance(precision, str) else "fp32"
