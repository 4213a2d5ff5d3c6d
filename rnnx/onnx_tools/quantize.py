"""Reduced-precision copies of an exported ONNX file: int8 (quantized) and fp16 (half).

- **int8**: onnxruntime's dynamic quantization (weights int8, activations quantized per
  call). Native ``LSTM`` ops become ``DynamicQuantizeLSTM``; ``MatMul`` (heads, projections,
  the gate matmuls of Scan step bodies) become ``MatMulInteger``. onnxruntime has no
  quantized ``GRU`` or ``RNN`` op, and its ``ConvInteger`` stepped a ConvLSTM H=64 4.3x
  slower than the float Conv (CPU, onnxruntime 1.32): those compute in float32, but their
  weights are *stored* int8 (per channel) behind ``DequantizeLinear`` nodes that
  onnxruntime folds into float weights once, at load, when ``session.disable_quant_qdq``
  is set (the runtime sets it for int8 files, :mod:`rnnx.runtime.precision`). So every
  family's int8 file is about 0.26-0.3x the float one; only LSTM and MatMul steps get faster.
- No static (calibrated) int8: onnxruntime's static quantizer covers neither its LSTM/GRU/RNN
  ops nor Scan bodies, which leaves only the head MatMul; quantized statically from a
  recording it erred 0.075 on a tiny LSTM against 0.002 for the dynamic head (the recurrent
  state reaches ranges a short recording does not show), for no speed gain.
- **fp16**: weights and compute in half precision with float32 inputs, outputs and states
  (onnxconverter-common's converter, ``keep_io_types``). onnxruntime needs a lower
  optimisation level to load such graphs: the runtime sets it from the contract
  (:mod:`rnnx.runtime.precision`). On CPU onnxruntime runs most fp16 ops through inserted
  casts, so fp16 halves the file but does not speed up a CPU step.

The written file keeps its ``rnnx.spec`` with ``precision`` set and ``step_graph`` cleared (the
source's single-step graph is float32 and not converted: the copy steps through its own graph);
:func:`check_parity` then judges it with that precision's tolerance.

Example::

    from rnnx.onnx_tools import quantize
    quantize("model.onnx", "model.int8.onnx", precision="int8").size_ratio  # -> 0.28
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from rnnx.errors import ConfigError, ExportError
from rnnx.onnx_tools.graph import all_graphs, load_onnx_with_weights, stored_bytes, subgraphs
from rnnx.onnx_tools.runners import onnx_runner
from rnnx.onnx_tools.spec_io import file_format, load_onnx, load_with_spec
from rnnx.onnx_tools.step_graph import agrees_at_one_step, commit_onnx, spec_probe
from rnnx.runtime.step_graph import find_step_graph
from rnnx.spec import PRECISIONS, ModelSpec

logger = logging.getLogger(__name__)

REDUCED = tuple(p for p in PRECISIONS if p != "fp32")  # what quantize() can write
INT8_OPS = ("LSTM", "MatMul")  # op types handed to onnxruntime's dynamic quantizer
# op types onnxruntime has no int8 kernel for (or a slow one): their weights are stored int8 and
# dequantized once at load -> (weight input index, per-channel axis)
WEIGHT_ONLY: dict[str, tuple[tuple[int, int], ...]] = {
    "GRU": ((1, 1), (2, 1)),  # W (dirs, 3H, in), R (dirs, 3H, H): per gate row
    "RNN": ((1, 1), (2, 1)),
    "Conv": ((1, 0),),  # W (out, in, kh, kw): per output channel
}
MIN_OPSET_WEIGHT_ONLY = 13  # DequantizeLinear with a per-channel axis


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize` wrote.

    Attributes:
        path: the written file.
        spec: its contract (``precision`` set).
        precision: "fp16" or "int8".
        source_bytes: size of the float32 source file (with its external-data file, if any).
        bytes: size of the written file.
        quantized: op type -> how many compute in int8 (int8) or were converted (fp16).
        kept_float: op type -> how many compute in float32 (GRU, RNN, Conv).
        notes: anything a user should know about the result.
        weights_int8: op type -> how many of the float32 ones store their weights as int8.
    """

    path: Path
    spec: ModelSpec
    precision: str
    source_bytes: int
    bytes: int
    quantized: dict[str, int] = field(default_factory=dict)
    kept_float: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    weights_int8: dict[str, int] = field(default_factory=dict)
    step_graph_path: Path | None = None  # the source's step graph at this precision, beside ``path``

    @property
    def size_ratio(self) -> float:
        """Written size / source size."""
        return self.bytes / self.source_bytes if self.source_bytes else float("nan")


def _op_counts(graph: onnx.GraphProto) -> collections.Counter:
    return collections.Counter(n.op_type for g in all_graphs(graph) for n in g.node)


def _body_reads(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph's nodes read, including its own nested bodies."""
    return {i for g in all_graphs(graph) for n in g.node for i in n.input if i}


def localize_body_weights(model: onnx.ModelProto) -> int:
    """Move initializers that only one Scan/Loop body reads into that body.

    onnxruntime's quantizer only quantizes weights that are initializers of the graph that
    uses them, so a body reading outer-scope weights stays float (or the quantizer stops).

    Returns:
        How many initializers moved.
    """
    main = model.graph
    top_reads = {i for n in main.node for i in n.input if i} | {o.name for o in main.output}
    bodies = [g for n in main.node for g in subgraphs(n)]
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


def _dequantized(name: str, w: np.ndarray, axis: int) -> tuple[list[onnx.TensorProto], onnx.NodeProto]:
    """int8 copy of ``w`` (symmetric, per channel along ``axis``) and the node restoring ``name``."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    scale = (np.abs(w).max(axis=other) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    zero = np.zeros(scale.shape, np.int8)
    tensors = [
        numpy_helper.from_array(q, f"{name}_int8"),
        numpy_helper.from_array(scale, f"{name}_scale"),
        numpy_helper.from_array(zero, f"{name}_zero"),
    ]
    node = onnx.helper.make_node(
        "DequantizeLinear", [t.name for t in tensors], [name], name=f"{name}_dequantize", axis=axis
    )
    return tensors, node


def store_weights_int8(model: onnx.ModelProto) -> dict[str, int]:
    """Store the float weights of GRU/RNN/Conv nodes as int8 + DequantizeLinear, in place.

    onnxruntime folds the DequantizeLinear nodes into float weights when it loads the file
    with ``session.disable_quant_qdq`` (the runtime sets it for int8 files), so the file is
    about 4x smaller and runs at float speed.

    Returns:
        op type -> how many nodes had their weights stored as int8.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    done: collections.Counter = collections.Counter()
    if opset < MIN_OPSET_WEIGHT_ONLY:
        return {}
    for graph in all_graphs(model.graph):
        inits = {t.name: t for t in graph.initializer}
        nodes: list[onnx.NodeProto] = []
        for node in graph.node:
            converted = False
            for index, axis in WEIGHT_ONLY.get(node.op_type, ()):
                t = inits.pop(node.input[index], None) if index < len(node.input) else None
                if t is None or t.data_type != onnx.TensorProto.FLOAT:
                    continue
                tensors, dq = _dequantized(t.name, numpy_helper.to_array(t), axis)
                graph.initializer.remove(t)
                graph.initializer.extend(tensors)
                nodes.append(dq)
                converted = True
            done[node.op_type] += converted
        if nodes:
            rest = list(graph.node)
            del graph.node[:]
            graph.node.extend(nodes + rest)  # DequantizeLinear reads initializers only: first is fine
    return {op: n for op, n in done.items() if n}


def _int8(src: Path, dst: Path) -> dict[str, int]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = load_onnx_with_weights(src)  # an external-data file's weights are read in
    moved = localize_body_weights(model)
    stored = store_weights_int8(model)
    has_bodies = any(subgraphs(n) for n in model.graph.node)
    with tempfile.TemporaryDirectory(prefix="rnnx-quant-") as tmp, _quiet_quantizer():
        staged = Path(tmp) / "staged.onnx"
        onnx.save(model, os.fspath(staged))
        quantize_dynamic(
            os.fspath(staged),
            os.fspath(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(INT8_OPS),
            extra_options={"EnableSubgraph": has_bodies},
        )
    if moved:
        logger.debug("moved %d body-only weights into their Scan bodies", moved)
    return stored


def _fp16(src: Path, dst: Path) -> list[str]:
    try:
        from onnxconverter_common import float16
    except ImportError:  # an optional dependency of the export extra
        raise ConfigError(
            "precision fp16: needs onnxconverter-common (pip install 'rnnx[cpu]' or pip install onnxconverter-common)"
        ) from None
    model = float16.convert_float_to_float16(load_onnx_with_weights(src), keep_io_types=True)
    onnx.save(model, os.fspath(dst))
    return ["CPU onnxruntime runs most fp16 ops through casts: expect a smaller file, not a faster CPU step"]


def _smoke(path: Path, spec: ModelSpec) -> None:
    """Load and run one step, so a graph onnxruntime rejects never leaves here."""
    run = onnx_runner(os.fspath(path), spec)
    shape = list(spec.input.concrete_shape(1))
    if spec.input.time_axis is not None:
        shape.insert(spec.input.time_axis, 1)
    x = np.zeros(shape, spec.input.dtype)
    try:
        run(x, [np.zeros(s.concrete_shape(1), s.dtype) for s in spec.state])
    except Exception as e:  # onnxruntime's own error types
        raise ExportError(
            f"{path}: the {spec.precision} graph does not run on onnxruntime ({' '.join(str(e).split())[:200]})"
        ) from None


def quantize(src: str | os.PathLike, dst: str | os.PathLike, *, precision: str = "int8") -> QuantizeResult:
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
    fmt = file_format(src)
    if fmt != "onnx":
        raise ConfigError(f"{src}: expected an ONNX file, got a {fmt} file")
    source, spec = load_with_spec(src)  # parsed once for its contract and its op counts
    if spec.precision != "fp32":
        raise ConfigError(
            f"{src}: expected a float32 (fp32) file, got precision "
            f"{spec.precision!r}; quantize the float export instead"
        )
    before = _op_counts(source.graph)
    dst.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    stored: dict[str, int] = {}
    # everything is made and checked in a private folder; ``dst`` (and its step graph) are
    # committed together at the end: a failed or killed run leaves ``dst`` as it was
    with tempfile.TemporaryDirectory(prefix="rnnx-quant-out-") as tmp:
        staged = Path(tmp) / dst.name
        if precision == "int8":
            stored = _int8(src, staged)
        else:
            notes = _fp16(src, staged)
        out_spec = dataclasses.replace(spec, precision=precision, step_graph=None)  # the step graph is src's
        _smoke(staged, out_spec)
        model = load_onnx(staged)
        step = _step_graph(src, spec, model, dst, out_spec, precision)
        out_spec, step_path = commit_onnx(model, dst, out_spec, step)  # as export_onnx commits its file
    quantized, kept = _summarise(before, model.graph, precision)
    if stored:
        notes.append(
            f"{', '.join(sorted(stored))}: weights stored int8, computed in float32 "
            f"(onnxruntime has no int8 kernel for them, or a slower one)"
        )
    return QuantizeResult(
        dst,
        out_spec,
        precision,
        stored_bytes(src),  # with the weights file beside it, if it keeps one
        dst.stat().st_size,
        quantized,
        kept,
        tuple(notes),
        stored,
        step_path,
    )


def _step_graph(
    src: Path, spec: ModelSpec, converted: onnx.ModelProto, dst: Path, out_spec: ModelSpec, precision: str
) -> bytes | None:
    """The source's step graph at ``precision``, checked against ``converted`` (the converted
    model) at T=1: its bytes, to be committed with ``dst``.

    None (single steps then run ``dst`` itself) when the source has no step graph, its file
    is missing or altered, or the converted one disagrees with the converted model.
    """
    if spec.step_graph is None:
        return None
    source, digest = find_step_graph(src, spec.step_graph)
    if digest != spec.step_graph.sha256:
        logger.warning(
            "%s: its step graph %s is missing or altered; %s gets none", src.name, spec.step_graph.file, dst.name
        )
        return None
    with tempfile.TemporaryDirectory(prefix="rnnx-quant-step-") as tmp:
        step = Path(tmp) / "step.onnx"
        _int8(source, step) if precision == "int8" else _fp16(source, step)
        data = step.read_bytes()
    if not agrees_at_one_step(converted, data, out_spec, spec_probe(out_spec)):
        return None  # the WARNING says why
    return data


def _summarise(
    before: collections.Counter, graph: onnx.GraphProto, precision: str
) -> tuple[dict[str, int], dict[str, int]]:
    if precision == "fp16":
        halves = sum(t.data_type == onnx.TensorProto.FLOAT16 for g in all_graphs(graph) for t in g.initializer)
        return {"float16 initializers": halves}, {}
    after = _op_counts(graph)
    quantized = {op: before[op] - after[op] for op in INT8_OPS if before[op] > after[op]}
    kept = {op: after[op] for op in WEIGHT_ONLY if after[op]}
    return quantized, kept
