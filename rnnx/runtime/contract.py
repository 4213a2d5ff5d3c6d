"""The state contract as the runtime uses it: from ``rnnx.spec`` metadata or a ``state_map``.

rnnx-exported files carry a :class:`rnnx.spec.ModelSpec` under the ``rnnx.spec``
metadata key. Foreign ONNX files (no spec) are described by the caller: ``state_map``
pairs each state input with its output, ``constants`` feeds fixed inputs, the one
remaining input is the data input and the first remaining output the data output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import onnxruntime as ort

from rnnx.errors import DTypeError, ModelFileError, SpecError, StateError
from rnnx.spec import BATCH, METADATA_KEY, ModelSpec, StateSpec

ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
CONTEXT_KEY = "_context"  # get_state() key of the left-context buffer (context=K > 0)


def ort_dtype(type_str: str, where: str) -> np.dtype:
    """numpy dtype of an onnxruntime type string such as ``tensor(float)``."""
    if type_str not in ORT_DTYPES:
        raise ModelFileError(f"{where}: unsupported tensor type {type_str}; "
                             f"supported: {', '.join(ORT_DTYPES)}")
    return np.dtype(ORT_DTYPES[type_str])


def axis_labels(rank: int, batch_axis: int, time_axis: Optional[int]) -> tuple[str, ...]:
    """Readable names of the axes, for error messages: ``(batch, time, features)``."""
    rest = rank - 1 - (time_axis is not None)
    names = iter(("channels", "height", "width") if rest == 3 else
                 ("features",) if rest == 1 else tuple(f"dim{i}" for i in range(rest)))
    return tuple("batch" if i == batch_axis else "time" if i == time_axis else next(names)
                 for i in range(rank))


@dataclass(frozen=True)
class DataIO:
    """The data input or output: name, full shape (None where free), axes and dtype."""

    name: str
    dims: tuple[Optional[int], ...]  # full graph shape; None for batch, time or symbolic axes
    batch_axis: int  # index of the batch axis in dims
    time_axis: Optional[int]  # index of the time axis; None: data passed as given
    dtype: np.dtype  # numpy dtype the graph expects


@dataclass(frozen=True)
class Contract:
    """Everything the runtime needs to drive a graph step by step."""

    input: DataIO
    output: DataIO
    states: tuple[StateSpec, ...]  # the file's own state contract (or one built from state_map)
    streamable: bool = True  # False: whole-sequence run() only
    foreign: bool = False  # True: built from state_map, not from rnnx.spec
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)  # fed on every call
    context: int = 0  # left-context values of the data input's last axis kept between calls
    spec: Optional[ModelSpec] = None  # the rnnx.spec contract, if the file has one

    @property
    def context_dtype(self) -> np.dtype:
        return self.input.dtype

    def output_shape(self, batch: int, steps: int = 1) -> Optional[tuple[int, ...]]:
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


def read_contract(sess: ort.InferenceSession, *, state_map: Optional[Mapping[str, str]] = None,
                  constants: Optional[Mapping[str, Any]] = None, context: int = 0,
                  state_shapes: Optional[Mapping[str, Sequence[Any]]] = None) -> Contract:
    """Build the contract of a loaded session.

    Args:
        sess: the onnxruntime session.
        state_map: ``{state_input: state_output}`` for foreign models; overrides the spec.
        constants: ``{input_name: value}`` fed unchanged on every call.
        context: left-context length K (see :class:`~rnnx.runtime.StreamingSession`).
        state_shapes: ``{state_input: shape with "batch"}`` where the graph is ambiguous.

    Raises:
        ModelFileError: no ``rnnx.spec`` and no ``state_map``.
        SpecError: the spec or the map does not match the graph.
    """
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise SpecError(f"context: expected a non-negative int, got {context!r}")
    consts = _constants(sess, constants or {})
    if state_map is None:
        meta = sess.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ModelFileError(
                f"model: no {METADATA_KEY!r} metadata (not exported by rnnx); describe a foreign "
                f"model with state_map={{'state_in': 'state_out', ...}}; graph inputs: "
                f"{[i.name for i in sess.get_inputs()]}, outputs: {[o.name for o in sess.get_outputs()]}")
        return _from_spec(sess, ModelSpec.from_json(meta[METADATA_KEY]), consts, context)
    return _from_state_map(sess, dict(state_map), consts, context, dict(state_shapes or {}))


def _graph_io(sess: ort.InferenceSession) -> tuple[dict[str, Any], dict[str, Any]]:
    return {i.name: i for i in sess.get_inputs()}, {o.name: o for o in sess.get_outputs()}


def _constants(sess: ort.InferenceSession, constants: Mapping[str, Any]) -> dict[str, np.ndarray]:
    inputs, _ = _graph_io(sess)
    out = {}
    for name, value in constants.items():
        if name not in inputs:
            raise SpecError(f"constants: {name!r} is not a graph input; inputs: {sorted(inputs)}")
        want = ort_dtype(inputs[name].type, f"constants[{name!r}]")
        arr = np.asarray(value)
        if arr.dtype != want:
            if arr.dtype.kind != want.kind and not (arr.dtype.kind in "iu" and want.kind in "iu"):
                raise DTypeError(f"{name}: expected dtype {want}, got {arr.dtype}")
            arr = arr.astype(want)
        out[name] = np.ascontiguousarray(arr)
    return out


def _dims(shape: Sequence[Any]) -> tuple[Optional[int], ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _from_spec(sess: ort.InferenceSession, spec: ModelSpec, consts: dict[str, np.ndarray],
               context: int) -> Contract:
    inputs, outputs = _graph_io(sess)
    for kind, names, graph in (("input", [spec.input.name] + [s.input for s in spec.state], inputs),
                               ("output", [spec.output.name] + [s.output for s in spec.state], outputs)):
        for n in names:
            if n not in graph:
                raise SpecError(f"{METADATA_KEY}: graph has no {kind} {n!r}; it has {sorted(graph)}")

    def io(s: Any) -> DataIO:
        dims = tuple(d if isinstance(d, int) else None for d in s.shape) if s.shape else \
            _dims((inputs.get(s.name) or outputs[s.name]).shape)
        return DataIO(s.name, dims, s.batch_axis, s.time_axis, np.dtype(s.dtype))

    return Contract(io(spec.input), io(spec.output), spec.state, spec.streamable, False, consts,
                    context, spec)


def _from_state_map(sess: ort.InferenceSession, state_map: dict[str, str],
                    consts: dict[str, np.ndarray], context: int,
                    state_shapes: dict[str, Sequence[Any]]) -> Contract:
    inputs, outputs = _graph_io(sess)
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
        raise SpecError(f"state_map: expected exactly one data input besides the states and "
                        f"constants, got {data_in}; feed the others with constants={{name: value}}")
    data_out = [n for n in outputs if n not in state_map.values()]
    if not data_out:
        raise SpecError(f"state_map: no data output left; outputs: {sorted(outputs)}")
    states = tuple(StateSpec(i, i, o, _state_shape(i, inputs[i].shape, state_shapes.get(i)),
                             ort_dtype(inputs[i].type, i).name) for i, o in state_map.items())
    x, y = inputs[data_in[0]], outputs[data_out[0]]
    xin = DataIO(x.name, _dims(x.shape), 0, None, ort_dtype(x.type, x.name))
    yout = DataIO(y.name, _dims(y.shape), 0, None, ort_dtype(y.type, y.name))
    if context and not xin.dims:
        raise SpecError(f"context: {x.name} is a scalar; left context needs a last axis")
    return Contract(xin, yout, states, True, True, consts, context, None)


def _state_shape(name: str, graph_shape: Sequence[Any], given: Optional[Sequence[Any]]) -> tuple[Any, ...]:
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
            f"(2, 'batch', 64)}} with 'batch' at the batch axis")
    return tuple(BATCH if i == free[0] else int(d) for i, d in enumerate(graph_shape))
