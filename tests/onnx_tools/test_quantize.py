"""rnnx.onnx_tools.quantize: int8 and fp16 copies that pass parity at their precision and stream."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest

from rnnx.errors import ConfigError, ModelFileError
from rnnx.exporter import check_parity, quantize, read_spec
from rnnx.onnx_tools.quantize import localize_body_weights
from rnnx.onnx_tools.spec_io import load_onnx
from rnnx.runtime import StreamingSession

pytest.importorskip("onnxruntime.quantization")

FAMILIES = ["lstm-2l", "gru-1l", "convlstm-k3"]  # the families the issue names


def _ops(path: Path) -> collections.Counter:
    """Op types of a file's graph and every subgraph."""

    def walk(g: onnx.GraphProto):
        for n in g.node:
            yield n.op_type
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from walk(a.g)

    return collections.Counter(walk(load_onnx(path).graph))


@pytest.mark.parametrize("precision", ["int8", "fp16"])
@pytest.mark.parametrize("name", FAMILIES)
def test_quantized_file_passes_parity_and_streams(exported, tmp_path, name: str, precision: str) -> None:
    model, result = exported(name, "onnx")
    q = quantize(result.path, tmp_path / f"m.{precision}.onnx", precision=precision)
    assert read_spec(q.path).precision == precision == q.spec.precision
    report = check_parity(model, q.path, batch_sizes=(1, 2), steps=(1, 7))
    assert report.ok, report.table()
    assert report.tolerance_source.endswith(f"/{precision}")
    # the runtime streams it (fp16 needs the session options it sets itself) like the float file
    x = np.random.default_rng(0).standard_normal((1, 6, *result.spec.input.feature_shape))
    x = x.astype(np.float32)
    ref, got = StreamingSession(result.path), StreamingSession(q.path)
    ys = [got.step(x[:, t]) for t in range(3)] + [got.feed(x[:, 3:])]
    want = [ref.step(x[:, t]) for t in range(3)] + [ref.feed(x[:, 3:])]
    tol = report.tolerance
    for a, b in zip(ys, want):
        np.testing.assert_allclose(a, b, atol=tol.atol, rtol=tol.rtol)


def test_int8_lstm_uses_quantized_lstm_and_shrinks(exported, tmp_path) -> None:
    model, result = exported("lstm-2l", "onnx")
    q = quantize(result.path, tmp_path / "m.onnx", precision="int8")
    ops = _ops(q.path)
    assert ops["DynamicQuantizeLSTM"] == 2 and ops["LSTM"] == 0
    assert q.quantized == {"LSTM": 2, "MatMul": 1} and q.kept_float == {}


@pytest.mark.parametrize("name,op", [("gru-1l", "GRU"), ("rnn-tanh", "RNN"), ("convlstm-k3", "Conv")])
def test_int8_stores_float_only_weights_as_int8_and_says_so(exported, tmp_path, name: str, op: str) -> None:
    """GRU/RNN/Conv compute in float32; their weights are int8 behind DequantizeLinear."""
    _, result = exported(name, "onnx")
    q = quantize(result.path, tmp_path / "m.onnx", precision="int8")
    ops = _ops(q.path)
    assert ops[op] == q.kept_float[op] == q.weights_int8[op] > 0
    assert ops["DequantizeLinear"] == (2 if op != "Conv" else 1) * q.weights_int8[op]
    assert any(n.startswith(f"{op}: weights stored int8") for n in q.notes)
    model = load_onnx(q.path)
    bodies = [a.g for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    int8 = [t for g in [model.graph, *bodies] for t in g.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= q.weights_int8[op]


def test_int8_quantizes_matmuls_inside_scan_bodies(exported, tmp_path) -> None:
    """lstm-2l-proj forced through Scan: its gate MatMuls live in the body."""
    model, result = exported("lstm-2l-proj", "onnx", strategy="scan")
    assert _ops(result.path)["Scan"] >= 1
    q = quantize(result.path, tmp_path / "m.onnx", precision="int8")
    body_ops = collections.Counter(
        n.op_type
        for node in load_onnx(q.path).graph.node
        for a in node.attribute
        if a.type == onnx.AttributeProto.GRAPH
        for n in a.g.node
    )
    assert body_ops["MatMulInteger"] > 0 and body_ops["MatMul"] == 0
    assert check_parity(model, q.path, batch_sizes=(2,), steps=(7,)).ok


def test_localize_moves_only_body_only_weights(exported) -> None:
    """Files whose Scan bodies read outer-scope weights (older exports) get them moved in."""
    _, result = exported("convlstm-k3", "onnx")
    model = load_onnx(result.path)
    bodies = [a.g for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    inner = [t for b in bodies for t in b.initializer]
    assert inner, "the export keeps its body weights inside the body"
    for b in bodies:  # the older layout: every body weight in the outer graph
        del b.initializer[:]
    model.graph.initializer.extend(inner)
    outer_before = {t.name for t in model.graph.initializer}
    moved = localize_body_weights(model)
    inside = {t.name for b in bodies for t in b.initializer}
    assert moved == len(inside) == len(inner) and inside <= outer_before
    assert not inside & {t.name for t in model.graph.initializer}
    onnx.checker.check_model(model)
    assert localize_body_weights(model) == 0  # idempotent


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"precision": "int4"}, r"precision: expected one of fp16, int8, got 'int4'"),
        ({"precision": "fp32"}, r"precision: expected one of fp16, int8, got 'fp32'"),
    ],
    ids=["unknown", "fp32"],
)
def test_bad_arguments_raise_and_write_nothing(exported, tmp_path, kwargs, match: str) -> None:
    _, result = exported("lstm-2l", "onnx")
    with pytest.raises(ConfigError, match=match):
        quantize(result.path, tmp_path / "out.onnx", **kwargs)
    assert not (tmp_path / "out.onnx").exists()


def test_requantizing_a_reduced_file_is_refused(exported, tmp_path) -> None:
    _, result = exported("lstm-2l", "onnx")
    q = quantize(result.path, tmp_path / "a.onnx", precision="fp16")
    with pytest.raises(ConfigError, match=r"expected a float32 \(fp32\) file, got precision 'fp16'"):
        quantize(q.path, tmp_path / "b.onnx", precision="int8")


def test_non_rnnx_or_torchscript_sources_are_refused(exported, tmp_path) -> None:
    _, ts = exported("lstm-2l", "torchscript")
    with pytest.raises(ConfigError, match=r"expected an ONNX file, got a torchscript file"):
        quantize(ts.path, tmp_path / "b.onnx", precision="int8")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        quantize(junk, tmp_path / "c.onnx", precision="int8")


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_a_source_with_its_weights_in_a_file_beside_it_quantizes(exported, tmp_path, precision: str) -> None:
    """int8 copied the model to a temporary folder without its weights file (a raw onnx
    traceback); fp16 wrote a file pointing at weights that were not there."""
    from rnnx.runtime import StreamingSession

    _, result = exported("lstm-2l", "onnx")
    src = tmp_path / "src" / "m.onnx"
    src.parent.mkdir()
    onnx.save(
        onnx.load(str(result.path)),
        str(src),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    q = quantize(src, tmp_path / "q.onnx", precision=precision)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", "src"]  # self-contained
    # the source's size counts its weights file (it was the graph file alone: the ratio overstated)
    assert q.source_bytes == src.stat().st_size + (src.parent / "m.onnx.data").stat().st_size
    with StreamingSession(q.path) as sess:
        assert sess.step(np.zeros((1, result.spec.input.shape[-1]), np.float32)).shape[0] == 1
    (src.parent / "m.onnx.data").unlink()
    with pytest.raises(ModelFileError, match=r"m\.onnx: cannot read its external weights"):
        quantize(src, tmp_path / "q2.onnx", precision=precision)
    assert not (tmp_path / "q2.onnx").exists()


def test_another_model_under_the_step_graphs_name_is_not_overwritten(exported, tmp_path, caplog) -> None:
    """quantize commits its file as export_onnx does: a standalone rnnx model already named
    ``q.step.onnx`` stays as it was, and ``q.onnx`` gets no step graph (a WARNING says why)."""
    _, scan = exported("convlstm-k3", "onnx")  # a Scan graph with its step graph
    _, other = exported("gru-1l", "onnx")
    assert scan.spec.step_graph is not None
    (tmp_path / "q.step.onnx").write_bytes(other.path.read_bytes())
    with caplog.at_level("WARNING", logger="rnnx"):
        result = quantize(scan.path, tmp_path / "q.onnx", precision="int8")
    assert (tmp_path / "q.step.onnx").read_bytes() == other.path.read_bytes()
    assert result.step_graph_path is None and read_spec(result.path).step_graph is None
    assert any("is another exported model" in r.getMessage() for r in caplog.records)
    with StreamingSession(result.path) as sess:  # and the file streams on its own graph
        assert sess.step_graph is None
