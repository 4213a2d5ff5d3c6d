"""Make an ONNX file whose LSTM/GRU/RNN nodes keep their state inside the graph streamable.

Plain ``torch.onnx.export`` of a model called without ``h0`` gives LSTM/GRU/RNN nodes
whose initial state is a zero constant (or absent) and whose final state (``Y_h``/``Y_c``)
is dropped: the file can only run whole sequences. :func:`make_stateful` does what
OpenVINO's LowLatency2 transformation does for its own runtime, and what projects such as
DeepFilterNet do with one-off patch scripts for their GRUs, for any such file:

1. every zero initial state becomes a graph input (``h0_in``, ``c0_in``, ... per node) and
   every final state a graph output (``h0_out``, ...); states that already are graph
   inputs/outputs (``h0``/``hn``) are paired as they are;
2. the data input's batch and time axes become symbolic, and ``Reshape`` shapes that froze
   the export's batch or time size are computed from the tensor at run time; a time-major
   file gets Transposes so that it takes and returns ``(batch, time, ...)``;
3. ``rnnx.spec`` is written (states with ``"batch"`` at their batch axis, data axes), so
   every rnnx tool (StreamingSession, StreamPool, ``rnnx run``) uses the file unchanged;
4. the new file is checked: streamed step by step through ``StreamingSession`` it must
   equal the original run on the whole sequence, and at another batch size and length
   it must equal the original on the same rows and steps. Otherwise nothing is written
   (:class:`~rnnx.errors.ParityError`).

Refused, with the reason: no LSTM/GRU/RNN node (a Scan/Loop recurrence is named), a node
inside a subgraph, a bidirectional node (its outputs need the whole sequence), an initial
state that is a non-zero constant or computed from other tensors, more than one data input.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import ExportError, ModelFileError, NotStreamableError, ParityError, StatefulError
from rnnx.onnx_tools.compare import TOLERANCES, Tolerance, compare
from rnnx.onnx_tools.dynamic_axes import (
    data_axes,
    default_opset,
    dims,
    elem_dtype_name,
    free_reshapes,
    fresh_name,
    np_dtype_name,
    set_dims,
)
from rnnx.onnx_tools.graph import finalize, load_onnx_with_weights, remove_unused_initializers
from rnnx.onnx_tools.rnn_nodes import RNN_OPS, GraphIndex, RecurrentNode, StateSlot, find_recurrent
from rnnx.runtime import StreamingSession
from rnnx.runtime.backend import OrtBackend, open_graph
from rnnx.spec import BATCH, METADATA_KEY, TIME, IOSpec, ModelSpec, StateSpec
from rnnx.version import __version__

logger = logging.getLogger(__name__)

ATOL, RTOL = TOLERANCES[("foreign", "fp32")].atol, TOLERANCES[("foreign", "fp32")].rtol  # the streaming check


@dataclass(frozen=True)
class StatefulResult:
    """What :func:`make_stateful` wrote and how it checked it."""

    path: Path  # the streamable file
    spec: ModelSpec  # its contract (also stored in the file)
    notes: tuple[str, ...]  # what was changed, one line each
    max_abs_err: float  # worst difference of the streaming check
    checked: tuple[str, ...] = field(default_factory=tuple)  # the comparisons that were made

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": os.fspath(self.path),
            "spec": self.spec.to_dict(),
            "notes": list(self.notes),
            "max_abs_err": self.max_abs_err,
            "checked": list(self.checked),
        }


def make_stateful(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    batch_axis: int | None = None,
    time_axis: int | None = None,
    batch_first: bool = True,
    atol: float = ATOL,
    rtol: float = RTOL,
) -> StatefulResult:
    """Turn ``src`` (LSTM/GRU/RNN state kept inside the graph) into streamable ``dst``.

    Args:
        src: an ONNX file, e.g. from plain ``torch.onnx.export(model, x, "m.onnx")``.
        dst: where the streamable file goes (written only once it passed the check).
        batch_axis: the data input's batch axis, where it cannot be read off the graph
            (found by following the input to the first recurrent node otherwise).
        time_axis: the data input's time axis, likewise.
        batch_first: the new file takes and returns ``(batch, time, ...)`` like every rnnx
            file (a time-major original gets a Transpose at its input and output); False
            keeps the original's layout.
        atol: absolute tolerance of the streaming check.
        rtol: relative tolerance of the streaming check.

    Returns:
        A :class:`StatefulResult` (path, spec, notes, max_abs_err).

    Raises:
        ModelFileError: ``src`` is missing or not ONNX, already has an ``rnnx.spec``, or
            keeps its weights in external data.
        NotStreamableError: a bidirectional node.
        StatefulError: the state cannot be exposed (the message says why).
        ParityError: the new file, streamed, does not equal the original (nothing written).

    Example::

        torch.onnx.export(nn.LSTM(8, 16), (torch.zeros(5, 1, 8),), "lstm.onnx")
        make_stateful("lstm.onnx", "lstm_stream.onnx").spec.state[0].shape  # -> (1, 'batch', 16)
    """
    original = _load(src)
    model, spec, layout, notes, frozen = _rewrite(original, src, batch_axis, time_axis, batch_first)
    dst = Path(dst)
    data = model.SerializeToString()
    with tempfile.TemporaryDirectory(prefix="rnnx-stateful-") as tmp:  # checked before anything is written
        staged = Path(tmp) / dst.name
        staged.write_bytes(data)
        err, checked = _check(original, staged, spec, layout, frozen, atol, rtol)
    write_bytes_atomic(dst, data)
    logger.debug("wrote %s: %d states, streaming check max abs err %.2e", dst, len(spec.state), err)
    return StatefulResult(dst, spec, tuple(notes), err, tuple(checked))


# ---------------------------------------------------------------------------- loading
def _load(src: str | os.PathLike) -> onnx.ModelProto:
    model = load_onnx_with_weights(src)  # an external-data file's weights are read in
    if any(p.key == METADATA_KEY for p in model.metadata_props):
        raise ModelFileError(f"{src}: already has {METADATA_KEY!r} (written by rnnx); it streams as it is")
    return model


def _recurrent_nodes(graph: onnx.GraphProto, src: Any) -> list[RecurrentNode]:
    found = find_recurrent(graph)
    rnns = [r for r in found if r.op in RNN_OPS]
    if not rnns:
        loops = [f"{r.op} '{r.name}' carrying {', '.join(r.carried) or 'nothing'}" for r in found]
        if loops:
            raise StatefulError(
                f"{src}: no LSTM/GRU/RNN node; the recurrence is a loop ({'; '.join(loops)}), "
                f"whose state make_stateful does not expose: re-export the model with "
                f"rnnx.exporter.export_onnx, or stream the file with state_map= if the loop's "
                f"state already is a graph input/output"
            )
        raise StatefulError(
            f"{src}: no recurrent node (LSTM, GRU, RNN, Scan or Loop) in the graph, so no "
            f"state to expose; if the model is recurrent, its time loop was unrolled at "
            f"export (torch.onnx.export(dynamo=True) does this to nn.RNN): re-export with "
            f"dynamo=False, or with rnnx.exporter.export_onnx"
        )
    for r in rnns:
        if r.where != "graph":
            raise StatefulError(
                f"{src}: {r.op} '{r.name}' is {r.where}: a state inside a subgraph "
                f"cannot be exposed as a graph input/output"
            )
        if r.direction == "bidirectional":
            raise NotStreamableError(
                f"{src}: {r.op} '{r.name}' is bidirectional: its outputs need the whole "
                f"sequence (the backward pass starts at the end), so it cannot be "
                f"streamed step by step; run it on whole sequences"
            )
        if r.direction != "forward":
            raise StatefulError(
                f"{src}: {r.op} '{r.name}' runs in direction {r.direction!r}; only forward nodes can be streamed"
            )
    return rnns


# ---------------------------------------------------------------------------- rewriting
def _rewrite(
    original: onnx.ModelProto, src: Any, batch_axis: int | None, time_axis: int | None, batch_first: bool
) -> tuple[onnx.ModelProto, ModelSpec, tuple[IOSpec, IOSpec], list[str], dict[str, int]]:
    """The streamable graph, its spec, the original's data layout (input, output), notes, and
    the batch/time sizes the original froze."""
    model = copy.deepcopy(original)
    graph = model.graph
    rnns = _recurrent_nodes(graph, src)
    idx = GraphIndex(graph)
    existing = _existing_states(rnns, idx, src)
    data_inputs = [n for n in idx.inputs if n not in existing]
    if len(data_inputs) != 1:
        raise StatefulError(
            f"{src}: expected one data input besides the state inputs, got {data_inputs}; "
            f"make_stateful handles single-input models"
        )
    x = next(v for v in graph.input if v.name == data_inputs[0])
    b_ax, t_ax = data_axes(model, x, rnns[0], batch_axis, time_axis, src)
    x_dims = dims(x)
    frozen = {k: d for k, d in ((BATCH, x_dims[b_ax]), (TIME, x_dims[t_ax])) if isinstance(d, int)}
    notes: list[str] = []
    states = _expose_states(graph, rnns, existing, notes)
    _drop_final_state_outputs(graph, rnns, {s.output for s in states}, notes)
    set_dims(x, {b_ax: BATCH, t_ax: TIME})
    notes.append(f"{x.name}: axis {b_ax} is batch, axis {t_ax} is time (both dynamic)")
    _remove_dead_nodes(graph)
    remove_unused_initializers(graph)
    del graph.value_info[:]
    for o in graph.output:
        o.type.tensor_type.ClearField("shape")  # re-derived below
    notes += free_reshapes(model, frozen)
    remove_unused_initializers(graph)
    y_name = next(o.name for o in graph.output if o.name not in {s.output for s in states})
    y_spec = _output_spec(model, x, b_ax, t_ax, y_name, src)
    x_spec = IOSpec(
        x.name,
        tuple(BATCH if i == b_ax else TIME if i == t_ax else int(d) for i, d in enumerate(x_dims)),
        np_dtype_name(x),
        batch_axis=b_ax,
        time_axis=t_ax,
    )
    layout = (x_spec, y_spec)
    if batch_first and (x_spec.batch_axis, x_spec.time_axis, y_spec.batch_axis, y_spec.time_axis) != (0, 1, 0, 1):
        x_spec, y_spec = _transpose_io(graph, x_spec, y_spec)
        notes.append(
            f"{x.name} and {y_spec.name} transposed to (batch, time, ...) like every rnnx file "
            f"(the original is {'time' if layout[0].time_axis == 0 else 'batch'}-major)"
        )
    spec = ModelSpec(
        x_spec,
        y_spec,
        tuple(states),
        streamable=True,
        kind="foreign",
        rnnx_version=__version__,
        opset=default_opset(model),
        exporter="make_stateful",
        extra={"source": Path(src).name, "producer": original.producer_name},
    )
    try:
        finalize(model, spec)  # I/O shapes from the spec, the spec in the metadata, the full checker
    except ExportError as e:
        raise StatefulError(f"{src}: the rewritten graph is not valid ONNX ({e})") from e
    return model, spec, layout, notes, frozen


def _batch_first(io: IOSpec) -> IOSpec:
    rest = [d for i, d in enumerate(io.shape) if i not in (io.batch_axis, io.time_axis)]
    return IOSpec(io.name, (BATCH, TIME, *rest), io.dtype, batch_axis=0, time_axis=1)


def _transpose_io(graph: onnx.GraphProto, x: IOSpec, y: IOSpec) -> tuple[IOSpec, IOSpec]:
    """Put Transposes behind the data input and before the data output: (batch, time, ...) outside."""
    inner_x = fresh_name(graph, f"{x.name}_original_layout")
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == x.name:
                n.input[i] = inner_x
    others = [i for i in range(len(x.shape)) if i not in (x.batch_axis, x.time_axis)]
    perm_in = [
        0 if i == x.batch_axis else 1 if i == x.time_axis else 2 + others.index(i) for i in range(len(x.shape))
    ]  # original axis i <- batch-first axis perm_in[i]
    graph.node.insert(0, helper.make_node("Transpose", [x.name], [inner_x], name=f"{inner_x}_transpose", perm=perm_in))
    inner_y = fresh_name(graph, f"{y.name}_original_layout")
    for n in graph.node:
        for i, name in enumerate(n.output):
            if name == y.name:
                n.output[i] = inner_y
        for i, name in enumerate(n.input):
            if name == y.name:
                n.input[i] = inner_y
    perm_out = [y.batch_axis, y.time_axis] + [i for i in range(len(y.shape)) if i not in (y.batch_axis, y.time_axis)]
    graph.node.append(helper.make_node("Transpose", [inner_y], [y.name], name=f"{inner_y}_transpose", perm=perm_out))
    return _batch_first(x), _batch_first(y)


def _existing_states(rnns: list[RecurrentNode], idx: GraphIndex, src: Any) -> dict[str, str]:
    """{graph input: graph output} for states that already are graph inputs/outputs."""
    pairs: dict[str, str] = {}
    for r in rnns:
        for s in r.slots:
            if s.source == "constant":
                raise StatefulError(
                    f"{src}: the initial {s.kind} of {r.op} '{r.name}' ({s.input_name}) is a "
                    f"non-zero constant; rnnx states start from zeros"
                )
            if s.source == "computed":
                raise StatefulError(
                    f"{src}: the initial {s.kind} of {r.op} '{r.name}' ({s.input_name}) is "
                    f"computed inside the graph (e.g. from an encoder), so it cannot become a "
                    f"state input"
                )
            if s.source != "graph input":
                continue
            if len(s.source_inputs) != 1:
                raise StatefulError(
                    f"{src}: the initial {s.kind} of {r.op} '{r.name}' mixes graph inputs "
                    f"{s.source_inputs}; cannot pair it with one output"
                )
            g = s.source_inputs[0]
            outs = [o for o in s.exposed_as if idx.source(o)[0] != "graph input"]
            if g in pairs:
                outs = [o for o in outs if o == pairs[g]]
            if not outs:
                raise StatefulError(
                    f"{src}: state input {g} feeds the initial {s.kind} of {r.op} '{r.name}', "
                    f"but that node's final {s.kind} reaches no graph output to pair it with"
                )
            pairs[g] = outs[0]
    return pairs


def _expose_states(
    graph: onnx.GraphProto, rnns: list[RecurrentNode], existing: dict[str, str], notes: list[str]
) -> list[StateSpec]:
    """Rewire every zero/absent initial state to a new graph input, final state to an output."""
    states: list[StateSpec] = []
    idx = GraphIndex(graph)
    for g, o in existing.items():
        v = next(v for v in graph.input if v.name == g)
        layout = next(r.layout for r in rnns for s in r.slots if g in s.source_inputs)
        shape = _state_shape(dims(v), 0 if layout else 1, g)
        set_dims(v, {shape.index(BATCH): BATCH})
        states.append(StateSpec(g, shape, np_dtype_name(v), input=g, output=o))
        notes.append(f"paired the existing state {g} -> {o}")
    for k, r in enumerate(rnns):
        dtype = _weight_dtype(idx, r)
        for s in r.slots:
            if s.source == "graph input":
                continue
            name = f"{s.kind}{k}"
            shape = (1, BATCH, r.hidden_size) if r.layout == 0 else (BATCH, 1, r.hidden_size)
            inp, out = fresh_name(graph, f"{name}_in"), fresh_name(graph, f"{name}_out")
            _expose_slot(graph, r.node, s, inp, out)
            graph.input.append(helper.make_tensor_value_info(inp, dtype, list(shape)))
            graph.output.append(helper.make_tensor_value_info(out, dtype, list(shape)))
            states.append(StateSpec(name, shape, elem_dtype_name(dtype), input=inp, output=out))
            notes.append(
                f"{r.op} '{r.name}': initial {s.kind} ({s.source}) -> input {inp}, final {s.kind} -> output {out}"
            )
    return states


_PASS_THROUGH = {"Identity", "Squeeze", "Unsqueeze", "Reshape", "Transpose", "Slice", "Concat", "Cast"}


def _drop_final_state_outputs(
    graph: onnx.GraphProto, rnns: list[RecurrentNode], state_outputs: set[str], notes: list[str]
) -> None:
    """Remove graph outputs that only repeat recurrent nodes' final states (a bare nn.LSTM's h_n, c_n):
    the state outputs now carry them, and a duplicate would stay without a declared shape."""
    finals = {n.output[i] for r in rnns for n in [r.node] for i in (1, 2) if len(n.output) > i and n.output[i]}
    producer = {o: n for n in graph.node for o in n.output if o}

    def from_finals(name: str, depth: int = 0) -> bool:
        if name in finals:
            return True
        node = producer.get(name)
        if node is None or node.op_type not in _PASS_THROUGH or depth > 16:
            return False
        data = [node.input[0]] if node.op_type != "Concat" else [i for i in node.input if i]
        return bool(data) and all(from_finals(i, depth + 1) for i in data)

    for out in list(graph.output):
        if out.name not in state_outputs and from_finals(out.name):
            graph.output.remove(out)
            notes.append(f"output {out.name} dropped: it repeats a final state, which the state outputs carry")


def _expose_slot(graph: onnx.GraphProto, node: onnx.NodeProto, s: StateSlot, inp: str, out: str) -> None:
    while len(node.input) <= s.input_index:
        node.input.append("")
    node.input[s.input_index] = inp
    while len(node.output) <= s.output_index:
        node.output.append("")
    if not node.output[s.output_index]:
        node.output[s.output_index] = out
    else:  # Y_h already feeds other nodes (or an output): copy it to the new output
        at = list(graph.node).index(node) + 1
        graph.node.insert(
            at,
            helper.make_node(
                "Identity", [node.output[s.output_index]], [out], name=fresh_name(graph, f"{out}_identity")
            ),
        )


def _weight_dtype(idx: GraphIndex, r: RecurrentNode) -> int:
    w = idx.initializers.get(r.node.input[1])
    return w.data_type if w is not None else TensorProto.FLOAT


def _state_shape(dims: list, batch_axis: int, name: str) -> tuple:
    if len(dims) != 3:
        raise StatefulError(f"state input {name}: expected rank 3 (layers, batch, hidden), got shape {dims}")
    return tuple(BATCH if i == batch_axis else int(d) if isinstance(d, int) else 1 for i, d in enumerate(dims))


def _remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes none of whose outputs is read (e.g. the zero-state Expand chains)."""
    while True:
        idx = GraphIndex(graph)
        outputs = set(idx.outputs)
        dead = [n for n in graph.node if not any(o in idx.consumers or o in outputs for o in n.output if o)]
        if not dead:
            return
        keep = [n for n in graph.node if n not in dead]
        del graph.node[:]
        graph.node.extend(keep)


# ---------------------------------------------------------------------------- running
def _session(model: onnx.ModelProto | os.PathLike | str) -> OrtBackend:
    return open_graph(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model)


def _example(x: onnx.ValueInfoProto, axes: dict[int, int], dtype: str, seed: int) -> np.ndarray:
    shape = [axes.get(i, d if isinstance(d, int) else 1) for i, d in enumerate(dims(x))]
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iub":  # token ids and flags: small valid values (0 and 1)
        return rng.integers(0, 2, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _feeds(model: onnx.ModelProto, x: np.ndarray, x_name: str, batch: int) -> dict[str, np.ndarray]:
    """``x`` plus zeros for every other graph input (the states) at ``batch``."""
    inits = {t.name for t in model.graph.initializer}
    feeds = {x_name: x}
    for v in model.graph.input:
        if v.name != x_name and v.name not in inits:
            feeds[v.name] = np.zeros([d if isinstance(d, int) else batch for d in dims(v)], np_dtype_name(v))
    return feeds


def _output_spec(model: onnx.ModelProto, x: onnx.ValueInfoProto, b_ax: int, t_ax: int, y: str, src: Any) -> IOSpec:
    """The data output's axes, found by running the new graph at two batch sizes and lengths."""
    shapes = []
    for batch, steps in ((2, 3), (3, 5)):
        feeds = _feeds(model, _example(x, {b_ax: batch, t_ax: steps}, np_dtype_name(x), 0), x.name, batch)
        try:
            out = _session(model).run([y], feeds)[0]
        except Exception as e:  # onnxruntime raises its own error types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StatefulError(
                f"{src}: the graph does not run at batch {batch}, {steps} steps once made dynamic "
                f"({first[:300]}); an op froze the export's batch or time size"
            ) from None
        shapes.append(out.shape)
    s1, s2 = shapes
    batch_ax = [i for i, (a, b) in enumerate(zip(s1, s2)) if (a, b) == (2, 3)]
    time_ax = [i for i, (a, b) in enumerate(zip(s1, s2)) if (a, b) == (3, 5)]
    if len(s1) != len(s2) or len(batch_ax) != 1:
        raise StatefulError(f"{src}: output {y} has shapes {s1} and {s2} at batch 2 and 3: no batch axis")
    if len(time_ax) != 1:
        raise StatefulError(
            f"{src}: output {y} has shapes {s1} and {s2} at 3 and 5 steps: no time axis "
            f"(the model returns one value per sequence, e.g. out[:, -1]); only models with "
            f"an output per step can be streamed"
        )
    shape = tuple(BATCH if i == batch_ax[0] else TIME if i == time_ax[0] else int(d) for i, d in enumerate(s1))
    out_vi = next(o for o in model.graph.output if o.name == y)
    dtype = np_dtype_name(out_vi) if out_vi.type.tensor_type.elem_type else np.dtype(out.dtype).name
    return IOSpec(y, shape, dtype, batch_axis=batch_ax[0], time_axis=time_ax[0])


# ---------------------------------------------------------------------------- the check
def _time_axis(io: IOSpec) -> int:
    """``io``'s time axis; streaming needs one (StatefulError without)."""
    if io.time_axis is None:
        raise StatefulError(f"{io.name}: expected a time axis to stream over, got none (shape {io.shape})")
    return io.time_axis


def _check(
    original: onnx.ModelProto,
    path: Path,
    spec: ModelSpec,
    layout: tuple[IOSpec, IOSpec],
    frozen: dict[str, int],
    atol: float,
    rtol: float,
) -> tuple[float, list[str]]:
    """Stream ``path`` and compare with the original on whole sequences; raise if they differ.

    1. streamed step by step at the original's batch size and length == the original;
    2. at one more sequence and 3 more steps, the new file's whole-sequence run, on the
       original's rows and steps == the original;
    3. fed at that size in two chunks == its own whole-sequence run.
    """
    xs, ys = spec.input, spec.output
    ox, oy = layout  # the original's axes
    xt, yt, oxt, oyt = (_time_axis(io) for io in (xs, ys, ox, oy))
    x_vi = next(v for v in original.graph.input if v.name == xs.name)
    b0, t0 = frozen.get(BATCH, 2), frozen.get(TIME, 5)
    orig = _session(original)

    def run_original(x: np.ndarray) -> np.ndarray:  # x and the result in the new file's layout
        x = np.moveaxis(x, [xs.batch_axis, xt], [ox.batch_axis, oxt])
        y = orig.run([ys.name], _feeds(original, x, xs.name, x.shape[ox.batch_axis]))[0]
        return np.moveaxis(y, [oy.batch_axis, oyt], [ys.batch_axis, yt])

    def first(a: np.ndarray, b_ax: int, t_ax: int) -> np.ndarray:  # the first b0 rows, t0 steps
        return np.take(np.take(a, range(b0), axis=b_ax), range(t0), axis=t_ax)

    rows: list[tuple[str, float, bool]] = []

    def check(what: str, got: np.ndarray, want: np.ndarray) -> None:
        row = compare(what, got.shape[ys.batch_axis], got.shape[yt], ys.name, got, want, Tolerance(atol, rtol))
        rows.append((what, row.max_abs, row.ok))

    x = np.moveaxis(
        _example(x_vi, {ox.batch_axis: b0, oxt: t0}, xs.dtype, 1), [ox.batch_axis, oxt], [xs.batch_axis, xt]
    )
    sess = StreamingSession(path, batch_size=b0)
    stepped = np.stack([sess.step(np.take(x, t, axis=xt)) for t in range(t0)], axis=yt)
    check(f"step() x{t0} at batch {b0} vs the original", stepped, run_original(x))
    b2, t2 = b0 + 1, t0 + 3
    x2 = np.moveaxis(
        _example(x_vi, {ox.batch_axis: b2, oxt: t2}, xs.dtype, 2), [ox.batch_axis, oxt], [xs.batch_axis, xt]
    )
    whole = sess.run(x2)
    check(
        f"run() at batch {b2}, {t2} steps vs the original on its {b0} rows, {t0} steps",
        first(whole, ys.batch_axis, yt),
        run_original(first(x2, xs.batch_axis, xt)),
    )
    sess2 = StreamingSession(path, batch_size=b2)
    fed = np.concatenate(
        [sess2.feed(np.take(x2, range(0, 2), axis=xt)), sess2.feed(np.take(x2, range(2, t2), axis=xt))], axis=yt
    )
    check(f"feed() 2 + {t2 - 2} steps at batch {b2} vs run()", fed, whole)
    lines = [f"{what}: max abs err {err:.3g}{'' if ok else '  FAILED'}" for what, err, ok in rows]
    if not all(ok for *_, ok in rows):
        raise ParityError(
            f"streaming the stateful file does not equal the original on the whole sequence "
            f"(atol {atol}, rtol {rtol}): " + "; ".join(lines) + ". The graph may mix time steps "
            "(e.g. normalise over time) or freeze the batch or time size in an op make_stateful "
            "does not rewrite; nothing was written"
        )
    return max(err for _, err, _ in rows), lines
