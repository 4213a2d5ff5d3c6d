"""Structural checks and clean-up of a freshly built ONNX graph.

Every candidate graph goes through :func:`finalize`: dynamic axes checked, I/O shapes
set from the spec, unused initializers dropped, the spec stored in the metadata, and
``onnx.checker`` run with ``full_check``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from rnnx.atomic import path_kind
from rnnx.errors import ExportError, ModelFileError, SpecError
from rnnx.spec import METADATA_KEY, ModelSpec


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse an ONNX file (without external data), with a clear error when it is not one.

    Raises:
        ModelFileError: ``path`` is no regular file (missing, a folder, a FIFO that would block
            the read), cannot be read, or is not ONNX.
    """
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: expected an ONNX file, got {path_kind(path)}")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not a valid ONNX or TorchScript model ({type(e).__name__})") from None
    if not model.ir_version or not model.graph.node:
        raise ModelFileError(f"{path}: not a valid ONNX or TorchScript model (no graph found)")
    return model


def load_onnx_with_weights(path: str | os.PathLike) -> onnx.ModelProto:
    """:func:`load_onnx` plus the weights an external-data file keeps beside it (read into the
    model, so what is made from it is self-contained).

    Raises:
        ModelFileError: not ONNX, or its weights file is missing or unreadable.
    """
    model = load_onnx(path)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_initializers(model.graph)):
        try:  # torch.onnx.export(dynamo=True) keeps the weights in SRC.data next to it
            onnx.load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            raise ModelFileError(f"{path}: cannot read its external weights ({e})") from None
    return model


def stored_bytes(path: str | os.PathLike) -> int:
    """What an ONNX file takes on disk: the file plus the external-data files beside it that
    its weights name (each counted once; a name outside the file's folder is not followed)."""
    file = os.path.abspath(path)
    folder = os.path.dirname(file)
    locations = {
        entry.value
        for t in _all_initializers(load_onnx(file).graph)
        if t.data_location == onnx.TensorProto.EXTERNAL
        for entry in t.external_data
        if entry.key == "location"
    }
    beside = (os.path.join(folder, loc) for loc in locations)
    return os.path.getsize(file) + sum(
        os.path.getsize(p) for p in beside if os.path.dirname(os.path.abspath(p)) == folder and os.path.isfile(p)
    )


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs a node holds (a Scan/Loop body, If branches); empty for ordinary ops."""
    return [g for a in node.attribute for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs)]


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (Scan/Loop bodies, If branches), depth first."""
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from all_graphs(sub)


def _all_initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    return [t for g in all_graphs(graph) for t in g.initializer]


def _io_axes(spec: ModelSpec) -> dict[str, tuple[tuple, tuple[int, ...]]]:
    """name -> (spec shape, axes that must be symbolic)."""
    data_axes = tuple(a for a in (spec.input.batch_axis, spec.input.time_axis) if a is not None)
    out = {spec.input.name: (spec.input.shape, data_axes), spec.output.name: (spec.output.shape, data_axes)}
    for s in spec.state:
        out[s.input] = (s.shape, (s.batch_axis,))
        out[s.output] = (s.shape, (s.batch_axis,))
    return out


def check_io(graph: onnx.GraphProto, spec: ModelSpec) -> None:
    """Names match the spec, and no batch/time axis is fixed to a number.

    Raises:
        ExportError: a missing name, a wrong rank, or a fixed dynamic axis.
    """
    want = _io_axes(spec)
    have = {v.name: v for v in [*graph.input, *graph.output]}
    for name, (shape, axes) in want.items():
        if name not in have:
            raise ExportError(f"graph has no input/output {name!r} (has {sorted(have)})")
        dims = have[name].type.tensor_type.shape.dim
        if dims and len(dims) != len(shape):
            raise ExportError(f"{name}: expected rank {len(shape)} {list(shape)}, got {len(dims)}")
        for a in axes:
            if dims and dims[a].HasField("dim_value"):
                raise ExportError(
                    f"{name}: axis {a} ({shape[a]}) is fixed to {dims[a].dim_value} in the graph; it must stay symbolic"
                )


def write_shape(value: onnx.ValueInfoProto, shape: tuple) -> None:
    """Set a graph input/output's shape: strings become symbolic dims, ints fixed ones."""
    value.type.tensor_type.shape.Clear()
    for d in shape:
        dim = value.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def set_io_shapes(graph: onnx.GraphProto, spec: ModelSpec) -> None:
    """Write the spec's shapes (symbolic batch/time, concrete features) on graph I/O."""
    want = _io_axes(spec)
    for v in [*graph.input, *graph.output]:
        if v.name in want:
            write_shape(v, want[v.name][0])


def _used_names(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every tensor name a node reads, subgraphs (Scan/Loop/If bodies) included."""
    used: set[str] = set()
    for node in nodes:
        used.update(node.input)
        for g in subgraphs(node):
            used |= _used_names(g.node)
            used.update(o.name for o in g.output)
    return used


def remove_unused_initializers(graph: onnx.GraphProto) -> int:
    """Drop initializers no node reads; returns how many were removed."""
    used = _used_names(graph.node) | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    removed = len(graph.initializer) - len(keep)
    if removed:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def unused_initializers(graph: onnx.GraphProto) -> list[str]:
    """Names of initializers that no node reads."""
    used = _used_names(graph.node) | {o.name for o in graph.output}
    return [t.name for t in graph.initializer if t.name not in used]


def store_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Make ``spec`` the model's only metadata (the ``rnnx.spec`` key), in place."""
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})


def stored_spec(model: onnx.ModelProto, where: str | os.PathLike) -> ModelSpec | None:
    """The spec :func:`store_spec` put in ``model``'s metadata; None when it has none.

    Raises:
        SpecError: the stored spec is malformed (the message starts with ``where``).
    """
    text = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    try:
        return None if text is None else ModelSpec.from_json(text)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None


def finalize(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Check and clean a candidate graph in place, store the spec, run the full checker.

    Raises:
        ExportError: dynamic axes fixed, names missing, or the checker rejects the graph.
    """
    graph = model.graph
    check_io(graph, spec)
    set_io_shapes(graph, spec)
    remove_unused_initializers(graph)
    store_spec(model, spec)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"onnx.checker rejected the graph: {first}") from None
    return model


def to_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Relabel a dynamo graph (opset 18) as ``opset`` where its ops mean the same there.

    onnx's version converter has no adapter down from Split-18, so this does the one
    change step graphs need itself: ``Split(num_outputs=...)`` gets explicit sizes (read
    off shape inference), which every opset since 13 accepts. Any other op whose
    definition changed after ``opset`` is refused (the ``scan-legacy`` builder remains).

    Raises:
        ValueError: an op cannot be expressed at ``opset``.
    """
    current = _default_opset(model)
    if current <= opset:
        return model
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {
        v.name: v.type.tensor_type.shape
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    for node in model.graph.node:
        n_out = next((a.i for a in node.attribute if a.name == "num_outputs"), None)
        if node.op_type != "Split" or n_out is None:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        dims = shapes[node.input[0]].dim
        size = dims[axis if axis >= 0 else len(dims) + axis].dim_value
        if size <= 0 or size % n_out:
            raise ValueError(
                f"Split {node.name}: cannot give explicit sizes to a split of {size or 'a symbolic size'} into {n_out}"
            )
        sizes = helper.make_tensor(f"{node.name}_sizes", onnx.TensorProto.INT64, [n_out], [size // n_out] * n_out)
        model.graph.initializer.append(sizes)
        node.input.append(sizes.name)
        keep = [a for a in node.attribute if a.name != "num_outputs"]
        del node.attribute[:]
        node.attribute.extend(keep)
    changed = sorted(
        {
            n.op_type
            for n in model.graph.node
            if n.domain in ("", "ai.onnx")
            and n.op_type != "Split"
            and onnx.defs.get_schema(n.op_type, current).since_version > opset
        }
    )
    if changed:
        raise ValueError(
            f"the step graph uses {', '.join(changed)}, changed after opset {opset}; export with opset >= {current}"
        )
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset
    return model


def _default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
