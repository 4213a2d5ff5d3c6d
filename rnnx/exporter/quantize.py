"""Reduced-precision copies of an exported ONNX file: int8 (quantized) and fp16 (half).

- **int8**: onnxruntime's dynamic quantization (weights int8, activations quantized per
  call). Native ``LSTM`` ops become ``DynamicQuantizeLSTM``; ``MatMul`` (heads, projections,
  the gate matmuls of Scan step bodies) become ``MatMulInteger``. onnxruntime has no
  quantized ``GRU`` or ``RNN`` op: those stay float32 and only the other matmuls shrink
  (the result's ``size_ratio`` says how much). ``Conv`` is left float: onnxruntime's
  ``ConvInteger`` stepped a ConvLSTM H=64 4.3x slower than the float Conv on CPU
  (onnxruntime 1.32), so a ConvLSTM's int8 file is about its float size.
- No static (calibrated) int8: onnxruntime's static quantizer covers neither its LSTM/GRU/RNN
  ops nor Scan bodies, which leaves only the head MatMul; quantized statically from a
  recording it erred 0.075 on a tiny LSTM against 0.002 for the dynamic head (the recurrent
  state reaches ranges a short recording does not show), for no speed gain.
- **fp16**: weights and compute in half precision with float32 inputs, outputs and states
  (onnxconverter-common's converter, ``keep_io_types``). onnxruntime needs a lower
  optimisation level to load such graphs: the runtime sets it from the contract
  (:mod:`rnnx.runtime.precision`). On CPU onnxruntime runs most fp16 ops through inserted
  casts, so fp16 halves the file but does not speed up a CPU step.

The written file keeps its ``rnnx.spec`` with ``precision`` set; :func:`check_parity` then
judges it with that precision's tolerance.

Example:
    >>> from rnnx.exporter import quantize                      # doctest: +SKIP
    >>> quantize("model.onnx", "model.int8.onnx", precision="int8").size_ratio  # doctest: +SKIP
    0.28
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx

from rnnx.errors import ConfigError, ExportError
from rnnx.exporter.spec_io import file_format, load_onnx, read_spec
from rnnx.spec import METADATA_KEY, PRECISIONS, ModelSpec

logger = logging.getLogger(__name__)

REDUCED = tuple(p for p in PRECISIONS if p != "fp32")  # what quantize() can write
INT8_OPS = ("LSTM", "MatMul")  # op types handed to onnxruntime's dynamic quantizer
FLOAT_ONLY = ("GRU", "RNN")  # recurrent ops onnxruntime cannot quantize: they stay float32


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize` wrote.

    Attributes:
        path: the written file.
        spec: its contract (``precision`` set).
        precision: "fp16" or "int8".
        source_bytes: size of the float32 source file.
        bytes: size of the written file.
        quantized: op type -> how many were quantized (int8) or converted (fp16).
        kept_float: op type -> how many stayed float32 because onnxruntime cannot quantize them.
        notes: anything a user should know about the result.
    """

    path: Path
    spec: ModelSpec
    precision: str
    source_bytes: int
    bytes: int
    quantized: dict[str, int] = field(default_factory=dict)
    kept_float: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def size_ratio(self) -> float:
        """Written size / source size."""
        return self.bytes / self.source_bytes if self.source_bytes else float("nan")


def _graphs(graph: onnx.GraphProto):
    """``graph`` and every subgraph (Scan/Loop/If bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _op_counts(graph: onnx.GraphProto) -> collections.Counter:
    return collections.Counter(n.op_type for g in _graphs(graph) for n in g.node)


def _body_reads(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph's nodes read, including its own nested bodies."""
    return {i for g in _graphs(graph) for n in g.node for i in n.input if i}


def localize_body_weights(model: onnx.ModelProto) -> int:
    """Move initializers that only one Scan/Loop body reads into that body.

    onnxruntime's quantizer only quantizes weights that are initializers of the graph that
    uses them, so a body reading outer-scope weights stays float (or the quantizer stops).

    Returns:
        How many initializers moved.
    """
    main = model.graph
    top_reads = {i for n in main.node for i in n.input if i} | {o.name for o in main.output}
    bodies = [attr.g for n in main.node for attr in n.attribute
              if attr.type == onnx.AttributeProto.GRAPH]
    reads = [_body_reads(b) for b in bodies]
    moved = 0
    for init in list(main.initializer):
        users = [b for b, r in zip(bodies, reads) if init.name in r]
        if init.name in top_reads or len(users) != 1:
            continue
        users[0].initializer.append(init)
        main.initializer.remove(init)
        moved += 1
    return moved


class _ToDebug(logging.Filter):
    """Re-log onnxruntime quantizer chatter (it logs on the root logger) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger.debug("onnxruntime.quantization: %s", record.getMessage())
        return False


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root, f = logging.getLogger(), _ToDebug()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def _int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = load_onnx(src)
    moved = localize_body_weights(model)
    has_bodies = any(attr.type == onnx.AttributeProto.GRAPH
                     for n in model.graph.node for attr in n.attribute)
    with tempfile.TemporaryDirectory(prefix="rnnx-quant-") as tmp, _quiet_quantizer():
        staged = Path(tmp) / "staged.onnx"
        onnx.save(model, os.fspath(staged))
        quantize_dynamic(os.fspath(staged), os.fspath(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(INT8_OPS),
                         extra_options={"EnableSubgraph": has_bodies})
    if moved:
        logger.debug("moved %d body-only weights into their Scan bodies", moved)


def _fp16(src: Path, dst: Path) -> list[str]:
    try:
        from onnxconverter_common import float16
    except ImportError:  # an optional dependency of the export extra
        raise ConfigError("precision fp16: needs onnxconverter-common "
                          "(pip install 'rnnx[export]' or pip install onnxconverter-common)") from None
    model = float16.convert_float_to_float16(load_onnx(src), keep_io_types=True)
    onnx.save(model, os.fspath(dst))
    return ["CPU onnxruntime runs most fp16 ops through casts: expect a smaller file, "
            "not a faster CPU step"]


def _write_spec(path: Path, spec: ModelSpec) -> None:
    model = onnx.load(os.fspath(path))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = spec.to_json()
    onnx.save(model, os.fspath(path))


def _smoke(path: Path, spec: ModelSpec) -> None:
    """Load and run one step, so a graph onnxruntime rejects never leaves here."""
    from rnnx.exporter.runners import onnx_runner

    run = onnx_runner(os.fspath(path), spec)
    shape = list(spec.input.step_shape(1))
    if spec.input.time_axis is not None:
        shape.insert(spec.input.time_axis, 1)
    x = np.zeros(shape, spec.input.dtype)
    try:
        run(x, [np.zeros(s.concrete_shape(1), s.dtype) for s in spec.state])
    except Exception as e:  # onnxruntime's own error types
        raise ExportError(f"{path}: the {spec.precision} graph does not run on onnxruntime "
                          f"({' '.join(str(e).split())[:200]})") from None


def quantize(src: str | os.PathLike, dst: str | os.PathLike, *,
             precision: str = "int8") -> QuantizeResult:
    """Write a reduced-precision copy of an rnnx ONNX file.

    Args:
        src: a float32 ``.onnx`` file exported by rnnx.
        dst: the file to write (parent folders are created).
        precision: "int8" (dynamic quantization) or "fp16" (half weights and compute,
            float32 I/O).

    Returns:
        A :class:`QuantizeResult` (path, spec, sizes, what was and was not quantized).

    Raises:
        ConfigError: an unknown precision, or a source that is not a float32 ONNX file.
        ModelFileError: ``src`` is not an rnnx ONNX file.
        ExportError: onnxruntime cannot run the result.
    """
    if precision not in REDUCED:
        raise ConfigError(f"precision: expected one of {', '.join(REDUCED)}, got {precision!r}")
    src, dst = Path(src), Path(dst)
    spec = read_spec(src)
    if spec.precision != "fp32":
        raise ConfigError(f"{src}: expected a float32 (fp32) file, got precision "
                          f"{spec.precision!r}; quantize the float export instead")
    if file_format(src) != "onnx":
        raise ConfigError(f"{src}: expected an ONNX file, got a {file_format(src)} file")
    before = _op_counts(load_onnx(src).graph)
    dst.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if precision == "int8":
        _int8(src, dst)
    else:
        notes = _fp16(src, dst)
    out_spec = dataclasses.replace(spec, precision=precision)
    _write_spec(dst, out_spec)
    _smoke(dst, out_spec)
    quantized, kept = _summarise(before, load_onnx(dst).graph, precision)
    if kept:
        notes.append(f"onnxruntime cannot quantize {', '.join(sorted(kept))}: kept float32")
    return QuantizeResult(dst, out_spec, precision, src.stat().st_size, dst.stat().st_size,
                          quantized, kept, tuple(notes))


def _summarise(before: collections.Counter, graph: onnx.GraphProto,
               precision: str) -> tuple[dict[str, int], dict[str, int]]:
    if precision == "fp16":
        halves = sum(t.data_type == onnx.TensorProto.FLOAT16
                     for g in _graphs(graph) for t in g.initializer)
        return {"float16 initializers": halves}, {}
    after = _op_counts(graph)
    quantized = {op: before[op] - after[op] for op in ("LSTM", "MatMul", "Conv")
                 if before[op] > after[op]}
    kept = {op: after[op] for op in FLOAT_ONLY if after[op]}
    return quantized, kept
