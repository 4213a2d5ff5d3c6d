"""The single-step graph: a model's Scan graph with every time loop run once, inlined.

Scan graphs (strategies ``scan``, ``scan-legacy``, ``layer-scan``) pay onnxruntime's Scan
overhead on every call, even for one step. For ``step()`` (T=1) the same graph with each
top-level ``Scan`` replaced by ONE pass of its body computes the same numbers with no time
loop: the Scan's scan inputs lose their time axis (``Squeeze`` on axis 0: rnnx scans run
time-major), its scan outputs get it back (``Unsqueeze``), the body's initializers move to
the main graph, and its state inputs and outputs are wired straight through. Every name
from a body gets a prefix no name of the model starts with, so nothing can collide.

:func:`inline_scans` is the transformation (pure ONNX); :func:`checked_step_graph` builds it
for an export and checks it against the Scan graph at T=1 in the isolated onnxruntime
child (:mod:`rnnx.onnx_tools.ort_worker`). The export writes it as ``<stem>.step.onnx`` beside
the model and records it in the spec (:class:`rnnx.spec.StepGraph`); the step file carries
no ``rnnx.spec`` of its own: it is not a standalone model.

Example::

    step = inline_scans(onnx.load("model.onnx"))  # None: nothing to inline, or not exactly
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnx.atomic import commit_files, member_path
from rnnx.errors import ModelFileError, SpecError
from rnnx.onnx_tools.compare import compare, resolve_tolerance
from rnnx.onnx_tools.graph import store_spec, subgraphs
from rnnx.onnx_tools.ort_worker import WorkerDied, isolated_runner
from rnnx.onnx_tools.spec_io import has_spec, read_spec
from rnnx.spec import METADATA_KEY, ModelSpec, StepGraph, io_names

logger = logging.getLogger(__name__)

SUFFIX = ".step.onnx"  # model.onnx -> model.step.onnx
_SCAN_ATTRS = {
    "body",
    "num_scan_inputs",
    "scan_input_axes",
    "scan_output_axes",
    "scan_input_directions",
    "scan_output_directions",
}
_NO_SCAN = "the graph has no top-level Scan (no time loop to remove)"
PROBE_BATCH, PROBE_SEED = 3, 11  # the T=1 check: batch 3, random non-zero state


def step_file_name(model_path: str | Path) -> str:
    """``model.onnx`` -> ``model.step.onnx`` (the step graph's name beside the model file)."""
    return Path(model_path).stem + SUFFIX


_STEP_TAIL = re.compile(r"step(\.[0-9a-f]{12})?\.onnx")  # after "<stem>.": step.onnx, step.<sha12>.onnx


def step_graph_path(model_path: str | Path, data: bytes) -> Path:
    """Where the step graph ``data`` of ``model_path`` is written: ``<stem>.step.onnx``, or
    ``<stem>.step.<sha256[:12]>.onnx`` while that name holds the current model's other step
    graph (see :func:`rnnx.atomic.member_path`: the old model keeps its own until the new
    model file lands)."""
    return member_path(Path(model_path).with_name(step_file_name(model_path)), data)


def stale_step_graphs(model_path: str | Path, keep: Path | None) -> list[Path]:
    """Step graph files of ``model_path`` other than ``keep`` (an earlier export's, or one a
    killed export left): ``<stem>.step.onnx`` and ``<stem>.step.<12 hex>.onnx``, never a file
    holding an ``rnnx.spec`` (a model someone named so)."""
    model = Path(model_path)
    prefix = f"{model.stem}."
    try:
        names = sorted(os.listdir(model.parent))
    except OSError:
        return []
    found = [
        model.parent / n
        for n in names
        if n.startswith(prefix) and _STEP_TAIL.fullmatch(n[len(prefix) :]) and (keep is None or n != keep.name)
    ]
    return [p for p in found if p.is_file() and not has_spec(p)]


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of ``data`` (what :class:`rnnx.spec.StepGraph` records)."""
    return hashlib.sha256(data).hexdigest()


def _all_names(graph: onnx.GraphProto) -> Iterator[str]:
    """Every tensor and node name in ``graph`` and its subgraphs."""
    for v in [*graph.input, *graph.output, *graph.value_info]:
        yield v.name
    for t in graph.initializer:
        yield t.name
    for node in graph.node:
        yield node.name
        yield from node.input
        yield from node.output
        for g in subgraphs(node):
            yield from _all_names(g)


def _fresh_prefix(base: str, names: set[str]) -> str:
    """``base/`` (or ``base_1/``, ...) such that no name in ``names`` starts with it."""
    prefix, n = f"{base}/", 0
    while any(name.startswith(prefix) for name in names):
        n += 1
        prefix = f"{base}_{n}/"
    return prefix


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _scan_problem(node: onnx.NodeProto) -> str:
    """Why this Scan cannot be inlined exactly ("" when it can)."""
    attrs = {a.name: a for a in node.attribute}
    unknown = sorted(set(attrs) - _SCAN_ATTRS)
    if unknown:
        return f"Scan {node.name!r} has attributes {unknown} this inliner does not know"
    for key in ("scan_input_axes", "scan_output_axes"):
        if key in attrs and any(attrs[key].ints):
            return f"Scan {node.name!r} scans over {key}={list(attrs[key].ints)} (only axis 0 is inlined)"
    for key in ("scan_input_directions", "scan_output_directions"):
        if key in attrs and any(attrs[key].ints):
            return f"Scan {node.name!r} runs in reverse ({key}={list(attrs[key].ints)})"
    body, n_scan = attrs["body"].g, attrs["num_scan_inputs"].i
    if len(body.input) != len(node.input) or len(body.output) != len(node.output):
        return (
            f"Scan {node.name!r} has {len(node.input)} inputs/{len(node.output)} outputs but its "
            f"body {len(body.input)}/{len(body.output)}"
        )
    if not 0 < n_scan <= len(node.input) or "" in node.input:
        return f"Scan {node.name!r} has num_scan_inputs={n_scan} over {len(node.input)} inputs"
    nested = [n.op_type for n in body.node if subgraphs(n)]
    if nested:
        return f"Scan {node.name!r} has nested subgraphs ({', '.join(nested)}) in its body"
    return ""


def why_not(model: onnx.ModelProto) -> str:
    """Why :func:`inline_scans` gives no graph for ``model`` ("" when it gives one)."""
    scans = [n for n in model.graph.node if n.op_type == "Scan" and n.domain in ("", "ai.onnx")]
    if not scans:
        return _NO_SCAN
    if _opset(model) < 9:
        return f"opset {_opset(model)} Scan (before 9) has a batch axis and sequence lengths"
    others = sorted({n.op_type for n in model.graph.node if subgraphs(n) and n.op_type != "Scan"})
    if others:
        return f"the graph has other control flow ({', '.join(others)}) left"
    return next((p for p in map(_scan_problem, scans) if p), "")


def inline_scans(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of ``model`` with every top-level Scan replaced by one pass of its body (T=1 only).

    The graph's inputs and outputs (names, dtypes, declared shapes) stay as they are; the
    ``rnnx.spec`` metadata key is dropped (the step graph is not a standalone model).

    Args:
        model: an ONNX model whose time loops are top-level forward Scans over axis 0.

    Returns:
        The step graph, or None (why: logged at DEBUG for a graph without Scan, else INFO) when there is no Scan
        or one that cannot be inlined exactly (another scan axis, reverse direction, nested
        control flow, Loop/If elsewhere, an opset before 9, a result the checker rejects).
    """
    reason = why_not(model)
    if reason:  # no Scan at all is the common case (trace graphs): not worth an INFO line
        logger.log(logging.DEBUG if reason == _NO_SCAN else logging.INFO, "no step graph: %s", reason)
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    names = set(_all_names(graph))
    axes = _axes_input(graph, names, _opset(out))
    nodes: list[onnx.NodeProto] = []
    for k, node in enumerate(graph.node):
        if node.op_type != "Scan":
            nodes.append(node)
            continue
        prefix = _fresh_prefix(f"step{k}", names)
        nodes += _inline_one(node, prefix, graph, axes)
    del graph.node[:]
    graph.node.extend(nodes)
    props = [p for p in out.metadata_props if p.key != METADATA_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(props)
    out.doc_string = "rnnx single-step graph (time length 1 only): the model's Scans run once, inlined"
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        logger.info("no step graph: onnx.checker rejects the inlined graph (%s)", " ".join(str(e).split())[:300])
        return None
    return out


def _axes_input(graph: onnx.GraphProto, names: set[str], opset: int) -> str:
    """The name of an int64 ``[0]`` initializer for Squeeze/Unsqueeze (opset >= 13), else ""."""
    if opset < 13:
        return ""
    name = _fresh_prefix("step_axes", names) + "axis0"
    graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), name))
    return name


def _axis0(op: str, src: str, dst: str, axes: str, name: str) -> onnx.NodeProto:
    """``Squeeze``/``Unsqueeze`` on axis 0, in the form of the graph's opset."""
    if axes:
        return helper.make_node(op, [src, axes], [dst], name=name)
    return helper.make_node(op, [src], [dst], name=name, axes=[0])


def _inline_one(node: onnx.NodeProto, prefix: str, graph: onnx.GraphProto, axes: str) -> list[onnx.NodeProto]:
    """The nodes that replace one Scan; moves its body's initializers into ``graph``."""
    attrs = {a.name: a for a in node.attribute}
    body, n_scan = attrs["body"].g, attrs["num_scan_inputs"].i
    n_state = len(node.input) - n_scan
    rename: dict[str, str] = {}  # body-local name -> main-graph name
    nodes: list[onnx.NodeProto] = []
    for i, (inner, outer) in enumerate(zip(body.input, node.input)):
        if i < n_state:  # state: the Scan's input is the body's input for its one pass
            rename[inner.name] = outer
        else:  # scanned: the one time slice, time axis dropped
            rename[inner.name] = prefix + inner.name
            nodes.append(_axis0("Squeeze", outer, rename[inner.name], axes, f"{prefix}squeeze{i}"))
    for t in body.initializer:
        rename[t.name] = prefix + t.name
        moved = onnx.TensorProto()
        moved.CopyFrom(t)
        moved.name = rename[t.name]
        graph.initializer.append(moved)
    for inner in body.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(inner)
        for j, v in enumerate(copy.input):
            copy.input[j] = rename.get(v, v)  # names not local to the body come from the main graph
        for j, v in enumerate(copy.output):
            if v:
                copy.output[j] = rename.setdefault(v, prefix + v)
        copy.name = prefix + (inner.name or f"node{len(nodes)}")
        nodes.append(copy)
    for v in body.value_info:
        if v.name in rename:
            info = onnx.ValueInfoProto()
            info.CopyFrom(v)
            info.name = rename[v.name]
            graph.value_info.append(info)
    for i, (inner, outer) in enumerate(zip(body.output, node.output)):
        if not outer:  # an unused Scan output
            continue
        src = rename.get(inner.name, inner.name)
        if i < n_state:
            nodes.append(helper.make_node("Identity", [src], [outer], name=f"{prefix}state_out{i}"))
        else:
            nodes.append(_axis0("Unsqueeze", src, outer, axes, f"{prefix}unsqueeze{i}"))
    return nodes


Probe = tuple[np.ndarray, list[np.ndarray]]  # (x of one step, states) at batch PROBE_BATCH


def spec_probe(spec: ModelSpec) -> Probe:
    """The same from the contract alone (no model at hand: a file being quantized)."""
    rng = np.random.default_rng(PROBE_SEED)
    if spec.input.time_axis is None:
        raise SpecError(
            f"{spec.input.name}: a step graph needs an input with a time axis, got shape {spec.input.shape}"
        )
    shape = list(spec.input.concrete_shape(PROBE_BATCH))
    shape.insert(spec.input.time_axis, 1)
    dtype = np.dtype(spec.input.dtype)
    x = (
        rng.standard_normal(shape).astype(dtype)
        if dtype.kind == "f"
        else rng.integers(0, spec.input.vocab_size or 1, shape).astype(dtype)
    )
    state = [
        (0.5 * rng.standard_normal(s.concrete_shape(PROBE_BATCH))).astype(s.dtype)
        if np.dtype(s.dtype).kind == "f"
        else np.zeros(s.concrete_shape(PROBE_BATCH), s.dtype)
        for s in spec.state
    ]
    return x, state


def agrees_at_one_step(main: onnx.ModelProto, step: bytes, spec: ModelSpec, probe: Probe) -> bool:
    """Whether the graph ``step`` (serialized) gives ``main``'s outputs and states at T=1.

    Both graphs run in the isolated onnxruntime child (a crash is a failed check, not a dead
    process) on ``probe`` (one step at batch 3 from a random non-zero state); every output
    and state must agree within the parity tolerance of the spec's family and precision. A
    disagreement or a crash is logged as a WARNING naming the tensors.
    """
    x, state = probe
    inputs, outputs = io_names(spec)
    results = []
    try:
        for graph in (main.SerializeToString(), step):
            with isolated_runner(graph, inputs, outputs, spec.precision) as run:
                results.append(run(x, state))
    except (WorkerDied, RuntimeError) as e:
        logger.warning("no step graph: onnxruntime failed on it at T=1 (%s)", " ".join(str(e).split())[:300])
        return False
    tol, source = resolve_tolerance(spec.kind, None, None, spec.precision)
    (want_y, want_s), (got_y, got_s) = results
    names = [spec.output.name, *(s.name for s in spec.state)]
    rows = [compare("step", PROBE_BATCH, 1, n, g, w, tol) for n, g, w in zip(names, [got_y, *got_s], [want_y, *want_s])]
    bad = [r for r in rows if not r.ok]
    if bad:
        logger.warning(
            "no step graph: it differs from the Scan graph at T=1 (%s; tolerance %s: atol %g, rtol %g)",
            ", ".join(f"{r.tensor} max_abs {r.max_abs:.3g}" for r in bad),
            source,
            tol.atol,
            tol.rtol,
        )
        return False
    logger.info("step graph checked at T=1 against the Scan graph: max |diff| %.3g", max(r.max_abs for r in rows))
    return True


def step_graph_entry(path: Path, data: bytes) -> StepGraph:
    """The spec's record of the step graph ``data`` written at ``path``.

    Raises:
        SpecError: a name the contract cannot record (no ``.onnx`` end, a leading dot, too long).
    """
    return StepGraph.from_dict({"file": path.name, "sha256": sha256_hex(data)})


__all__ = [
    "PROBE_BATCH",
    "PROBE_SEED",
    "SUFFIX",
    "Probe",
    "agrees_at_one_step",
    "inline_scans",
    "spec_probe",
    "sha256_hex",
    "step_file_name",
    "step_graph_entry",
    "why_not",
]


def _refuse_to_overwrite_a_model(step_path: Path) -> None:
    """Raise SpecError when ``step_path`` holds a standalone rnnx model (one with ``rnnx.spec``)."""
    if not step_path.exists():
        return
    try:
        spec = read_spec(step_path)
    except (ModelFileError, SpecError):  # not an rnnx model (an older step graph): ours to replace
        return
    raise SpecError(
        f"{step_path} is another exported model (its rnnx.spec says {spec.kind}, "
        f"{spec.exporter}); not overwriting it with this model's step graph"
    )


def commit_onnx(
    proto: onnx.ModelProto, path: str | os.PathLike, spec: ModelSpec, step: bytes | None
) -> tuple[ModelSpec, Path | None]:
    """Write ``proto`` to ``path`` as one artifact with its step graph ``step`` beside it.

    One commit: the step graph first, under a name the file now at ``path`` does not read
    (:func:`rnnx.onnx_tools.step_graph.step_graph_path`), the model file naming it with its
    SHA-256 last, then the earlier export's step graph removed; a reader or a crash sees the
    old pair or the new. ``step`` None writes the file without one (and removes the old one).

    Returns:
        The spec stored in the file (``step_graph`` set, or None: no ``step``, or a name the
        contract cannot record or another model's file in the way, logged as a WARNING) and
        the step graph's path or None.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec, step_path = dataclasses.replace(spec, step_graph=None), None
    if step is not None:
        try:
            _refuse_to_overwrite_a_model(out.with_name(step_file_name(out)))
            step_path = step_graph_path(out, step)  # never the file the current model reads
            spec = dataclasses.replace(spec, step_graph=step_graph_entry(step_path, step))
        except SpecError as e:  # a name the contract cannot record (a leading dot), or a model's file
            logger.warning("no step graph: %s", e)
            step_path = None
    store_spec(proto, spec)
    members = {step_path: step} if step_path is not None and step is not None else {}
    stale = stale_step_graphs(out, step_path)
    commit_files(out, proto.SerializeToString(), members, stale)
    for old in stale:
        logger.info("removed %s: the step graph of the %s an earlier export wrote", old.name, out.name)
    return spec, step_path
