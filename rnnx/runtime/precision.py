"""The onnxruntime session options a file's precision needs, set in one place.

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
import logging
import mmap
import os
from typing import Optional

import onnxruntime as ort

from rnnx.spec import METADATA_KEY

logger = logging.getLogger(__name__)

# precision -> the highest graph optimisation level onnxruntime survives with it
MAX_LEVEL = {"fp16": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}
# precision -> session config entries it needs
CONFIG = {"int8": {"session.disable_quant_qdq": "1"}}
_METADATA_PROPS = 14  # ModelProto field number of metadata_props (StringStringEntryProto)


def _varint(buf: "mmap.mmap | bytes", pos: int) -> tuple[int, int]:
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


def _fields(buf: "mmap.mmap | bytes", start: int, end: int):
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


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without parsing the graph.

    Returns an empty dict for anything that is not a readable ONNX protobuf (the
    ``.ort`` format, a truncated file): the session creation reports those properly.
    """
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            props: dict[str, str] = {}
            for number, span in _fields(buf, 0, len(buf)):
                if number != _METADATA_PROPS or span is None:
                    continue
                entry = {n: bytes(buf[s[0]:s[1]]).decode("utf-8")
                         for n, s in _fields(buf, *span) if s is not None}
                props[entry.get(1, "")] = entry.get(2, "")
            return props
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def file_precision(path: str | os.PathLike) -> str:
    """The ``precision`` recorded in a file's ``rnnx.spec`` ("fp32" when absent or foreign)."""
    text = onnx_metadata(path).get(METADATA_KEY)
    try:
        precision = json.loads(text).get("precision", "fp32") if text else "fp32"
    except (json.JSONDecodeError, AttributeError):
        return "fp32"  # a malformed spec is reported by the contract reader, not here
    return precision if isinstance(precision, str) else "fp32"


def _config_entry(options: ort.SessionOptions, key: str) -> Optional[str]:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for keys never set
        return None


def session_options_for(precision: str,
                        options: Optional[ort.SessionOptions] = None) -> Optional[ort.SessionOptions]:
    """Session options that let onnxruntime load a graph of ``precision``.

    Args:
        precision: "fp32", "fp16" or "int8" (from the file's contract).
        options: the caller's options; their optimisation level is lowered and config
            entries added in place when the precision needs it (logged), the rest is kept.

    Returns:
        ``options`` (or fresh options when the precision needs some and none were given).
    """
    cap, config = MAX_LEVEL.get(precision), CONFIG.get(precision, {})
    if cap is None and not config:
        return options
    if options is None:
        options = ort.SessionOptions()
    for key, value in config.items():
        if _config_entry(options, key) != value:
            logger.debug("%s graph: session config %s = %s", precision, key, value)
            options.add_session_config_entry(key, value)
    if cap is not None and int(options.graph_optimization_level) > int(cap):
        logger.info("%s graph: optimisation level lowered from %s to %s (onnxruntime's "
                    "NchwcTransformer crashes on fp16 graphs)", precision,
                    options.graph_optimization_level, cap)
        options.graph_optimization_level = cap
    return options
