"""The python flavour of a Triton repository: what is written, checked before writing, refused.

A real tritonserver serves these repositories in tests/triton_server/test_python_flavour.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rnnx.errors import ConfigError, NotStreamableError, WriteTargetError
from rnnx.onnx_tools.spec_io import load_onnx, read_spec
from rnnx.onnx_tools.triton import (
    TritonConfig,
    check_config,
    config_dict,
    export_triton,
    triton_graph,
)
from rnnx.onnx_tools.triton_python import MODEL_PY_TEXT

text_format = pytest.importorskip("google.protobuf.text_format", reason="protobuf is in the dev extra")
model_config = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) ships Triton's model_config proto"
)


def _parse(path: Path):
    return text_format.Parse(path.read_text(), model_config.ModelConfig())


@pytest.mark.parametrize("name", ["lstm-2l", "convlstm-k3", "tokens-lstm"])
def test_the_python_flavour_serves_the_export_unchanged_with_the_same_names(
    exported, tmp_path: Path, name: str
) -> None:
    _, result = exported(name, "onnx")
    cfg = TritonConfig(name=name, max_batch_size=8, instance_count=2, strategy="direct")
    py = export_triton(result.path, tmp_path / "py", cfg, backend="python")
    ort_flavour = export_triton(result.path, tmp_path / "ort", cfg)
    got, ort_cfg = _parse(py.config_path), _parse(ort_flavour.config_path)
    assert (got.backend, got.max_batch_size, got.name) == ("python", 8, name)
    assert got.input == ort_cfg.input and got.output == ort_cfg.output  # one client serves both
    seq = got.sequence_batching
    assert seq.WhichOneof("strategy_choice") == "direct" and len(seq.state) == 0
    assert [c.name for c in seq.control_input] == ["START", "READY", "END"]
    assert got.instance_group[0].count == 2
    assert got.parameters["rnnx_model_file"].string_value == result.path.name  # not model.onnx: named
    folder = tmp_path / "py" / name / "1"
    assert py.onnx_path == folder / result.path.name and py.onnx_path.read_bytes() == result.path.read_bytes()
    assert (folder / "model.py").read_text() == MODEL_PY_TEXT
    if result.step_graph_path is not None:  # the step graph travels with the export
        assert (folder / result.step_graph_path.name).read_bytes() == result.step_graph_path.read_bytes()
    assert py.spec == result.spec and py.max_abs_error == 0.0  # model.py's logic, run before writing


def test_model_onnx_needs_no_parameter_and_controls_add_up(exported, tmp_path: Path) -> None:
    _, result = exported("gru-1l", "onnx")
    src = tmp_path / "src" / "model.onnx"
    src.parent.mkdir()
    src.write_bytes(result.path.read_bytes())
    repo = export_triton(src, tmp_path / "repo", TritonConfig(name="m", controls=("START", "CORRID")), backend="python")
    cfg = _parse(repo.config_path)
    assert repo.onnx_path.name == "model.onnx" and not cfg.parameters
    assert [c.name for c in cfg.sequence_batching.control_input] == ["START", "READY", "END", "CORRID"]


def test_a_second_export_replaces_its_version_and_keeps_the_others(exported, tmp_path: Path) -> None:
    _, lstm = exported("lstm-2l", "onnx")
    _, gru = exported("gru-1l", "onnx")
    export_triton(lstm.path, tmp_path, TritonConfig(name="m", version=2), backend="python")
    export_triton(lstm.path, tmp_path, TritonConfig(name="m"), backend="python")
    repo = export_triton(gru.path, tmp_path, TritonConfig(name="m"), backend="python")
    assert read_spec(repo.onnx_path).kind == "gru"
    assert read_spec(next((tmp_path / "m" / "2").glob("*.onnx"))).kind == "lstm"  # other versions stay
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left behind


def test_what_the_python_flavour_refuses(exported, tmp_path: Path) -> None:
    _, bi = exported("gru-bi", "onnx")
    _, lstm = exported("lstm-2l", "onnx")
    with pytest.raises(NotStreamableError, match="not streamable"):
        export_triton(bi.path, tmp_path, TritonConfig(name="bi"), backend="python")
    with pytest.raises(ConfigError, match="instance_kind: the python backend runs rnnx.runtime on the CPU"):
        export_triton(lstm.path, tmp_path, TritonConfig(name="g", instance_kind="gpu"), backend="python")
    with pytest.raises(ConfigError, match="backend: expected one of onnxruntime, python, got 'tensorrt'"):
        export_triton(lstm.path, tmp_path, TritonConfig(name="t"), backend="tensorrt")
    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(WriteTargetError, match="expected a folder to replace"):
        export_triton(lstm.path, tmp_path, TritonConfig(name="f"), backend="python")
    assert (tmp_path / "f").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def _mutate(config: dict, path: tuple, value) -> dict:
    import copy

    out = copy.deepcopy(config)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("input", 0, "dims"), [-1, 6], r"input 'x': expected dims \[-1, 5\]"),
        (("output", 0, "name"), "z", r"output: expected one of the graph's outputs"),
        (("input", 0, "data_type"), "TYPE_FP16", "input 'x': expected data_type TYPE_FP32"),
        (("sequence_batching", "state", 0, "output_name"), "h_outx", "state output_name: expected one of"),
        (("sequence_batching", "state", 0, "input_name"), "x", "state input_name: expected a state tensor"),
        (("sequence_batching", "state", 1, "dims"), [2, 9], r"state input_name 'c_in': expected dims \[2, 8\]"),
        (("sequence_batching", "control_input", 0, "name"), "BEGIN", "control_input: expected one of"),
    ],
    ids=["x-dims", "output-name", "x-dtype", "state-output-name", "state-named-x", "state-dims", "control-name"],
)
def test_a_config_that_disagrees_with_its_graph_is_refused_before_writing(exported, path, value, message) -> None:
    """What Triton's core loads without a word (it never opens the graph): rnnx refuses it."""
    _, result = exported("lstm-2l", "onnx")
    graph, spec = triton_graph(load_onnx(result.path), result.spec, ("START", "READY"))
    good = config_dict(spec, TritonConfig(name="m"))
    check_config(good, graph)
    with pytest.raises(ConfigError, match=message):
        check_config(_mutate(good, path, value), graph)


def test_the_config_object_knows_its_backend() -> None:
    cfg = TritonConfig(backend="python").validate()
    assert dataclasses.replace(cfg, backend="onnxruntime").validate().backend == "onnxruntime"


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_a_quantized_export_is_served_with_its_step_graph_and_judged_by_its_precision(
    exported, tmp_path: Path, precision: str
) -> None:
    """int8 dynamic quantization scales activations over the whole batch: a sequence's outputs
    depend on its batch mates, within the int8 tolerance (fp32 and fp16 files: exact)."""
    from rnnx.onnx_tools import quantize

    _, result = exported("lstm-2l", "onnx")
    q = quantize(result.path, tmp_path / f"model.{precision}.onnx", precision=precision)
    repo = export_triton(q.path, tmp_path / "repo", TritonConfig(name="m"), backend="python")
    assert repo.onnx_path.name == f"model.{precision}.onnx" and repo.spec.precision == precision
    assert 0.0 <= repo.max_abs_error <= (5e-2 if precision == "int8" else 0.0)
    if q.step_graph_path is not None:
        assert (repo.onnx_path.parent / q.step_graph_path.name).is_file()
