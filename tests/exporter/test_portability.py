"""Portable graphs: every export runs the same on onnx.reference, uses no Loop/Sequence ops,
scans over time-major axis 0 and keeps each Scan body's weights in the body."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from tests.zoo import MATRIX, TINY, example_input

ALL = sorted(set(MATRIX) | set(TINY))
BANNED = {
    "Loop",
    "SequenceConstruct",
    "SequenceInsert",
    "SequenceAt",
    "SequenceEmpty",
    "SequenceLength",
    "ConcatFromSequence",
    "SplitToSequence",
    "SequenceErase",
}


def _nodes(graph: onnx.GraphProto):
    """Every node of ``graph`` and of its subgraphs (Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for g in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                yield from _nodes(g)


def _feeds(model, spec, batch: int = 3, steps: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = example_input(model, batch, steps).numpy()
    feeds = {spec.input.name: x}
    for s in spec.state:
        shape = [batch if d == "batch" else d for d in s.shape]
        feeds[s.input] = (0.5 * rng.standard_normal(shape)).astype(s.dtype)
    return feeds


@pytest.mark.parametrize("name", sorted(TINY))
def test_reference_evaluator_matches_onnxruntime(exported, name: str) -> None:
    model, result = exported(name, "onnx")
    proto = onnx.load(str(result.path))
    feeds = _feeds(model, result.spec)
    want = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ReferenceEvaluator(proto).run(None, feeds)
    names = [o.name for o in proto.graph.output]
    for n, a, b in zip(names, want, got):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5, err_msg=f"{name}: {n}")


@pytest.mark.parametrize("name", ALL)
def test_no_loop_or_sequence_ops(exported, name: str) -> None:
    _, result = exported(name, "onnx")
    ops = {n.op_type for n in _nodes(onnx.load(str(result.path)).graph)}
    assert not ops & BANNED, f"{name} ({result.strategy}): {sorted(ops & BANNED)}"


@pytest.mark.parametrize(
    "name,strategy",
    [("lstm-2l-proj", "scan"), ("convlstm-k3", "auto"), ("custom-peephole", "auto"), ("lstm-1l-proj-bi", "layer-scan")],
)
def test_scans_run_over_axis_0_and_keep_their_weights_in_the_body(exported, name: str, strategy: str) -> None:
    _, result = exported(name, "onnx", strategy)
    graph = onnx.load(str(result.path)).graph
    scans = [n for n in graph.node if n.op_type == "Scan"]
    assert scans, f"{name}: {result.strategy} graph has no Scan"
    for scan in scans:
        attrs = {a.name: a for a in scan.attribute}
        assert list(attrs["scan_input_axes"].ints) in ([], [0]) if "scan_input_axes" in attrs else True
        assert "scan_input_directions" not in attrs and "scan_output_directions" not in attrs
        body = attrs["body"].g
        assert any(t.dims and len(t.dims) >= 2 for t in body.initializer), "weights live in the body"
    # weights outside a body (hoisted input projections, heads) are read by outer nodes, never
    # by a body alone: body-only weights stay in the body (the int8 quantizer relies on it)
    outer_reads = {i for n in graph.node for i in n.input}
    body_only = [t.name for t in graph.initializer if t.name not in outer_reads]
    assert body_only == [], body_only


def test_reverse_direction_scans_the_flipped_sequence(exported) -> None:
    _, result = exported("lstm-1l-proj-bi", "onnx", "layer-scan")
    graph = onnx.load(str(result.path)).graph
    assert [n.op_type for n in graph.node].count("Scan") == 2  # forward and reverse
    flips = [n for n in graph.node if n.op_type == "Slice"]
    assert flips, "the reverse Scan reads a time-flipped x"


@pytest.mark.parametrize(
    "name,strategy",
    [
        ("convlstm-k3", "auto"),
        ("convlstm-k5-2l", "auto"),
        ("custom-peephole", "auto"),
        ("lstm-2l-proj", "scan"),
        ("gru-2l", "scan-legacy"),
    ],
)
def test_step_graphs_match_onnxruntime_in_the_reference_evaluator(exported, name: str, strategy: str) -> None:
    """A scan export's step graph (shipped beside it) is portable too: onnx.reference equals onnxruntime at T=1."""
    model, result = exported(name, "onnx", strategy)
    assert result.step_graph_path is not None, f"{name} ({result.strategy}): no step graph"
    proto = onnx.load(str(result.step_graph_path))
    assert not {n.op_type for n in _nodes(proto.graph)} & (BANNED | {"Scan"}), name
    feeds = _feeds(model, result.spec, steps=1)
    want = ort.InferenceSession(str(result.step_graph_path), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ReferenceEvaluator(proto).run(None, feeds)
    for out, a, b in zip(proto.graph.output, want, got):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5, err_msg=f"{name}: {out.name}")
