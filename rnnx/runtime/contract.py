"""The state contract as the runtime uses it: from ``rnnx.spec`` metadata or a ``state_map``.

rnnx-exported files carry a :class:`rnnx.spec.ModelSpec` under the ``rnnx.spec``
metadata key. Foreign ONNX files (no spec) are described by the caller: ``state_map``
pairs each state input with its output, ``constants`` feeds fixed inputs, the one
remaining input is the data input and the first remaining output the data output;
such a model is lowered into a ModelSpec of kind ``"foreign"``. Either way the spec is
checked against the graph before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnx.checks import check_int
from rnnx.errors import ConfigError, DTypeError, ModelFileError, SpecError, StateError
from rnnx.runtime.backend import Backend, PathLike, TensorInfo, open_backend
from rnnx.runtime.options import RuntimeOptions
from rnnx.spec import BATCH, DTYPES, METADATA_KEY, TIME, IOSpec, ModelSpec, StateSpec

CONTEXT_KEY = "_context"  # get_state() key of the left-context buffer (context=K > 0)
MAX_ELEMENTS = 1 << 28  # most elements one stream's input, output or state may declare (1 GiB float32)


def ort_dtype(t: TensorInfo, where: str) -> np.dtype:
    """numpy dtype of a graph tensor; ModelFileError for types rnnx does not handle."""
    if t.dtype is None:
        raise ModelFileError(f"{where}: unsupported tensor type {t.type_str}; supported: {', '.join(DTYPES)}")
    return np.dtype(t.dtype)


def axis_labels(rank: int, batch_axis: int, time_axis: int | None) -> tuple[str, ...]:
    """Readable names of the axes, for error messages: ``(batch, time, features)``."""
    rest = rank - 1 - (time_axis is not None)
    names = iter(
        ("channels", "height", "width")
        if rest == 3
        else ("features",)
        if rest == 1
        else tuple(f"dim{i}" for i in range(rest))
    )
    return tuple("batch" if i == batch_axis else "time" if i == time_axis else next(names) for i in range(rank))


@dataclass(frozen=True)
class DataIO:
    """The data input or output resolved for running: name, full shape (None where free), axes and dtype.

    Not an :class:`~rnnx.spec.IOSpec`: the per-call checks (:mod:`rnnx.runtime.validate`) want
    dims that are ints or None (free) and a numpy dtype, resolved once here, and a foreign
    graph's data tensors have no contract to come from.
    """

    name: str
    dims: tuple[int | None, ...]  # full graph shape; None for batch, time or symbolic axes
    batch_axis: int  # index of the batch axis in dims
    time_axis: int | None  # index of the time axis; None: data passed as given
    dtype: np.dtype  # numpy dtype the graph expects


@dataclass(frozen=True)
class Contract:
    """Everything the runtime needs to drive a graph step by step.

    ``spec`` is the contract (a ModelSpec; foreign models are lowered into one);
    ``input``/``output`` are its data tensors resolved against the graph (numpy dtype,
    None for free dims) and ``states`` is ``spec.state``.
    """

    input: DataIO
    output: DataIO
    states: tuple[StateSpec, ...]  # spec.state
    streamable: bool = True  # False: whole-sequence run() only
    foreign: bool = False  # True: built from state_map, not from rnnx.spec
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)  # fed on every call
    context: int = 0  # left-context values of the data input's last axis kept between calls
    spec: ModelSpec | None = None  # the contract; read_contract always sets it

    @property
    def context_dtype(self) -> np.dtype:
        return self.input.dtype

    @property
    def vocab_size(self) -> int | None:
        """Token inputs: valid ids lie in ``[0, vocab_size)``; None for other inputs (and foreign models)."""
        return self.spec.input.vocab_size if self.spec is not None else None

    def output_shape(self, batch: int, steps: int = 1) -> tuple[int, ...] | None:
        """The graph output's shape for ``batch`` sequences of ``steps`` steps, when it is known.

        None for foreign models (their graph shapes are not trusted) or symbolic output dims:
        the caller then lets onnxruntime allocate the output.
        """
        dims = list(self.output.dims)
        dims[self.output.batch_axis] = batch
        if self.output.time_axis is not None:
            dims[self.output.time_axis] = steps
        if self.foreign or any(d is None for d in dims):
            return None
        return tuple(dims)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ForeignModel:
    """How to run a graph beyond what its file says: what makes a third-party file streamable.

    One object carries these options from the session or pool (or the CLI) down to the
    contract reader, instead of four keyword arguments through every signature. An rnnx
    file needs none of it; ``constants`` and ``context`` also apply to rnnx files.

    Example:
        >>> vad = ForeignModel(state_map={"state": "stateN"}, constants={"sr": 16000}, context=64)
        >>> StreamingSession("silero_vad.onnx", foreign=vad)  # doctest: +SKIP
    """

    state_map: Mapping[str, str] | None = None  # {state_input: state_output}; overrides any rnnx.spec
    constants: Mapping[str, Any] | None = None  # {input_name: value} fed unchanged on every call
    context: int = 0  # left-context length K (inputs without a time axis)
    state_shapes: Mapping[str, Sequence[Any]] | None = None  # {state_input: shape with "batch"}


NO_FOREIGN = ForeignModel()


def foreign_model(foreign: ForeignModel | None, **given: Any) -> ForeignModel:
    """``foreign``, or one built from the keyword shortcuts (``state_map=``, ``constants=``...).

    Raises:
        ConfigError: both a ForeignModel and shortcuts, or ``foreign`` of another type.
    """
    shortcuts = {k: v for k, v in given.items() if v is not None and not (k == "context" and v == 0)}
    if foreign is None:
        return ForeignModel(**shortcuts) if shortcuts else NO_FOREIGN
    if not isinstance(foreign, ForeignModel):
        raise ConfigError(f"foreign: expected a ForeignModel, got {type(foreign).__name__}")
    if shortcuts:
        raise ConfigError(f"foreign: pass {', '.join(sorted(shortcuts))} inside the ForeignModel, not beside it")
    return foreign


def read_contract(backend: Backend, foreign: ForeignModel = NO_FOREIGN) -> Contract:
    """Build the contract of an opened model, checked against its graph.

    Args:
        backend: the opened model.
        foreign: state map, constants, context and state shapes (:class:`ForeignModel`).

    Raises:
        ModelFileError: no ``rnnx.spec`` and no ``state_map``.
        SpecError: the spec or the map does not match the graph (names, ranks, fixed
            dims, dtypes, batch/time axes) or declares absurd sizes; nothing is allocated.
    """
    state_map, constants, context = foreign.state_map, foreign.constants, foreign.context
    check_int("context", context, minimum=0)
    inputs = {t.name: t for t in backend.inputs()}
    outputs = {t.name: t for t in backend.outputs()}
    consts = _constants(inputs, constants or {})
    if state_map is None:
        meta = backend.metadata()
        if METADATA_KEY not in meta:
            raise ModelFileError(
                f"model: no {METADATA_KEY!r} metadata (not exported by rnnx); a state already in its "
                f"inputs and outputs: state_map={{'state_in': 'state_out', ...}} (rnnx run: --state-map "
                f"IN=OUT; rnnx inspect MODEL guesses the pairs); a recurrent layer keeping its state "
                f"inside: rnnx stateful MODEL --out STREAMABLE.onnx; graph inputs: "
                f"{list(inputs)}, outputs: {list(outputs)}"
            )
        spec = ModelSpec.from_json(meta[METADATA_KEY])
        check_against_graph(spec, inputs, outputs)
        contract = _from_spec(spec, inputs, outputs, consts, context)
    else:
        contract = _from_state_map(inputs, outputs, dict(state_map), consts, context, dict(foreign.state_shapes or {}))
    if context and contract.input.time_axis is not None:
        raise SpecError(
            f"context: left context applies to inputs without a time axis; "
            f"{contract.input.name} has one (axis {contract.input.time_axis})"
        )
    return contract


def open_model(path: PathLike, options: RuntimeOptions, foreign: ForeignModel = NO_FOREIGN) -> tuple[Backend, Contract]:
    """Open a model file and read its checked contract: what StreamingSession and StreamPool share.

    Raises:
        ModelFileError, SpecError, ProviderError: the file, contract or providers are unusable
        (the backend is closed again before the error leaves).
    """
    backend = open_backend(path, options)
    try:
        return backend, read_contract(backend, foreign)
    except BaseException:
        backend.close()
        raise


def _constants(inputs: Mapping[str, TensorInfo], constants: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in constants.items():
        if name not in inputs:
            raise SpecError(f"constants: {name!r} is not a graph input; inputs: {sorted(inputs)}")
        want = ort_dtype(inputs[name], f"constants[{name!r}]")
        arr = np.asarray(value)
        if arr.dtype != want:
            if arr.dtype.kind != want.kind and not (arr.dtype.kind in "iu" and want.kind in "iu"):
                raise DTypeError(f"{name}: expected dtype {want}, got {arr.dtype}")
            arr = arr.astype(want)
        out[name] = np.ascontiguousarray(arr)
    return out


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _check_size(where: str, shape: Sequence[Any]) -> None:
    """SpecError when one stream's tensor declares more than MAX_ELEMENTS elements."""
    n = math.prod(d for d in shape if isinstance(d, int))
    if n > MAX_ELEMENTS:
        raise SpecError(
            f"{where}: expected at most {MAX_ELEMENTS} elements per stream, got "
            f"{list(shape)} ({n} elements); the file's contract is corrupt or hostile"
        )


def _check_one(where: str, shape: Sequence[Any], dtype: str, named: Mapping[int, str], graph: TensorInfo) -> None:
    """Compare one declared tensor with the graph's: rank, fixed dims, named axes, dtype."""
    gdtype = ort_dtype(graph, where)
    if gdtype != np.dtype(dtype):
        raise SpecError(f"{where}.dtype: expected {gdtype.name} (the graph's {graph.name!r}), got {dtype}")
    if not shape:
        return
    if len(shape) != len(graph.shape):
        raise SpecError(
            f"{where}.shape: expected rank {len(graph.shape)} (the graph's {graph.name!r} "
            f"is {list(graph.shape)}), got {list(shape)}"
        )
    for i, (d, g) in enumerate(zip(shape, graph.shape)):
        if isinstance(d, int) and isinstance(g, int) and d != g:
            raise SpecError(
                f"{where}.shape[{i}]: expected {g} (the graph's {graph.name!r} is {list(graph.shape)}), got {d}"
            )
        if i in named and isinstance(g, int):
            raise SpecError(
                f"{where}: axis {i} is the {named[i]} axis, but the graph fixes it at {g} "
                f"({graph.name!r} is {list(graph.shape)}); export with a dynamic {named[i]} axis"
            )


def check_against_graph(spec: ModelSpec, inputs: Mapping[str, TensorInfo], outputs: Mapping[str, TensorInfo]) -> None:
    """Raise SpecError unless ``spec`` agrees with the graph's inputs and outputs.

    Sizes are bounded first, so a corrupt spec never reaches an allocation.
    """
    where = METADATA_KEY
    for name, io in (("input", spec.input), ("output", spec.output)):
        _check_size(f"{where}.{name}.shape", io.shape)
    for k, s in enumerate(spec.state):
        _check_size(f"{where}.state[{k}].shape", s.shape)
    for kind, names, graph in (
        ("input", [spec.input.name] + [s.input for s in spec.state], inputs),
        ("output", [spec.output.name] + [s.output for s in spec.state], outputs),
    ):
        for n in names:
            if n not in graph:
                raise SpecError(f"{where}: graph has no {kind} {n!r}; it has {sorted(graph)}")
    for name, io, graph in (("input", spec.input, inputs), ("output", spec.output, outputs)):
        named = {io.batch_axis: BATCH, **({io.time_axis: TIME} if io.time_axis is not None else {})}
        _check_one(f"{where}.{name}", io.shape, io.dtype, named if io.shape else {}, graph[io.name])
    for k, s in enumerate(spec.state):
        for g in (inputs[s.input], outputs[s.output]):
            _check_one(f"{where}.state[{k}]", s.shape, s.dtype, {s.batch_axis: BATCH}, g)


def _from_spec(
    spec: ModelSpec,
    inputs: Mapping[str, TensorInfo],
    outputs: Mapping[str, TensorInfo],
    consts: dict[str, np.ndarray],
    context: int,
) -> Contract:
    def io(s: IOSpec) -> DataIO:
        dims = _dims(s.shape or (inputs.get(s.name) or outputs[s.name]).shape)
        return DataIO(s.name, dims, s.batch_axis, s.time_axis, np.dtype(s.dtype))

    return Contract(io(spec.input), io(spec.output), spec.state, spec.streamable, False, consts, context, spec)


def _from_state_map(
    inputs: Mapping[str, TensorInfo],
    outputs: Mapping[str, TensorInfo],
    state_map: dict[str, str],
    consts: dict[str, np.ndarray],
    context: int,
    state_shapes: dict[str, Sequence[Any]],
) -> Contract:
    """Lower a foreign model (state_map, constants) into a ModelSpec of kind "foreign"."""
    for i, o in state_map.items():
        if i not in inputs:
            raise SpecError(f"state_map: {i!r} is not a graph input; inputs: {sorted(inputs)}")
        if o not in outputs:
            raise SpecError(f"state_map[{i!r}]: {o!r} is not a graph output; outputs: {sorted(outputs)}")
    for name in state_shapes:
        if name not in state_map:
            raise SpecError(f"state_shapes: {name!r} is not a state input; states: {sorted(state_map)}")
    data_in = [n for n in inputs if n not in state_map and n not in consts]
    if len(data_in) != 1:
        raise SpecError(
            f"state_map: expected exactly one data input besides the states and "
            f"constants, got {data_in}; feed the others with constants={{name: value}}"
        )
    data_out = [n for n in outputs if n not in state_map.values()]
    if not data_out:
        raise SpecError(f"state_map: no data output left; outputs: {sorted(outputs)}")
    states = []
    for i, o in state_map.items():
        shape = _state_shape(i, inputs[i].shape, state_shapes.get(i))
        _check_size(f"state_shapes[{i!r}]" if i in state_shapes else i, shape)
        states.append(StateSpec(i, shape, ort_dtype(inputs[i], i).name, input=i, output=o))
    x, y = inputs[data_in[0]], outputs[data_out[0]]
    xin = DataIO(x.name, _dims(x.shape), 0, None, ort_dtype(x, x.name))
    yout = DataIO(y.name, _dims(y.shape), 0, None, ort_dtype(y, y.name))
    if context and not xin.dims:
        raise SpecError(f"context: {x.name} is a scalar; left context needs a last axis")

    def lowered(d: DataIO) -> IOSpec:
        return IOSpec(d.name, (BATCH,) + tuple(d.dims[1:]), d.dtype.name, batch_axis=0, time_axis=None)  # type: ignore[arg-type]

    spec = ModelSpec(lowered(xin), lowered(yout), tuple(states), kind="foreign")
    return Contract(xin, yout, spec.state, True, True, consts, context, spec)


def _state_shape(name: str, graph_shape: Sequence[Any], given: Sequence[Any] | None) -> tuple[Any, ...]:
    if given is not None:
        shape = tuple(given)
        if [d for d in shape if not isinstance(d, int)] != [BATCH]:
            raise StateError(f"state_shapes[{name!r}]: expected ints and one {BATCH!r}, got {list(shape)}")
        return shape
    free = [i for i, d in enumerate(graph_shape) if not (isinstance(d, int) and d >= 0)]
    if len(free) != 1:
        raise StateError(
            f"{name}: cannot tell the batch axis from the graph shape {list(graph_shape)} "
            f"(expected exactly one symbolic dimension); pass state_shapes={{{name!r}: "
            f"(2, 'batch', 64)}} with 'batch' at the batch axis"
        )
    return tuple(BATCH if i == free[0] else int(d) for i, d in enumerate(graph_shape))


def not_streamable_reason(contract: Contract) -> str:
    """Why a non-streamable model cannot be stepped, and what to use instead."""
    role = contract.spec.role if contract.spec is not None else ""
    if role:  # a seq2seq bundle's encoder or decoder: the bundle forecasts, it does not stream
        return (
            f"the {role} of a seq2seq bundle, which forecasts from a window: use "
            f"rnnx.runtime.ForecastSession(FOLDER).forecast(window) on the bundle's folder"
        )
    return "bidirectional: each output needs the whole sequence; use run(x) on the whole sequence instead"
