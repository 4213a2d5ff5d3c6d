"""Triton Inference Server model repositories for streaming models (``--format triton``).

Triton's sequence batcher keeps each sequence's state on the server ("implicit state")
and batches many live sequences into one run. :func:`export_triton` writes::

    REPO/<name>/config.pbtxt     backend "onnxruntime", max_batch_size, sequence_batching
                                 (oldest or direct), control inputs, one implicit state
                                 per rnnx state, instance_group
    REPO/<name>/1/model.onnx     the rnnx graph with batch-first states and the control
                                 inputs wired in (START zeroes a sequence's state,
                                 READY keeps the state of an empty batch slot)

Everything in the config is generated from the file's ``rnnx.spec``; nothing is typed
twice. Before it returns, the repository's graph is run the way Triton runs it (several
sequences of different lengths interleaved in batch slots, states zeroed at START and
carried between requests, an empty slot with READY=0) and each sequence's outputs are
compared with the original graph run on that sequence alone.

Example::

    repo = export_triton("lstm.onnx", "repo", TritonConfig(name="lstm"))
    repo.config_path  # PosixPath('repo/lstm/config.pbtxt')
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnx.atomic import atomic_dir, write_bytes_atomic, write_text_atomic
from rnnx.checks import check_int
from rnnx.errors import ConfigError, NotStreamableError, ParityError
from rnnx.names import check_name
from rnnx.onnx_tools.compare import check_close, resolve_tolerance
from rnnx.onnx_tools.dynamic_axes import elem_dtype_name
from rnnx.onnx_tools.graph import set_io_shapes, store_spec
from rnnx.onnx_tools.spec_io import load_with_spec
from rnnx.onnx_tools.state_layout import rename_producer, rename_uses, to_batch_first
from rnnx.onnx_tools.triton_python import CONFIG_FILE, random_steps, write_python_repository
from rnnx.runtime.backend import OrtBackend, open_graph
from rnnx.runtime.triton_backend import PARAMETER_MODEL as PYTHON_MODEL_PARAMETER
from rnnx.spec import BATCH, TRITON_DTYPES, ModelSpec

STRATEGIES = ("oldest", "direct")  # Triton sequence-batcher scheduling strategies
BACKENDS = ("onnxruntime", "python")  # Triton's onnxruntime backend, or rnnx.runtime in the python backend
PYTHON_CONTROLS = ("START", "READY", "END")  # the python flavour keeps the state itself: it needs these
INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
CONTROL_KINDS = {  # control input name -> Triton control kind
    "START": "CONTROL_SEQUENCE_START",
    "READY": "CONTROL_SEQUENCE_READY",
    "END": "CONTROL_SEQUENCE_END",
    "CORRID": "CONTROL_SEQUENCE_CORRID",
}
CONTROL_DTYPES = {"START": "int32", "READY": "int32", "END": "int32", "CORRID": "uint64"}  # as Triton sends them
_TRITON_TYPES = {**TRITON_DTYPES, "uint64": "TYPE_UINT64"}  # the contract's dtypes and CORRID's
ONNX_FILE = "model.onnx"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # matched against the whole name


@dataclass(frozen=True)
class TritonConfig:
    """How Triton should serve the model (every field becomes part of ``config.pbtxt``)."""

    name: str = "rnnx_model"  # model name = folder under the repository
    max_batch_size: int = 64  # live sequences stacked into one onnxruntime run
    strategy: str = "oldest"  # sequence batcher: "oldest" (dynamic) or "direct" (fixed slots)
    max_queue_delay_us: int = 1000  # how long the batcher waits to fill a batch
    idle_timeout_us: int = 60_000_000  # a sequence idle this long is released with its state
    instance_kind: str = "cpu"  # "cpu" or "gpu"
    instance_count: int = 1  # model instances (each has its own batch slots)
    gpus: tuple[int, ...] = ()  # GPU ids for instance_kind="gpu" (empty: every GPU)
    controls: tuple[str, ...] = ("START", "READY")  # control inputs added to the graph
    version: int = 1  # model version folder
    backend: str = "onnxruntime"  # "onnxruntime" (implicit state) or "python" (rnnx.runtime in Triton)

    def validate(self) -> TritonConfig:
        """Check every field; returns self.

        Raises:
            ConfigError: naming the field, the expected and the received value.
        """
        check_name(self.name, "name", ConfigError)  # never '..', '.', a separator or a line break
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"name: expected letters, digits, '_', '-' or '.', got {self.name!r}")
        for field in ("max_batch_size", "instance_count", "version", "idle_timeout_us"):
            check_int(field, getattr(self, field))
        check_int("max_queue_delay_us", self.max_queue_delay_us, minimum=0)
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.instance_kind not in INSTANCE_KINDS:
            raise ConfigError(f"instance_kind: expected one of {', '.join(INSTANCE_KINDS)}, got {self.instance_kind!r}")
        if self.gpus and self.instance_kind != "gpu":
            raise ConfigError(
                f"gpus: only for instance_kind='gpu', got gpus={list(self.gpus)} "
                f"with instance_kind={self.instance_kind!r}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "python" and self.instance_kind != "cpu":
            raise ConfigError(
                f"instance_kind: the python backend runs rnnx.runtime on the CPU, expected "
                f"'cpu', got {self.instance_kind!r}"
            )
        bad = [c for c in self.controls if c not in CONTROL_KINDS]
        if bad or len(set(self.controls)) != len(self.controls):
            raise ConfigError(
                f"controls: expected distinct names among {', '.join(CONTROL_KINDS)}, got {list(self.controls)}"
            )
        return self

    @property
    def serves_step_graph(self) -> bool:
        """Whether the repository serves the ONNX file as is, its step graph included (the
        python flavour); the onnxruntime flavour rebuilds the graph with Triton's state layout
        and has no use for one."""
        return self.backend == "python"


@dataclass(frozen=True)
class TritonRepository:
    """What :func:`export_triton` wrote."""

    model_dir: Path  # REPO/<name>
    config_path: Path  # REPO/<name>/config.pbtxt
    onnx_path: Path  # REPO/<name>/<version>/model.onnx
    spec: ModelSpec  # the contract of the repository's graph (batch-first states)
    max_abs_error: float  # worst difference seen by the Triton-style verification run


# ---------------------------------------------------------------------------- graph


def _control_dtype(name: str) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(CONTROL_DTYPES[name]))


def _mask(graph_nodes: list, inits: list, control: str, rank: int) -> str:
    """Nodes turning a (batch, 1) int32 control into a bool mask broadcastable to ``rank``."""
    shape_name = f"{control}__mask_shape_r{rank}"
    out = f"{control}__mask_r{rank}"
    if not any(t.name == shape_name for t in inits):
        inits.append(numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), shape_name))
        graph_nodes.append(
            helper.make_node(
                "Cast", [control], [f"{control}__bool_r{rank}"], to=TensorProto.BOOL, name=f"{control}_bool_r{rank}"
            )
        )
        graph_nodes.append(
            helper.make_node("Reshape", [f"{control}__bool_r{rank}", shape_name], [out], name=f"{control}_mask_r{rank}")
        )
    return out


def _mask_empty_ids(graph: onnx.GraphProto, pre: list, inits: list, spec: ModelSpec) -> None:
    """Token ids of empty slots (READY=0) become 0: Triton fills those slots with arbitrary bytes,
    and one id out of the vocabulary would fail the whole batch's Gather."""
    x = spec.input.name
    masked = f"{x}__ready"
    rename_uses(graph.node, x, masked)
    zero = f"{x}__zero_id"
    inits.append(numpy_helper.from_array(np.zeros((), np.dtype(spec.input.dtype)), zero))
    mask = _mask(pre, inits, "READY", len(spec.input.shape))
    pre.append(helper.make_node("Where", [mask, x, zero], [masked], name=f"{x}_ready"))


def add_controls(proto: onnx.ModelProto, spec: ModelSpec, controls: Sequence[str]) -> onnx.ModelProto:
    """Add Triton's control inputs to a graph whose states are batch-first.

    ``START`` (int32, (batch, 1)) zeroes the incoming state of the sequences that start;
    ``READY`` keeps the incoming state for empty slots (and zeroes their token ids, which
    Triton leaves arbitrary); ``END`` and ``CORRID`` are accepted
    as inputs (Triton drops a sequence's implicit state at its end itself).
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    pre: list[onnx.NodeProto] = []
    post: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for c in controls:
        graph.input.append(helper.make_tensor_value_info(c, _control_dtype(c), [BATCH, 1]))
    if "READY" in controls and np.dtype(spec.input.dtype).kind in "iu":
        _mask_empty_ids(graph, pre, inits, spec)
    np_dtypes = {s.name: np.dtype(s.dtype) for s in spec.state}
    for s in spec.state:
        rank = len(s.shape)
        effective = s.input
        if "START" in controls:
            effective = f"{s.input}__started"
            rename_uses(graph.node, s.input, effective)
            zero = f"{s.name}__zero"
            inits.append(numpy_helper.from_array(np.zeros((), np_dtypes[s.name]), zero))
            mask = _mask(pre, inits, "START", rank)
            pre.append(helper.make_node("Where", [mask, zero, s.input], [effective], name=f"{s.name}_start"))
        if "READY" in controls:
            computed = f"{s.output}__computed"
            rename_uses(graph.node, s.output, computed)
            rename_producer(graph, s.output, computed)
            mask = _mask(pre, inits, "READY", rank)
            post.append(helper.make_node("Where", [mask, computed, effective], [s.output], name=f"{s.name}_ready"))
    nodes = [*pre, *graph.node, *post]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    return out


def triton_graph(proto: onnx.ModelProto, spec: ModelSpec, controls: Sequence[str]) -> tuple[onnx.ModelProto, ModelSpec]:
    """The repository's graph: batch-first states, control inputs, spec stored, checked."""
    if not spec.streamable:
        raise NotStreamableError(
            f"{spec.kind} model is not streamable (bidirectional): Triton's "
            f"sequence batcher feeds it one request at a time"
        )
    for io in (spec.input, spec.output):
        if io.batch_axis != 0:
            raise ConfigError(
                f"{io.name}: Triton needs the batch axis first, got batch_axis "
                f"{io.batch_axis} in shape {list(io.shape)}"
            )
    graph, new_spec = to_batch_first(proto, spec)
    graph = add_controls(graph, new_spec, controls)
    new_spec = dataclasses.replace(new_spec, extra={**new_spec.extra, "triton_controls": list(controls)})
    set_io_shapes(graph.graph, new_spec)
    store_spec(graph, new_spec)
    onnx.checker.check_model(graph, full_check=True)
    return graph, new_spec


# ---------------------------------------------------------------------------- config.pbtxt


class _Enum(str):
    """A protobuf enum value: written bare, not quoted."""


def _dims(shape: Sequence[Any]) -> list[int]:
    """Triton dims of a batch-first shape: batch dropped, time (and any name) -> -1."""
    return [-1 if isinstance(d, str) else int(d) for d in shape[1:]]


def config_dict(spec: ModelSpec, cfg: TritonConfig, model_file: str = ONNX_FILE) -> dict[str, Any]:
    """``config.pbtxt`` as nested dicts/lists (the layout of Triton's ``ModelConfig`` proto).

    With ``cfg.backend == "python"``: no implicit state (the model keeps it), START, READY
    and END always among the controls, and ``model_file`` named in a parameter when it is
    not ``model.onnx``.
    """

    def io(v: Any) -> dict[str, Any]:
        return {"name": v.name, "data_type": _Enum(TRITON_DTYPES[v.dtype]), "dims": _dims(v.shape)}

    python = cfg.backend == "python"
    controls = []
    for c in dict.fromkeys((*PYTHON_CONTROLS, *cfg.controls) if python else cfg.controls):
        control: dict[str, Any] = {"kind": _Enum(CONTROL_KINDS[c])}
        if CONTROL_DTYPES[c] != "int32":  # CORRID: Triton's default control type is int32
            control["data_type"] = _Enum(_TRITON_TYPES[CONTROL_DTYPES[c]])
        else:
            control["int32_false_true"] = [0, 1]
        controls.append({"name": c, "control": [control]})
    states = [
        {
            "input_name": s.input,
            "output_name": s.output,
            "data_type": _Enum(TRITON_DTYPES[s.dtype]),
            "dims": _dims(s.shape),
            "initial_state": [
                {
                    "name": f"{s.name}_zeros",
                    "data_type": _Enum(TRITON_DTYPES[s.dtype]),
                    "dims": _dims(s.shape),
                    "zero_data": True,
                }
            ],
        }
        for s in spec.state
    ]
    if cfg.strategy == "oldest":
        strategy = {
            "oldest": {
                "max_candidate_sequences": cfg.max_batch_size,
                "preferred_batch_size": [cfg.max_batch_size],
                "max_queue_delay_microseconds": cfg.max_queue_delay_us,
            }
        }
    else:
        strategy = {"direct": {"max_queue_delay_microseconds": cfg.max_queue_delay_us}}
    group: dict[str, Any] = {"kind": _Enum(INSTANCE_KINDS[cfg.instance_kind]), "count": cfg.instance_count}
    if cfg.gpus:
        group["gpus"] = list(cfg.gpus)
    d: dict[str, Any] = {
        "name": cfg.name,
        "backend": cfg.backend,
        "max_batch_size": cfg.max_batch_size,
        "input": [io(spec.input)],
        "output": [io(spec.output)],
        "sequence_batching": {
            **strategy,
            "max_sequence_idle_microseconds": cfg.idle_timeout_us,
            "control_input": controls,
            **({} if python else {"state": states}),
        },
        "instance_group": [group],
    }
    if python and model_file != ONNX_FILE:
        d["parameters"] = [{"key": PYTHON_MODEL_PARAMETER, "value": {"string_value": model_file}}]
    return d


def _scalar(v: Any) -> str:
    if isinstance(v, _Enum):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(v)


def to_pbtxt(d: dict[str, Any], indent: int = 0) -> str:
    """Protobuf text format of nested dicts (messages), lists (repeated) and scalars."""
    pad = "  " * indent
    lines = []
    for key, value in d.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", to_pbtxt(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            items = [f"{pad}  {{\n{to_pbtxt(v, indent + 2)}\n{pad}  }}" for v in value]
            lines.append(f"{pad}{key} [\n" + ",\n".join(items) + f"\n{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- verification


def _session(proto: onnx.ModelProto, precision: str) -> OrtBackend:
    return open_graph(proto.SerializeToString(), precision)


def _garbage_step(spec: ModelSpec, rng: np.random.Generator) -> np.ndarray:
    """What Triton puts in an empty slot: arbitrary bytes (token ids far out of the vocabulary)."""
    if np.dtype(spec.input.dtype).kind in "iu":
        return rng.integers(1 << 20, 1 << 30, size=spec.input.feature_shape).astype(spec.input.dtype)
    return rng.standard_normal(spec.input.feature_shape).astype(spec.input.dtype) * 1e30


def verify_sequences(
    original: onnx.ModelProto,
    spec: ModelSpec,
    served: onnx.ModelProto,
    served_spec: ModelSpec,
    controls: Sequence[str],
    *,
    slots: int = 3,
    lengths: Sequence[int] = (4, 1, 6, 3, 5),
    atol: float | None = None,
    seed: int = 0,
) -> float:
    """Run ``served`` the way Triton's sequence batcher does and compare with ``original``.

    Sequences of different ``lengths`` share ``slots`` batch slots (one step per request,
    a new sequence takes a slot as soon as one frees); states live outside the graph,
    start as zeros and are carried per sequence; with READY an extra empty slot holds
    garbage. Each sequence's outputs must equal ``original`` run on the whole sequence,
    within ``atol`` (default: the tolerance table's entry for the spec's family and precision).

    ``atol`` defaults to the model family's tolerance at the graph's precision (1e-5 for
    float32; fp16 and int8 graphs batch differently: int8's activation ranges are per batch).

    Returns:
        The worst absolute difference.

    Raises:
        ParityError: a sequence's outputs differ by more than ``atol``.
    """
    if atol is None:
        atol = resolve_tolerance(spec.kind, None, None, spec.precision)[0].atol
    rng = np.random.default_rng(seed)
    xs = [random_steps(spec, n, rng)[0] for n in lengths]
    ref_sess, sess = _session(original, spec.precision), _session(served, served_spec.precision)
    refs = []
    for x in xs:
        ref_feeds = {spec.input.name: x[None]}
        ref_feeds.update({s.input: np.zeros(s.concrete_shape(1), s.dtype) for s in spec.state})
        refs.append(ref_sess.run([spec.output.name], ref_feeds)[0][0])
    state = {i: [np.zeros(s.concrete_shape(1)[1:], s.dtype) for s in served_spec.state] for i in range(len(xs))}
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(len(xs))}
    waiting: list[int] = list(range(len(xs)))
    active: list[int] = []
    outs = [served_spec.output.name] + [s.output for s in served_spec.state]
    while waiting or active:
        while waiting and len(active) < slots:
            active.append(waiting.pop(0))
        rows = [(i, len(got[i])) for i in active]
        garbage = "READY" in controls
        batch = len(rows) + int(garbage)
        x = np.stack([xs[i][t] for i, t in rows] + ([_garbage_step(spec, rng)] if garbage else []))
        feeds: dict[str, np.ndarray] = {served_spec.input.name: x[:, None]}
        for k, s in enumerate(served_spec.state):
            carried = [state[i][k] for i, _ in rows]
            if garbage:
                carried.append(rng.standard_normal(carried[0].shape).astype(s.dtype))
            feeds[s.input] = np.stack(carried)
        flags = {
            "START": [int(t == 0) for _, t in rows],
            "READY": [1] * len(rows),
            "END": [int(t == len(xs[i]) - 1) for i, t in rows],
            "CORRID": [i + 1 for i, _ in rows],
        }
        for c in controls:
            values = flags[c] + ([0] if garbage else [])
            feeds[c] = np.array(values, CONTROL_DTYPES[c]).reshape(batch, 1)
        y, *new = sess.run(outs, feeds)
        if garbage:
            for k, s in enumerate(served_spec.state):
                if not np.array_equal(new[k][-1], feeds[s.input][-1]):
                    raise ParityError(
                        f"READY=0 slot: state {s.output} changed; an empty batch slot must keep its state"
                    )
        for row, (i, _) in enumerate(rows):
            got[i].append(y[row, 0])
            state[i] = [n[row] for n in new]
        active = [i for i in active if len(got[i]) < len(xs[i])]
    what = "Triton-style run of sequence {} (length {}) differs from the original graph"
    return max(check_close(what.format(i, lengths[i]), np.stack(got[i]), ref, atol) for i, ref in enumerate(refs))


# ---------------------------------------------------------------------------- repository


def export_triton(
    source: str | os.PathLike,
    repo: str | os.PathLike,
    config: TritonConfig | None = None,
    *,
    verify: bool = True,
    backend: str | None = None,
) -> TritonRepository:
    """Write a Triton model repository for a streaming rnnx model.

    Args:
        source: an ``.onnx`` file exported by rnnx (:func:`rnnx.exporter.export_triton` also
            takes a contract module and exports it first).
        repo: the repository folder; ``repo/<config.name>/`` is (re)written.
        config: serving options (:class:`TritonConfig`); defaults when None.
        verify: run the Triton-style sequence check before writing anything.
        backend: overrides ``config.backend``: "onnxruntime" (the graph with batch-first
            states and controls, implicit state) or "python" (the file unchanged, served by
            rnnx.runtime in Triton's python backend, :mod:`rnnx.onnx_tools.triton_python`).

    Returns:
        A :class:`TritonRepository` with the written paths and the served contract.

    Raises:
        ConfigError: an invalid option.
        NotStreamableError: a bidirectional model.
        ParityError: the served graph disagrees with the original.
    """
    cfg = (config or TritonConfig()).validate()
    if backend is not None:
        cfg = dataclasses.replace(cfg, backend=backend).validate()
    if cfg.backend == "python":
        return _export_python(source, repo, cfg, verify)
    proto, spec = load_with_spec(source)  # the file parsed once
    _check_empty_slots(spec, cfg)
    served, served_spec = triton_graph(proto, spec, cfg.controls)
    worst = verify_sequences(proto, spec, served, served_spec, cfg.controls) if verify else float("nan")
    fields = config_dict(served_spec, cfg)
    check_config(fields, served)
    model_dir = Path(repo) / cfg.name
    with atomic_dir(model_dir) as stage:  # config and graph become visible together (other versions kept)
        (stage / str(cfg.version)).mkdir()
        write_bytes_atomic(stage / str(cfg.version) / ONNX_FILE, served.SerializeToString())
        write_text_atomic(stage / CONFIG_FILE, to_pbtxt(fields) + "\n")
    return TritonRepository(
        model_dir, model_dir / CONFIG_FILE, model_dir / str(cfg.version) / ONNX_FILE, served_spec, worst
    )


def _export_python(
    source: str | os.PathLike, repo: str | os.PathLike, cfg: TritonConfig, verify: bool
) -> TritonRepository:
    """The python flavour (:mod:`rnnx.onnx_tools.triton_python`)."""

    def text(spec: ModelSpec, model_file: str) -> str:
        return to_pbtxt(config_dict(spec, cfg, model_file)) + "\n"

    onnx_path, spec, worst = write_python_repository(source, repo, cfg.name, cfg.version, text, verify=verify)
    model_dir = Path(repo) / cfg.name
    return TritonRepository(model_dir, model_dir / CONFIG_FILE, onnx_path, spec, worst)


def _check_empty_slots(spec: ModelSpec, cfg: TritonConfig) -> None:
    """direct fills empty batch slots with arbitrary data: token ids need READY to be masked."""
    if cfg.strategy == "direct" and np.dtype(spec.input.dtype).kind in "iu" and "READY" not in cfg.controls:
        raise ConfigError(
            f"controls: a token-id model served with strategy 'direct' needs READY (Triton "
            f"fills empty batch slots with arbitrary ids; one out of the vocabulary fails the "
            f"whole batch), got {list(cfg.controls)}"
        )


def _graph_io(graph: onnx.GraphProto) -> dict[str, tuple[int, list[Any]]]:
    """name -> (ONNX elem type, dims as int or name) of the graph's inputs and outputs."""
    out = {}
    for v in [*graph.input, *graph.output]:
        t = v.type.tensor_type
        out[v.name] = (
            t.elem_type,
            [
                d.dim_param if d.HasField("dim_param") or not d.HasField("dim_value") else d.dim_value
                for d in t.shape.dim
            ],
        )
    return out


def check_config(config: dict[str, Any], graph: onnx.ModelProto) -> None:
    """The config against the graph it serves, before anything is written.

    Triton's core does not look inside the model: it loads a config whose dims, data types
    or state names disagree with the graph, and only the onnxruntime backend would refuse it.
    Every input, output, control and state of ``config`` must be a graph input/output of
    that name, data type and (batch-less) dims; each state's input and output distinct from
    the data I/O.

    Raises:
        ConfigError: naming the config field, the expected and the received value.
    """
    io = _graph_io(graph.graph)
    inputs = {v.name for v in graph.graph.input}
    outputs = {v.name for v in graph.graph.output}
    seq = config["sequence_batching"]

    def need(where: str, name: str, dtype: str, dims: Sequence[int] | None, side: set[str]) -> None:
        if name not in side:
            raise ConfigError(
                f"{where}: expected one of the graph's {'inputs' if side is inputs else 'outputs'} "
                f"{sorted(side)}, got {name!r}"
            )
        elem, shape = io[name]
        np_name = elem_dtype_name(elem)
        want = _TRITON_TYPES[np_name]
        if str(dtype) != want:
            raise ConfigError(f"{where} {name!r}: expected data_type {want} (the graph's), got {dtype}")
        graph_dims = [-1 if isinstance(d, str) else d for d in shape[1:]]
        if dims is not None and list(dims) != graph_dims:
            raise ConfigError(
                f"{where} {name!r}: expected dims {graph_dims} (the graph's, batch dropped), got {list(dims)}"
            )

    data = {config["input"][0]["name"], config["output"][0]["name"]}
    for v in config["input"]:
        need("input", v["name"], v["data_type"], v["dims"], inputs)
    for v in config["output"]:
        need("output", v["name"], v["data_type"], v["dims"], outputs)
    for c in seq["control_input"]:
        dtype = c["control"][0].get("data_type", "TYPE_INT32")
        need("control_input", c["name"], dtype, [1], inputs)
    for st in seq.get("state", []):
        for key, side in (("input_name", inputs), ("output_name", outputs)):
            if st[key] in data:
                raise ConfigError(f"state {key}: expected a state tensor, got the data tensor {st[key]!r}")
            need(f"state {key}", st[key], st["data_type"], st["dims"], side)


__all__ = [
    "BACKENDS",
    "CONTROL_KINDS",
    "STRATEGIES",
    "TRITON_DTYPES",
    "TritonConfig",
    "TritonRepository",
    "add_controls",
    "check_config",
    "config_dict",
    "export_triton",
    "to_pbtxt",
    "triton_graph",
    "verify_sequences",
]
