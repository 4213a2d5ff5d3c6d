"""Triton model repositories: config.pbtxt parsed with Triton's own proto, the graph run as Triton runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rnnx.errors import ConfigError, NotStreamableError, ParityError
from rnnx.exporter import read_spec
from rnnx.onnx_tools.spec_io import load_onnx
from rnnx.onnx_tools.triton import (
    CONTROL_KINDS,
    TRITON_DTYPES,
    TritonConfig,
    export_triton,
    triton_graph,
    verify_sequences,
)

text_format = pytest.importorskip("google.protobuf.text_format", reason="protobuf is in the dev extra")
model_config = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) ships Triton's model_config proto"
)

SERVED = ["lstm-2l", "gru-1l", "convlstm-k3", "tokens-lstm", "lstm-2l-proj"]


def _parse(path: Path):
    return text_format.Parse(path.read_text(), model_config.ModelConfig())


def _repo(exported, tmp_path: Path, name: str, **options):
    _, result = exported(name, "onnx")
    return result, export_triton(result.path, tmp_path, TritonConfig(name=name, **options))


@pytest.mark.parametrize("name", SERVED)
def test_config_matches_the_contract_field_by_field(exported, tmp_path: Path, name: str) -> None:
    result, repo = _repo(exported, tmp_path, name, max_batch_size=8, instance_count=2)
    spec, served = result.spec, repo.spec
    cfg = _parse(repo.config_path)
    assert repo.config_path == tmp_path / name / "config.pbtxt"
    assert repo.onnx_path == tmp_path / name / "1" / "model.onnx"
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == (name, "onnxruntime", 8)
    (inp,), (out,) = cfg.input, cfg.output
    assert inp.name == spec.input.name and list(inp.dims) == [-1, *spec.input.feature_shape]
    assert inp.data_type == model_config.DataType.Value(TRITON_DTYPES[spec.input.dtype])
    assert out.name == spec.output.name and list(out.dims) == [-1, *spec.output.feature_shape]
    seq = cfg.sequence_batching
    assert seq.WhichOneof("strategy_choice") == "oldest"
    assert seq.oldest.max_candidate_sequences == 8
    assert seq.max_sequence_idle_microseconds == 60_000_000
    assert [c.name for c in seq.control_input] == ["START", "READY"]
    for c in seq.control_input:
        (control,) = c.control
        assert model_config.ModelSequenceBatching.Control.Kind.Name(control.kind) == CONTROL_KINDS[c.name]
        assert list(control.int32_false_true) == [0, 1]
    assert len(seq.state) == len(spec.state)
    for st, s in zip(seq.state, spec.state):
        assert (st.input_name, st.output_name) == (s.input, s.output)
        rest = [d for i, d in enumerate(s.shape) if i != s.batch_axis]  # Triton: batch first, dropped
        (initial,) = st.initial_state
        assert list(st.dims) == rest and list(initial.dims) == rest
        assert (
            initial.zero_data
            and initial.name == f"{s.name}_zeros"
            and st.data_type == model_config.DataType.Value("TYPE_FP32")
        )
    (group,) = cfg.instance_group
    assert model_config.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_CPU" and group.count == 2
    # the graph the config describes: states batch-first, control inputs present, spec stored
    assert read_spec(repo.onnx_path) == served
    graph_inputs = {v.name for v in load_onnx(repo.onnx_path).graph.input}
    assert graph_inputs == {spec.input.name, *(s.input for s in spec.state), "START", "READY"}
    assert all(s.batch_axis == 0 for s in served.state)
    assert repo.max_abs_error <= 1e-5


def test_direct_strategy_gpu_instances_and_every_control(exported, tmp_path: Path) -> None:
    _, repo = _repo(
        exported,
        tmp_path,
        "gru-1l",
        strategy="direct",
        instance_kind="gpu",
        gpus=(1,),
        controls=("START", "READY", "END", "CORRID"),
        max_queue_delay_us=0,
    )
    cfg = _parse(repo.config_path)
    seq = cfg.sequence_batching
    assert seq.WhichOneof("strategy_choice") == "direct"
    assert seq.direct.max_queue_delay_microseconds == 0
    kinds = {c.name: c.control[0] for c in seq.control_input}
    assert set(kinds) == {"START", "READY", "END", "CORRID"}
    assert model_config.DataType.Name(kinds["CORRID"].data_type) == "TYPE_UINT64"
    (group,) = cfg.instance_group
    assert model_config.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_GPU" and list(group.gpus) == [1]


def _served_session(repo):
    return ort.InferenceSession(str(repo.onnx_path), providers=["CPUExecutionProvider"])


def test_start_zeroes_the_state_and_ready_zero_keeps_it(exported, tmp_path: Path) -> None:
    _, repo = _repo(exported, tmp_path, "lstm-2l")
    spec, sess = repo.spec, _served_session(repo)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, *spec.input.feature_shape)).astype(np.float32)
    noisy = {s.input: rng.standard_normal(s.concrete_shape(3)).astype(np.float32) for s in spec.state}
    zeros = {s.input: np.zeros(s.concrete_shape(3), np.float32) for s in spec.state}
    names = [spec.output.name] + [s.output for s in spec.state]
    ones, no = np.ones((3, 1), np.int32), np.zeros((3, 1), np.int32)
    started = sess.run(names, {"x": x, **noisy, "START": ones, "READY": ones})
    fresh = sess.run(names, {"x": x, **zeros, "START": no, "READY": ones})
    for a, b in zip(started, fresh):
        np.testing.assert_array_equal(a, b)
    idle = sess.run(names, {"x": x, **noisy, "START": no, "READY": no})
    for s, new in zip(spec.state, idle[1:]):
        np.testing.assert_array_equal(new, noisy[s.input])


def test_verification_catches_a_graph_that_disagrees(exported) -> None:
    """Mutation: serve the graph with every weight scaled by 1.01 -> the Triton-style run must fail."""
    _, lstm = exported("lstm-2l", "onnx")
    proto, spec = load_onnx(lstm.path), lstm.spec
    served, served_spec = triton_graph(proto, spec, ("START", "READY"))
    verify_sequences(proto, spec, served, served_spec, ("START", "READY"))  # the right one passes
    bad, _ = triton_graph(load_onnx(lstm.path), spec, ("START", "READY"))
    for init in bad.graph.initializer:  # perturb every weight a little
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2:
            arr = onnx.numpy_helper.to_array(init) * 1.01
            init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
    with pytest.raises(ParityError, match="sequence 0 .* differs from the original graph"):
        verify_sequences(proto, spec, bad, served_spec, ("START", "READY"))


def test_bidirectional_models_are_refused(exported, tmp_path: Path) -> None:
    _, result = exported("gru-bi", "onnx")
    with pytest.raises(NotStreamableError, match="not streamable"):
        export_triton(result.path, tmp_path)
    assert not (tmp_path / "rnnx_model").exists()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"name": "a/b"}, "name: expected"),
        ({"max_batch_size": 0}, "max_batch_size: expected an int >= 1, got 0"),
        ({"strategy": "fifo"}, "strategy: expected one of oldest, direct, got 'fifo'"),
        ({"instance_kind": "tpu"}, "instance_kind: expected one of cpu, gpu"),
        ({"gpus": (0,)}, "gpus: only for instance_kind='gpu'"),
        ({"controls": ("START", "STOP")}, "controls: expected distinct names"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us: expected an int >= 0"),
    ],
    ids=["name", "batch", "strategy", "kind", "gpus", "controls", "delay"],
)
def test_bad_options_name_the_field(exported, tmp_path: Path, options: dict, match: str) -> None:
    _, result = exported("gru-1l", "onnx")
    with pytest.raises(ConfigError, match=match):
        export_triton(result.path, tmp_path, TritonConfig(**options))
    assert list(tmp_path.iterdir()) == []


def test_python_module_source_and_the_client_example(exported, tmp_path: Path) -> None:
    """export_triton takes a module too; the README's client builds requests the config accepts."""
    import importlib.util

    model, _ = exported("gru-1l", "onnx")
    from rnnx.exporter import export_triton as export_module

    repo = export_module(model, tmp_path, TritonConfig(name="gru"))
    cfg = _parse(repo.config_path)
    path = Path(__file__).resolve().parents[2] / "examples" / "triton_client.py"
    module_spec = importlib.util.spec_from_file_location("triton_client", path)
    client = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(client)
    x_t = np.zeros((1, 1, *repo.spec.input.feature_shape), np.float32)
    (inp,) = client.step_inputs(cfg.input[0].name, x_t)
    assert inp.name() == cfg.input[0].name and inp.shape() == [1, 1, *cfg.input[0].dims[1:]]
    assert inp.datatype() == model_config.DataType.Name(cfg.input[0].data_type).removeprefix("TYPE_")


def test_empty_direct_slots_of_a_token_model_may_hold_any_ids(exported, tmp_path: Path) -> None:
    """Triton fills an empty slot (READY=0) with arbitrary bytes: ids out of the vocabulary must
    not fail the batch (the verification run puts such ids in its empty slot)."""
    _, repo = _repo(exported, tmp_path, "tokens-lstm", strategy="direct")
    assert repo.max_abs_error <= 1e-5
    sess = ort.InferenceSession(str(repo.onnx_path), providers=["CPUExecutionProvider"])
    feeds = {
        "x": np.array([[3], [1 << 40]], np.int64),
        "START": np.ones((2, 1), np.int32),
        "READY": np.array([[1], [0]], np.int32),
    }
    feeds.update({s.input: np.zeros(s.concrete_shape(2), s.dtype) for s in repo.spec.state})
    y = sess.run(["y"], feeds)[0]
    assert np.isfinite(y[0]).all()


def test_a_token_model_on_direct_slots_needs_ready(exported, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="controls: a token-id model served with strategy 'direct' needs READY"):
        _repo(exported, tmp_path, "tokens-lstm", strategy="direct", controls=("START",))


@pytest.mark.parametrize("name", ["..", ".", "x\n", "a\0b", ""], ids=["dotdot", "dot", "newline", "nul", "empty"])
def test_a_model_name_that_is_not_a_plain_folder_name_is_refused(exported, tmp_path: Path, name: str) -> None:
    """``--triton-name ..`` wrote 1/model.onnx and config.pbtxt above the repository."""
    _, result = exported("gru-1l", "onnx")
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(ConfigError, match=r"name: expected"):
        export_triton(result.path, repo, TritonConfig(name=name), verify=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["repo"]


@pytest.mark.parametrize("kind", ["lstm-1l", "gru-1l"])
def test_an_fp16_lstm_or_gru_is_served_without_crashing_onnxruntime(exported, tmp_path: Path, kind: str) -> None:
    """export_triton opened an fp16 LSTM/GRU without the precision's session options: a segfault.
    Run in a child so a crash fails this test instead of killing the suite."""
    import subprocess
    import sys

    from rnnx.onnx_tools.quantize import quantize

    _, result = exported(kind, "onnx")
    half = quantize(result.path, tmp_path / "half.onnx", precision="fp16").path
    code = (
        "import sys; from rnnx.onnx_tools.triton import TritonConfig, export_triton\n"
        f"r = export_triton({str(half)!r}, {str(tmp_path / 'repo')!r}, TritonConfig(name='half'))\n"
        "print(r.spec.precision, r.max_abs_error)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "fp16"
    assert (tmp_path / "repo" / "half" / "1" / "model.onnx").is_file()


def test_the_pre_write_check_holds_a_float32_graph_to_1e5(exported) -> None:
    """Mutation caught: a check 100x looser than the float32 tolerance passed (scaling every
    weight by 1% moves outputs far beyond either). Here the served output is off by 5e-5."""
    from onnx import helper, numpy_helper

    _, gru = exported("gru-1l", "onnx")
    proto, spec = load_onnx(gru.path), gru.spec
    served, served_spec = triton_graph(proto, spec, ("START", "READY"))
    assert verify_sequences(proto, spec, served, served_spec, ("START", "READY")) <= 1e-5
    graph = served.graph
    for node in graph.node:
        node.output[:] = ["y/exact" if o == "y" else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(5e-5, np.float32), "y/offset"))
    graph.node.append(helper.make_node("Add", ["y/exact", "y/offset"], ["y"], name="y/offset"))
    with pytest.raises(ParityError, match=r"differs from the original graph by 5e-05 \(atol 1e-05\)"):
        verify_sequences(proto, spec, served, served_spec, ("START", "READY"))


def test_a_repository_and_a_quantized_file_are_readable_by_others_under_umask_022(exported, tmp_path: Path) -> None:
    """A Triton server running as another user got "Permission denied" (everything was 0600)."""
    import os
    import stat

    from rnnx.onnx_tools.quantize import quantize

    _, result = exported("gru-1l", "onnx")
    old = os.umask(0o022)
    try:
        repo = export_triton(result.path, tmp_path / "repo", TritonConfig(name="m"))
        q = quantize(result.path, tmp_path / "q.onnx", precision="int8")
    finally:
        os.umask(old)
    modes = {
        p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in [*tmp_path.rglob("*"), q.path]
    }
    assert modes == {
        "repo": "0o755",
        "repo/m": "0o755",
        "repo/m/1": "0o755",
        "repo/m/1/model.onnx": "0o644",
        "repo/m/config.pbtxt": "0o644",
        "q.onnx": "0o644",
    }, modes
    assert repo.onnx_path == tmp_path / "repo" / "m" / "1" / "model.onnx"
