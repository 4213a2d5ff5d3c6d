"""The state contract: what an exported model takes, returns and carries between calls.

Declared once, here, and everything else is generated from it: the ONNX input and
output names, the dynamic axes, the JSON stored under the ``rnnx.spec`` metadata key,
and the runtime's preallocated state buffers. Pure Python (no numpy, torch or onnx),
so the edge runtime can read it.

Example of the stored JSON (a 2-layer LSTM over 16 features with a 1-value head)::

    {"format": 1,
     "input":  {"name": "x", "batch_axis": 0, "time_axis": 1,
                "shape": ["batch", "time", 16], "dtype": "float32"},
     "output": {"name": "y", "batch_axis": 0, "time_axis": 1,
                "shape": ["batch", "time", 1], "dtype": "float32"},
     "state": [{"name": "h", "input": "h_in", "output": "h_out",
                "shape": [2, "batch", 64], "dtype": "float32", "init": "zeros"},
               {"name": "c", "input": "c_in", "output": "c_out",
                "shape": [2, "batch", 64], "dtype": "float32", "init": "zeros"}],
     "streamable": true, "rnnx_version": "0.1.0", "kind": "lstm",
     "config": {...}, "opset": 17, "exporter": "trace"}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rnnx.errors import SpecError
from rnnx.names import check_name, name_problem

METADATA_KEY = "rnnx.spec"  # ONNX metadata_props key (and TorchScript extra file name)
FORMAT = 1  # version of the JSON layout below
BATCH = "batch"  # symbolic name of the batch axis in every shape
TIME = "time"  # symbolic name of the time axis in input/output shapes
# The one dtype table: spec name -> (ONNX TensorProto elem type, onnxruntime type string,
# Triton data_type).
# numpy and torch dtypes are ``np.dtype(name)`` and ``getattr(torch, name)``.
DTYPE_TABLE: dict[str, tuple[int, str, str]] = {
    "float32": (1, "tensor(float)", "TYPE_FP32"),
    "float16": (10, "tensor(float16)", "TYPE_FP16"),
    "float64": (11, "tensor(double)", "TYPE_FP64"),
    "int64": (7, "tensor(int64)", "TYPE_INT64"),
    "int32": (6, "tensor(int32)", "TYPE_INT32"),
    "int8": (3, "tensor(int8)", "TYPE_INT8"),
    "uint8": (2, "tensor(uint8)", "TYPE_UINT8"),
    "bool": (9, "tensor(bool)", "TYPE_BOOL"),
}
DTYPES = tuple(DTYPE_TABLE)  # dtype names a spec may use
ORT_DTYPES = {ort: name for name, (_, ort, _) in DTYPE_TABLE.items()}  # "tensor(float)" -> "float32"
TRITON_DTYPES = {name: triton for name, (_, _, triton) in DTYPE_TABLE.items()}  # "float32" -> "TYPE_FP32"
PRECISIONS = ("fp32", "fp16", "int8")  # weights/compute precision of a graph (its I/O stays float32)
MAX_SPEC_BYTES = 4 << 20  # a contract is a few KiB; data statistics and vocabularies stay far below this
MAX_SPEC_DEPTH = 32  # JSON nesting: the contract itself is 5 deep; config/extra get the rest

Dim = int | str


def _shape(value: Any, where: str) -> tuple[Dim, ...]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{where}.shape: expected a list of ints and axis names, got {value!r}")
    out: list[Dim] = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise SpecError(f"{where}.shape: expected ints or axis names, got {d!r} in {value!r}")
        if isinstance(d, int) and d < 0:
            raise SpecError(f"{where}.shape: expected non-negative sizes, got {d} in {value!r}")
        out.append(d)
    return tuple(out)


def _dtype(value: Any, where: str) -> str:
    if value not in DTYPES:
        raise SpecError(f"{where}.dtype: expected one of {', '.join(DTYPES)}, got {value!r}")
    return str(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a string, got {value!r}"[:300])
    return value


def _int(value: Any, where: str, optional: bool = False) -> Any:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an int{' or null' if optional else ''}, got {value!r}"[:300])
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    """An optional JSON object field (missing or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected an object, got {type(value).__name__}")
    return dict(value)


def _depth_within(value: Any, limit: int) -> bool:
    """True when the JSON tree ``value`` is nested at most ``limit`` deep (iterative)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return True


def _require(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise SpecError(f"{where}: expected an object, got {type(d).__name__}")
    if key not in d:
        raise SpecError(f"{where}: missing key {key!r} (has {sorted(d)})")
    return d[key]


@dataclass(frozen=True)
class TensorSpec:
    """A tensor of the contract: name, shape and dtype, described here once for every tensor.

    :class:`IOSpec` (the data input or output) and :class:`StateSpec` (a state carried
    between calls) extend it with their roles only; on its own it describes a tensor that is
    neither (a seq2seq bundle's encoder outputs and decoder context). The parsing and
    checking of name, shape and dtype, the stored JSON and the concrete shapes live here.
    The subclasses' role fields are keyword-only:
    ``IOSpec("x", ("batch", "time", 16), batch_axis=0, time_axis=1)``.

    A backend's report of a graph tensor is :class:`rnnx.runtime.tensor_info.TensorInfo`
    instead: there a dim may be unknown and a dtype unsupported, never in the contract.

    Attributes:
        name: graph input/output name (a state's short name in :class:`StateSpec`).
        shape: ``"batch"`` at the batch axis, ``"time"`` where the length follows the
            input (the time axis), ints elsewhere.
        dtype: numpy dtype name, one of :data:`DTYPES`.
    """

    name: str
    shape: tuple[Dim, ...]  # e.g. ("batch", "time", 64) for the encoder outputs
    dtype: str = "float32"  # numpy dtype name

    _keys: ClassVar[tuple[str, ...]] = ("name", "shape", "dtype")  # the stored JSON's keys, in order
    _optional: ClassVar[frozenset[str]] = frozenset()  # keys written only when not None

    def concrete_shape(self, batch: int, steps: int | None = None) -> tuple[int, ...]:
        """The shape at a concrete batch size; a time axis gets ``steps``, or is dropped when None (one step)."""
        out = []
        for d in self.shape:
            if d == TIME:
                if steps is not None:
                    out.append(steps)
            else:
                out.append(batch if d == BATCH else int(d))
        return tuple(out)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The per-step, per-example shape: every axis but batch and time."""
        return tuple(int(d) for d in self.shape if d not in (BATCH, TIME))

    def as_tensor(self, name: str | None = None) -> TensorSpec:
        """This tensor without its role, under ``name`` (e.g. a state's graph input name) or its own."""
        return TensorSpec(self.name if name is None else name, self.shape, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON object (keys in the order every rnnx version writes them)."""
        d: dict[str, Any] = {}
        for key in self._keys:
            value = getattr(self, key)
            if value is not None or key not in self._optional:  # optional keys: older readers ignore them
                d[key] = list(value) if key == "shape" else value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> TensorSpec:
        name, shape, dtype = cls._read(d, where)
        if BATCH not in shape:
            raise SpecError(f"{where}.shape: expected a {BATCH!r} axis, got {list(shape)}")
        return cls(name, shape, dtype)

    @staticmethod
    def _read(
        d: Mapping[str, Any], where: str, *, default_name: str | None = None, shape_optional: bool = False
    ) -> tuple[str, tuple[Dim, ...], str]:
        """The checked name, shape and dtype of a stored tensor (the part every tensor shares).

        ``default_name``: the name when the key is missing (else it is required);
        ``shape_optional``: a missing shape is ``()`` (else it is required).
        """
        name = d.get("name", default_name) if default_name is not None else _require(d, "name", where)
        shape = d.get("shape", []) if shape_optional else _require(d, "shape", where)
        return _str(name, f"{where}.name"), _shape(shape, where), _dtype(d.get("dtype", "float32"), where)


@dataclass(frozen=True)
class IOSpec(TensorSpec):
    """The data input or output of a model: a :class:`TensorSpec` with its batch and time axes.

    Attributes:
        batch_axis: index of the batch axis in ``shape``.
        time_axis: index of the time axis, or None for data without one.
        vocab_size: for token (integer) inputs, ids must lie in ``[0, vocab_size)``; None
            when unknown (files written before this field, or no embedding).
    """

    batch_axis: int = field(kw_only=True)  # index of "batch" in shape
    time_axis: int | None = field(kw_only=True)  # index of "time" in shape; None if the data has no time axis
    vocab_size: int | None = field(default=None, kw_only=True)  # token inputs: valid ids are 0 .. vocab_size - 1

    _keys = ("name", "batch_axis", "time_axis", "shape", "dtype", "vocab_size")
    _optional = frozenset({"vocab_size"})  # only token inputs carry it

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> IOSpec:
        batch_axis = _int(_require(d, "batch_axis", where), f"{where}.batch_axis")
        time_axis = _int(_require(d, "time_axis", where), f"{where}.time_axis", optional=True)
        name, shape, dtype = cls._read(d, where, shape_optional=True)
        vocab = d.get("vocab_size")
        if vocab is not None and (
            isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1 or dtype not in ("int64", "int32")
        ):
            raise SpecError(
                f"{where}.vocab_size: expected a positive int on an int64/int32 input, got {vocab!r} (dtype {dtype})"
            )
        if shape:
            _check_axes(shape, ((batch_axis, BATCH), (time_axis, TIME)), where)
        return cls(name, shape, dtype, batch_axis=batch_axis, time_axis=time_axis, vocab_size=vocab)


def _check_axes(shape: tuple[Dim, ...], named: tuple[tuple[int | None, str], ...], where: str) -> None:
    """SpecError unless each named axis sits at its index (None: absent) and every other dim is an int."""
    for axis, label in named:
        if axis is not None and (not 0 <= axis < len(shape) or shape[axis] != label):
            raise SpecError(f"{where}.{label}_axis: expected the index of {label!r} in shape {list(shape)}, got {axis}")
    for i, dim in enumerate(shape):
        if isinstance(dim, str) and i not in (axis for axis, _ in named):
            raise SpecError(
                f"{where}.shape: axis {i} is {dim!r}; only the batch and time axes may be named, the rest must be ints"
            )


@dataclass(frozen=True)
class StateSpec(TensorSpec):
    """One state tensor carried from one call to the next: a :class:`TensorSpec` with its graph names.

    ``name`` is the state's short name ("h", "c"); ``shape`` has ``"batch"`` at the batch
    axis and ints elsewhere.

    Attributes:
        input: graph input that receives the state before the call.
        output: graph output that holds the state after the call.
        init: how a fresh stream starts; only ``"zeros"`` today.
    """

    input: str = field(kw_only=True)
    output: str = field(kw_only=True)
    init: str = field(default="zeros", kw_only=True)

    _keys = ("name", "input", "output", "shape", "dtype", "init")

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> StateSpec:
        inp = _str(_require(d, "input", where), f"{where}.input")
        out = _str(_require(d, "output", where), f"{where}.output")
        name, shape, dtype = cls._read(d, where, default_name=inp)
        if list(shape).count(BATCH) != 1:
            raise SpecError(f"{where}.shape: expected exactly one {BATCH!r} axis, got {list(shape)}")
        for dim in shape:
            if isinstance(dim, str) and dim != BATCH:
                raise SpecError(f"{where}.shape: expected ints and one {BATCH!r}, got {list(shape)}")
        init = d.get("init", "zeros")
        if init != "zeros":
            raise SpecError(f"{where}.init: expected 'zeros', got {init!r}")
        return cls(name, shape, dtype, input=inp, output=out, init=init)


SEQ2SEQ_ROLES = ("encoder", "decoder")  # ModelSpec.role of the two files of a seq2seq bundle


@dataclass(frozen=True)
class Seq2SeqSpec:
    """How the two graphs of an encoder–decoder bundle fit together (stored in both files).

    The encoder graph maps the window ``input`` to ``encoder_outputs``; ``init`` says
    which encoder output gives each decoder input its first value. Then, per generated
    step, the decoder graph maps ``feedback`` (the previous output), the ``state`` inputs
    and the ``context`` inputs to ``output`` and the state outputs; the output becomes the
    next ``feedback``, each state output the next state input, and the context is fed
    unchanged (per sequence: the attention memory has the window's length, not a fixed size).

    Attributes:
        encoder: file name of the encoder graph (next to the decoder file).
        decoder: file name of the decoder-step graph.
        input: the encoder's window input ``(batch, time, F)``.
        output: the decoder's per-step output ``(batch, O)`` (no time axis).
        feedback: decoder input receiving the previous step's output.
        state: decoder state carried from step to step.
        context: per-sequence decoder inputs, fed unchanged at every step.
        encoder_outputs: every output of the encoder graph.
        init: decoder input name -> encoder output name holding its first value.
        horizon: steps generated in training (any number can be generated).
        window: input rows the model was trained on (the streaming window).
        encoder_sha256: in the decoder file (the bundle's manifest, written last): the hex
            SHA-256 of the encoder file's bytes, checked when the bundle is opened. None in
            the encoder's own copy and in bundles written before the field existed.
    """

    encoder: str
    decoder: str
    input: IOSpec
    output: IOSpec
    feedback: str
    state: tuple[StateSpec, ...]
    context: tuple[TensorSpec, ...]
    encoder_outputs: tuple[TensorSpec, ...]
    init: dict[str, str]
    horizon: int
    window: int
    encoder_sha256: str | None = None  # decoder's copy only: ties the bundle's two files

    def to_dict(self) -> dict[str, Any]:
        d = {
            "encoder": self.encoder,
            "decoder": self.decoder,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "feedback": self.feedback,
            "state": [s.to_dict() for s in self.state],
            "context": [c.to_dict() for c in self.context],
            "encoder_outputs": [t.to_dict() for t in self.encoder_outputs],
            "init": dict(self.init),
            "horizon": self.horizon,
            "window": self.window,
        }
        if self.encoder_sha256 is not None:  # written only when set: older readers ignore it
            d["encoder_sha256"] = self.encoder_sha256
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> Seq2SeqSpec:
        def items(key: str) -> list[Any]:
            value = _require(d, key, where)
            if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
                raise SpecError(f"{where}.{key}: expected a list, got {type(value).__name__}")
            return list(value)

        init = _require(d, "init", where)
        if not isinstance(init, Mapping):
            raise SpecError(f"{where}.init: expected an object, got {type(init).__name__}")
        spec = cls(
            encoder=check_name(_require(d, "encoder", where), f"{where}.encoder", SpecError),
            decoder=check_name(_require(d, "decoder", where), f"{where}.decoder", SpecError),
            input=IOSpec.from_dict(_require(d, "input", where), f"{where}.input"),
            output=IOSpec.from_dict(_require(d, "output", where), f"{where}.output"),
            feedback=_str(_require(d, "feedback", where), f"{where}.feedback"),
            state=tuple(StateSpec.from_dict(s, f"{where}.state[{i}]") for i, s in enumerate(items("state"))),
            context=tuple(TensorSpec.from_dict(c, f"{where}.context[{i}]") for i, c in enumerate(items("context"))),
            encoder_outputs=tuple(
                TensorSpec.from_dict(t, f"{where}.encoder_outputs[{i}]") for i, t in enumerate(items("encoder_outputs"))
            ),
            init={k: _str(v, f"{where}.init.{k}") for k, v in init.items()},
            horizon=_positive(_require(d, "horizon", where), f"{where}.horizon"),
            window=_positive(_require(d, "window", where), f"{where}.window"),
            encoder_sha256=_sha256(d.get("encoder_sha256"), f"{where}.encoder_sha256", optional=True),
        )
        needed = [spec.feedback, *(s.input for s in spec.state), *(c.name for c in spec.context)]
        produced = {t.name for t in spec.encoder_outputs}
        for name in needed:
            if spec.init.get(name) not in produced:
                raise SpecError(
                    f"{where}.init: decoder input {name!r} needs an encoder output "
                    f"(one of {sorted(produced)}), got {spec.init.get(name)!r}"
                )
        return spec


def _positive(value: Any, where: str) -> int:
    """``value`` when it is a positive int: the contract's own check, a SpecError (a malformed
    file, not a user's option; options go through :func:`rnnx.checks.check_int`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: expected a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class DataSpec:
    """The task's data contract: what the model's input and output mean (optional ``data`` field).

    Written by ``rnnx train`` (through the checkpoint) so the exported file alone tells a
    client what to feed and what comes out: ``rnnx run`` reads the training CSV with it and
    names its output columns, and token models decode to text with it.

    Attributes:
        task: the training task ("csv", "forecast", "sine", "chars", "blobs") or "custom".
        features: input columns in the order of the input's last axis (series tasks).
        target: the column forecast (series tasks).
        horizon: future target values predicted at every step (series tasks).
        outputs: names of the output's last axis, e.g. ``load+1 .. load+H``.
        missing: how empty/NA cells of a CSV were handled in training ("interpolate", ...).
        normalization: ``{"inside_graph": true, "input_mean": [...], "input_std": [...],
            "output_mean": [...], "output_std": [...]}``; inside the graph, so the file takes
            and returns raw units.
        vocab: token models: id ``i`` is the character ``vocab[i]``.
        window: the training window in steps (also a sensible warm-up length).
    """

    task: str = "custom"
    features: tuple[str, ...] = ()  # input columns, in order
    target: str | None = None  # forecast column
    horizon: int | None = None  # values predicted per step
    outputs: tuple[str, ...] = ()  # output column names (last axis)
    missing: str | None = None  # CSV missing-value policy used in training
    normalization: dict[str, Any] | None = None  # statistics; applied inside the graph
    vocab: str | None = None  # token id i <-> vocab[i]
    window: int | None = None  # training window (warm-up context)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"task": self.task}
        for key in ("features", "outputs"):
            if getattr(self, key):
                d[key] = list(getattr(self, key))
        for key in ("target", "horizon", "missing", "normalization", "vocab", "window"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = f"{METADATA_KEY}.data") -> DataSpec:
        if not isinstance(d, Mapping):
            raise SpecError(f"{where}: expected an object, got {type(d).__name__}")
        names: dict[str, tuple[str, ...]] = {}
        for key in ("features", "outputs"):
            value = d.get(key, [])
            if (
                isinstance(value, (str, bytes))
                or not isinstance(value, Sequence)
                or not all(isinstance(v, str) for v in value)
            ):
                raise SpecError(f"{where}.{key}: expected a list of column names, got {value!r}")
            names[key] = tuple(value)
        for key in ("horizon", "window"):
            if d.get(key) is not None:
                _positive(d[key], f"{where}.{key}")
        for key in ("task", "target", "missing", "vocab"):
            value = d.get(key)
            if value is not None and not isinstance(value, str):
                raise SpecError(f"{where}.{key}: expected a string, got {value!r}")
        norm = d.get("normalization")
        if norm is not None and not isinstance(norm, Mapping):
            raise SpecError(f"{where}.normalization: expected an object, got {norm!r}")
        return cls(
            task=str(d.get("task", "custom")),
            features=names["features"],
            target=d.get("target"),
            horizon=d.get("horizon"),
            outputs=names["outputs"],
            missing=d.get("missing"),
            normalization=None if norm is None else dict(norm),
            vocab=d.get("vocab"),
            window=d.get("window"),
        )


_HEX = frozenset("0123456789abcdef")


def _sha256(digest: Any, where: str, optional: bool = False) -> Any:
    if optional and digest is None:
        return None
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise SpecError(f"{where}: expected 64 lowercase hex digits, got {digest!r}"[:300])
    return digest


@dataclass(frozen=True)
class StepGraph:
    """A second graph for single steps, written beside the model file (optional ``step_graph`` field).

    It has the model's inputs, outputs and states, is valid only for a time length of 1,
    and has no time loop: the model's ``Scan`` nodes run once, inlined. onnxruntime runs it
    faster per step than the Scan graph at T=1; the runtime uses it for step-by-step calls
    when the file is there and its SHA-256 matches (see ``rnnx.runtime``).

    Attributes:
        file: its file name, in the model file's folder (a bare name ending in ``.onnx``).
        sha256: the hex SHA-256 of that file's bytes.
    """

    file: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Any, where: str = f"{METADATA_KEY}.step_graph") -> StepGraph:
        if not isinstance(d, Mapping):
            raise SpecError(f"{where}: expected an object, got {type(d).__name__}")
        name, digest = _require(d, "file", where), _require(d, "sha256", where)
        if name_problem(name) is not None or not name.endswith(".onnx") or name.startswith(".") or ":" in name:
            raise SpecError(
                f"{where}.file: expected a file name ending in .onnx in the model's folder (no path), got {name!r}"
            )
        return cls(name, _sha256(digest, f"{where}.sha256"))


@dataclass(frozen=True)
class ModelSpec:
    """The whole contract of an exported model, stored as JSON under ``rnnx.spec``.

    Attributes:
        input: the data input.
        output: the per-step data output.
        state: state tensors, in the model's ``init_state`` order.
        streamable: False for models that need the whole sequence (bidirectional).
        format: JSON layout version.
        rnnx_version: rnnx version that wrote the file.
        kind: model family ("lstm", ...) or "custom".
        config: the model's build configuration, if it has one.
        opset: ONNX opset of the graph (None for TorchScript).
        exporter: which export path produced the graph ("trace", "scan", "layer-scan", ...).
        extra: anything else worth keeping (producer versions, tolerances used).
        precision: weights/compute precision, one of :data:`PRECISIONS`; "fp32" for files
            written before the field existed. Inputs, outputs and states stay float32.
        role: "" for a standalone model; "encoder" or "decoder" for a seq2seq bundle file.
        seq2seq: the bundle contract, in both files of a seq2seq bundle (None otherwise).
        data: the task's data contract (feature names, target, horizon, vocabulary, ...),
            or None (files written before the field existed, models not trained by rnnx).
        step_graph: the single-step graph written beside the file (:class:`StepGraph`), or
            None (graphs without a time loop to remove, or written without one).
    """

    input: IOSpec
    output: IOSpec
    state: tuple[StateSpec, ...]
    streamable: bool = True
    format: int = FORMAT
    rnnx_version: str = ""
    kind: str = "custom"
    config: dict[str, Any] = field(default_factory=dict)
    opset: int | None = None
    exporter: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"  # "fp32" | "fp16" | "int8"; see rnnx.onnx_tools.quantize
    role: str = ""  # "", or "encoder" / "decoder" in a seq2seq bundle
    seq2seq: Seq2SeqSpec | None = None  # the bundle contract (seq2seq bundle files only)
    data: DataSpec | None = None  # what the input/output columns mean; written only when known
    step_graph: StepGraph | None = None  # a Scan-free graph for T=1 beside the file

    def state_by_name(self) -> dict[str, StateSpec]:
        return {s.name: s for s in self.state}

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": self.format,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "state": [s.to_dict() for s in self.state],
            "streamable": self.streamable,
            "rnnx_version": self.rnnx_version,
            "kind": self.kind,
            "config": self.config,
            "opset": self.opset,
            "exporter": self.exporter,
            "extra": self.extra,
            "precision": self.precision,
        }
        if self.role:  # written only when set, so standalone files keep the original layout
            d["role"] = self.role
        if self.seq2seq is not None:
            d["seq2seq"] = self.seq2seq.to_dict()
        if self.data is not None:  # optional: older readers ignore it
            d["data"] = self.data.to_dict()
        if self.step_graph is not None:  # optional: older readers ignore it and run the main graph
            d["step_graph"] = self.step_graph.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        where = METADATA_KEY
        if not isinstance(d, Mapping):
            raise SpecError(f"{where}: expected an object, got {type(d).__name__}")
        fmt = _require(d, "format", where)
        if fmt != FORMAT:
            raise SpecError(
                f"{where}.format: expected {FORMAT}, got {fmt!r} (file written by a newer rnnx? upgrade rnnx)"
            )
        states = _require(d, "state", where)
        if not isinstance(states, Sequence) or isinstance(states, (str, bytes)):
            raise SpecError(f"{where}.state: expected a list, got {type(states).__name__}")
        state = tuple(StateSpec.from_dict(s, f"{where}.state[{i}]") for i, s in enumerate(states))
        names = [s.name for s in state]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}.state: state names must be unique, got {names}")
        precision = d.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise SpecError(f"{where}.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        role = d.get("role", "")
        if role not in ("", *SEQ2SEQ_ROLES):
            raise SpecError(f"{where}.role: expected one of {', '.join(SEQ2SEQ_ROLES)} (or no role), got {role!r}")
        seq2seq = d.get("seq2seq")
        bundle = None if seq2seq is None else Seq2SeqSpec.from_dict(seq2seq, f"{where}.seq2seq")
        if bool(role) != (bundle is not None):
            raise SpecError(
                f"{where}: a role needs the seq2seq contract and vice versa, "
                f"got role {role!r} and {'a' if bundle else 'no'} seq2seq entry"
            )
        streamable = _require(d, "streamable", where)
        if not isinstance(streamable, bool):
            raise SpecError(f"{where}.streamable: expected true or false, got {streamable!r}")
        return cls(
            input=IOSpec.from_dict(_require(d, "input", where), f"{where}.input"),
            output=IOSpec.from_dict(_require(d, "output", where), f"{where}.output"),
            state=state,
            streamable=streamable,
            format=FORMAT,
            rnnx_version=_str(d.get("rnnx_version", ""), f"{where}.rnnx_version"),
            kind=_str(d.get("kind", "custom"), f"{where}.kind"),
            config=_object(d.get("config"), f"{where}.config"),
            opset=_int(d.get("opset"), f"{where}.opset", optional=True),
            exporter=_str(d.get("exporter", ""), f"{where}.exporter"),
            extra=_object(d.get("extra"), f"{where}.extra"),
            precision=str(precision),
            role=str(role),
            seq2seq=bundle,
            data=None if d.get("data") is None else DataSpec.from_dict(d["data"]),
            step_graph=None if d.get("step_graph") is None else StepGraph.from_dict(d["step_graph"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parse the stored JSON: its size and nesting are bounded before it is walked.

        Raises:
            SpecError: over :data:`MAX_SPEC_BYTES`, nested deeper than :data:`MAX_SPEC_DEPTH`,
                not JSON, or any field malformed (the message names the field).
        """
        where = METADATA_KEY
        if not isinstance(text, (str, bytes, bytearray)):
            raise SpecError(f"{where}: expected JSON text, got {type(text).__name__}")
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"{where}: expected at most {MAX_SPEC_BYTES} bytes, got {len(text)}")
        too_deep = SpecError(f"{where}: expected JSON nested at most {MAX_SPEC_DEPTH} deep, got deeper")
        try:
            d = json.loads(text)
        except RecursionError:
            raise too_deep from None
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            raise SpecError(f"{where}: expected JSON, got unparsable text ({e})") from None
        if not _depth_within(d, MAX_SPEC_DEPTH):
            raise too_deep
        return cls.from_dict(d)


def io_names(spec: ModelSpec) -> tuple[list[str], list[str]]:
    """Graph input and output names in call order: ``x, *_in`` and ``y, *_out``."""
    return ([spec.input.name, *(s.input for s in spec.state)], [spec.output.name, *(s.output for s in spec.state)])
