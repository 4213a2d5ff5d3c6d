"""rnnx.onnx_tools.step_graph: the Scan-free single-step graph written beside Scan exports."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnx.exporter import export_onnx, read_spec
from rnnx.exporter.onnx_export import checked_step_graph, model_probe
from rnnx.exporter.parity import random_input, random_state
from rnnx.onnx_tools.compare import TOLERANCES
from rnnx.onnx_tools.describe import describe
from rnnx.onnx_tools.quantize import quantize
from rnnx.onnx_tools.step_graph import agrees_at_one_step, inline_scans, step_file_name
from rnnx.onnx_tools.triton import export_triton
from rnnx.spec import METADATA_KEY, StepGraph
from tests.zoo import TINY, example_input

# (zoo id, strategy): every Scan-building path, a ConvLSTM, LSTM/GRU forced through Scan, two
# Scans in one graph (layer-scan of a 2-layer LSTM with proj_size), a user's own cell, tokens
STEPPED = [
    ("convlstm-k3", "auto"),
    ("lstm-2l", "scan"),
    ("lstm-2l-proj", "layer-scan"),
    ("gru-1l", "scan-legacy"),
    ("gru-residual", "scan"),
    ("custom-peephole", "auto"),
    ("tokens-lstm", "scan"),
]
CONTROL_FLOW = {"Scan", "Loop", "If"}


def _ops(graph: onnx.GraphProto) -> set[str]:
    return {n.op_type for n in graph.node} | {
        op for n in graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH for op in _ops(a.g)
    }


def _io(graph: onnx.GraphProto) -> list[str]:
    return [str(v) for v in [*graph.input, *graph.output]]


def _run(path_or_bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    return ort.InferenceSession(path_or_bytes, opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def _feeds(model, spec, batch: int = 2, steps: int = 1) -> dict[str, np.ndarray]:
    feeds = {spec.input.name: random_input(model, spec, batch, steps, seed=5).numpy()}
    for s, value in zip(spec.state, random_state(model, batch, seed=5)):
        feeds[s.input] = value.numpy()
    assert all(np.abs(v).max() > 0 for k, v in feeds.items() if k != spec.input.name)  # non-zero state
    return feeds


@pytest.mark.parametrize("name,strategy", STEPPED, ids=[f"{n}-{s}" for n, s in STEPPED])
def test_scan_export_writes_a_checked_step_graph_beside_the_file(exported, name: str, strategy: str) -> None:
    model, result = exported(name, "onnx", strategy)
    assert result.strategy in ("scan", "scan-legacy", "layer-scan")
    step_path = result.step_graph_path
    assert step_path == result.path.with_name(result.path.stem + ".step.onnx") and step_path.is_file()
    spec = read_spec(result.path)
    assert spec == result.spec
    assert spec.step_graph == StepGraph(step_path.name, hashlib.sha256(step_path.read_bytes()).hexdigest())
    main, step = onnx.load(str(result.path)), onnx.load(str(step_path))
    assert "Scan" in _ops(main.graph) and not _ops(step.graph) & CONTROL_FLOW
    assert METADATA_KEY not in {p.key for p in step.metadata_props}
    assert _io(step.graph) == _io(main.graph)  # names, dtypes and declared shapes
    onnx.checker.check_model(step, full_check=True)
    tol = TOLERANCES[(spec.kind if (spec.kind, "fp32") in TOLERANCES else "custom", "fp32")]
    feeds = _feeds(model, spec)
    for want, got in zip(_run(str(result.path), feeds), _run(str(step_path), feeds)):
        np.testing.assert_allclose(got, want, atol=tol.atol, rtol=tol.rtol)


def test_a_graph_without_scan_gets_no_step_graph(exported) -> None:
    _, result = exported("lstm-1l", "onnx")
    assert result.strategy == "trace"
    assert result.step_graph_path is None and result.spec.step_graph is None
    assert read_spec(result.path).step_graph is None
    assert not result.path.with_name(step_file_name(result.path)).exists()


def test_bidirectional_models_get_none(exported) -> None:
    model, result = exported("lstm-1l-proj-bi", "onnx", "layer-scan")  # Scans over the flipped sequence too
    assert not result.spec.streamable and result.spec.step_graph is None and result.step_graph_path is None
    assert checked_step_graph(onnx.load(str(result.path)), model, result.spec) is None


def test_step_graph_false_writes_none(tmp_path) -> None:
    model = TINY["gru-1l"]()
    result = export_onnx(
        model, tmp_path / "m.onnx", example_input=example_input(model), strategy="scan-legacy", step_graph=False
    )
    assert result.step_graph_path is None and read_spec(result.path).step_graph is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_model_file_under_the_step_graphs_name_is_not_overwritten(tmp_path, caplog) -> None:
    model = TINY["gru-1l"]()
    other = export_onnx(model, tmp_path / "m.step.onnx", strategy="scan-legacy").path
    before = other.read_bytes()
    with caplog.at_level(logging.WARNING, logger="rnnx.exporter.onnx_export"):
        result = export_onnx(model, tmp_path / "m.onnx", strategy="scan-legacy")
    assert other.read_bytes() == before and read_spec(other).step_graph.file == "m.step.step.onnx"
    assert result.step_graph_path is None and read_spec(result.path).step_graph is None
    assert "is another exported model" in caplog.text


# ---------------------------------------------------------------------- hand-made Scans


def _scan_model(outer_names: tuple[str, ...] = (), **attrs: list[int]) -> onnx.ModelProto:
    """y = cumulative sum of x over time, h the running sum: a Scan over ``axis`` of x (T, B, 2)."""
    w = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "w")
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["x_t", "w"], ["xw"]),
            helper.make_node("Add", ["h", "xw"], ["h_new"]),
            helper.make_node("Identity", ["h_new"], ["y_t"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", 2]),
            helper.make_tensor_value_info("x_t", TensorProto.FLOAT, ["B", 2]),
        ],
        [
            helper.make_tensor_value_info("h_new", TensorProto.FLOAT, ["B", 2]),
            helper.make_tensor_value_info("y_t", TensorProto.FLOAT, ["B", 2]),
        ],
        initializer=[w],
    )
    nodes = [helper.make_node("Identity", ["x"], [name]) for name in outer_names]  # names to collide with
    nodes.append(helper.make_node("Scan", ["h_in", "x"], ["h_out", "y"], num_scan_inputs=1, body=body, **attrs))
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 2]),
            helper.make_tensor_value_info("h_in", TensorProto.FLOAT, ["B", 2]),
        ],
        [
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["B", 2]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "B", 2]),
            *(helper.make_tensor_value_info(n, TensorProto.FLOAT, ["T", "B", 2]) for n in outer_names),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {METADATA_KEY: "{}", "other": "kept"})
    return model


@pytest.mark.parametrize(
    "attrs,why",
    [
        ({"scan_input_axes": [1]}, "scan_input_axes=[1]"),
        ({"scan_output_axes": [1]}, "scan_output_axes=[1]"),
        ({"scan_input_directions": [1]}, "runs in reverse"),
        ({"scan_output_directions": [1]}, "runs in reverse"),
    ],
)
def test_inliner_refuses_scans_it_cannot_inline_exactly(caplog, attrs: dict, why: str) -> None:
    model = _scan_model(**attrs)
    onnx.checker.check_model(model)
    with caplog.at_level(logging.INFO, logger="rnnx.onnx_tools.step_graph"):
        assert inline_scans(model) is None
    assert why in caplog.text


def test_inliner_refuses_a_graph_with_a_loop_left(caplog) -> None:
    model = _scan_model()
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"])],
        "loop",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])],
    )
    model.graph.node.append(helper.make_node("Loop", ["", "cond"], [], body=body))
    with caplog.at_level(logging.INFO, logger="rnnx.onnx_tools.step_graph"):
        assert inline_scans(model) is None
    assert "other control flow (Loop)" in caplog.text


def test_inlined_hand_made_scan_equals_it_at_one_step_and_avoids_taken_names() -> None:
    taken = ("step0/h_new", "step0/xw", "step_axes/axis0")  # the names the inliner would pick first
    model = _scan_model(outer_names=taken)
    step = inline_scans(model)
    assert step is not None and "Scan" not in _ops(step.graph)
    assert {p.key: p.value for p in step.metadata_props} == {"other": "kept"}
    produced = [o for n in step.graph.node for o in n.output] + [t.name for t in step.graph.initializer]
    assert len(produced) == len(set(produced)), "every name is defined once"
    rng = np.random.default_rng(0)
    feeds = {
        "x": rng.standard_normal((1, 3, 2)).astype(np.float32),
        "h_in": rng.standard_normal((3, 2)).astype(np.float32),
    }
    for want, got in zip(_run(model.SerializeToString(), feeds), _run(step.SerializeToString(), feeds)):
        np.testing.assert_array_equal(got, want)


def test_opset_11_scan_is_inlined_with_attribute_axes() -> None:
    model = _scan_model()
    model.opset_import[0].version = 11
    step = inline_scans(model)
    assert step is not None
    assert all(len(n.input) == 1 for n in step.graph.node if n.op_type in ("Squeeze", "Unsqueeze"))
    feeds = {"x": np.ones((1, 2, 2), np.float32), "h_in": np.ones((2, 2), np.float32)}
    np.testing.assert_array_equal(_run(step.SerializeToString(), feeds)[1], [[[3.0, 4.0]] * 2])


# ---------------------------------------------------------------------- derived files and describe


def test_ort_and_triton_copies_carry_no_step_graph(exported, tmp_path) -> None:
    from rnnx.onnx_tools.ort_format import to_ort

    _, result = exported("convlstm-k3", "onnx")
    assert result.spec.step_graph is not None
    assert read_spec(to_ort(result.path, tmp_path / "m.ort")).step_graph is None
    repo = export_triton(result.path, tmp_path / "repo", verify=False)
    assert repo.spec.step_graph is None and read_spec(repo.onnx_path).step_graph is None
    assert not list(tmp_path.rglob("*.step.onnx"))


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantize_converts_the_step_graph_too(exported, tmp_path, precision: str) -> None:
    """A quantized file gets its own step graph at its precision, checked against it; steps then run on it."""
    from rnnx.runtime import StreamingSession

    model, result = exported("convlstm-k3", "onnx")
    q = quantize(result.path, tmp_path / f"m.{precision}.onnx", precision=precision)
    step = tmp_path / f"m.{precision}.step.onnx"
    assert q.step_graph_path == step and read_spec(q.path).step_graph == q.spec.step_graph
    assert q.spec.step_graph.sha256 == hashlib.sha256(step.read_bytes()).hexdigest()
    graph = onnx.load(str(step)).graph
    assert "Scan" not in _ops(graph) and METADATA_KEY not in {p.key for p in onnx.load(str(step)).metadata_props}
    if precision == "int8":
        assert any(t.data_type == TensorProto.INT8 for t in graph.initializer)  # ConvLSTM: Conv weights stored int8
    else:
        assert any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer)
    x = random_input(model, result.spec, 2, 5, 3).numpy()
    with (
        StreamingSession(q.path, batch_size=2) as stepped,
        StreamingSession(q.path, batch_size=2, step_graph=False) as whole,
    ):
        assert stepped.step_graph == step
        ys = np.stack([stepped.step(x[:, t]) for t in range(x.shape[1])], axis=1)
        want = whole.feed(x)
    tol = TOLERANCES[("convlstm", precision)] if ("convlstm", precision) in TOLERANCES else None
    atol = 1e-3 if tol is None else tol.atol
    np.testing.assert_allclose(ys, want, atol=atol, rtol=1e-3)


def test_quantize_gives_no_step_graph_when_the_source_one_is_missing(exported, tmp_path, caplog) -> None:
    _, result = exported("convlstm-k3", "onnx")
    src = Path(shutil.copy(result.path, tmp_path / "src.onnx"))  # its step graph is not copied along
    with caplog.at_level(logging.WARNING, logger="rnnx.onnx_tools.quantize"):
        q = quantize(src, tmp_path / "q.int8.onnx", precision="int8")
    assert q.step_graph_path is None and read_spec(q.path).step_graph is None
    assert "missing or altered" in caplog.text and not list(tmp_path.glob("*.step.onnx"))


def test_describe_says_whether_the_step_graph_is_there_and_intact(exported, tmp_path) -> None:
    _, result = exported("convlstm-k3", "onnx")
    path = Path(shutil.copy(result.path, tmp_path / result.path.name))
    step = tmp_path / result.step_graph_path.name
    assert describe(path)["step_graph"] == {
        "file": step.name,
        "sha256": result.spec.step_graph.sha256,
        "present": False,
        "sha256_ok": None,
    }
    shutil.copy(result.step_graph_path, step)
    assert describe(path)["step_graph"]["sha256_ok"] is True
    step.write_bytes(step.read_bytes() + b"\0")
    assert describe(path)["step_graph"] | {"sha256": ""} == {
        "file": step.name,
        "sha256": "",
        "present": True,
        "sha256_ok": False,
    }
    _, plain = exported("lstm-1l", "onnx")
    assert describe(plain.path)["step_graph"] is None


def test_a_step_graph_that_disagrees_is_refused_with_a_warning(exported, caplog) -> None:
    """The T=1 check itself: the real inlined graph passes; the same graph with y + 1e-3 fails, naming y."""
    model, result = exported("convlstm-k3", "onnx")
    main = onnx.load(str(result.path))
    good = inline_scans(main)
    probe = model_probe(model, result.spec)
    assert good is not None and agrees_at_one_step(main, good.SerializeToString(), result.spec, probe)
    graph = good.graph
    y = result.spec.output.name
    for node in graph.node:
        node.output[:] = [f"{y}/exact" if o == y else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(1e-3, np.float32), "off_by"))
    graph.node.append(helper.make_node("Add", [f"{y}/exact", "off_by"], [y]))
    with caplog.at_level(logging.WARNING, logger="rnnx.onnx_tools.step_graph"):
        assert not agrees_at_one_step(main, good.SerializeToString(), result.spec, probe)
    assert any(
        "differs from the Scan graph at T=1" in r.message and f"{y} max_abs" in r.message for r in caplog.records
    ), caplog.text


def test_an_fp16_step_graph_is_checked_with_the_fp16_session_options(tmp_path) -> None:
    """fp16 LSTM graphs crash onnxruntime's default optimisation level: the T=1 check must use the
    runtime's (ORT_ENABLE_EXTENDED), or every fp16 LSTM step graph would be dropped."""
    model = TINY["lstm-1l"]()
    result = export_onnx(model, tmp_path / "m.onnx", example_input=example_input(model), strategy="scan")
    q = quantize(result.path, tmp_path / "m.fp16.onnx", precision="fp16")
    assert q.step_graph_path is not None and q.spec.step_graph.file == "m.fp16.step.onnx"


def test_quantize_refuses_a_source_step_graph_altered_in_any_byte(exported, tmp_path, caplog) -> None:
    """Mutation caught: quantize without the source step graph's SHA-256 check converted an
    altered file (here one that still computes the same numbers, so only the hash can tell)."""
    _, result = exported("convlstm-k3", "onnx")
    src = Path(shutil.copy(result.path, tmp_path / result.path.name))
    step = onnx.load(str(result.step_graph_path))
    step.doc_string = "altered after export"
    onnx.save(step, str(tmp_path / result.step_graph_path.name))
    with caplog.at_level(logging.WARNING, logger="rnnx.onnx_tools.quantize"):
        q = quantize(src, tmp_path / "q.int8.onnx", precision="int8")
    assert q.step_graph_path is None and read_spec(q.path).step_graph is None
    assert "missing or altered" in caplog.text and not list(tmp_path.glob("q.int8.step*.onnx"))
