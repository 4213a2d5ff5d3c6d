"""The onnxruntime flavour (``rnnx export --format triton``) loaded by a real tritonserver's core.

No onnxruntime backend for Triton can be installed here: a test-only python stand-in named
``onnxruntime`` (tests/triton_server/ort_standin/model.py) runs the repository's unmodified
``model.onnx`` with implicit state emulated as Triton documents it. What is proven: the
server's core parses, auto-completes and validates every config rnnx writes (I/O, control
inputs, state, initial_state, instance groups) and the graph driven that way equals the
ORIGINAL export run by StreamingSession. What is not: the real onnxruntime backend's own
checks (config against the graph) and GPU instance groups.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rnnx.onnx_tools.triton import TritonConfig, export_triton
from tests.triton_server import server as triton
from tests.triton_server.client import (
    max_abs_diff,
    random_input,
    reference,
    run_sequence,
    sequences,
)

tritonclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient (dev extra)")

ALL = ("START", "READY", "END", "CORRID")
MODELS = {  # served name -> (tiny model, TritonConfig options)
    "lstm": ("lstm-2l", {"max_batch_size": 8}),
    "gru": ("gru-1l", {"max_batch_size": 8, "strategy": "direct", "controls": ALL}),
    "convlstm": ("convlstm-k3", {"max_batch_size": 8, "controls": ("START", "READY", "END")}),
    "tokens": ("tokens-lstm", {"max_batch_size": 8, "strategy": "direct"}),
    "proj": ("lstm-2l-proj", {"max_batch_size": 8, "controls": ALL, "instance_count": 2}),
}
# onnxruntime's LSTM with projections rounds differently when sequences share a batch (1 ulp):
# in process, StreamPool vs one StreamingSession per sequence differs by the same 2.98e-08
ATOL = {"proj": 1e-6}
BROKEN = {  # config mutation -> (text replaced, replacement); each refused by the server's core
    "start_one_value": ("int32_false_true: [ 0, 1 ]", "int32_false_true: [ 1 ]"),
    "corrid_int32": ("data_type: TYPE_UINT64", "int32_false_true: [ 0, 1 ]"),
    "control_kind_unknown": ("CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_FINISH"),
    "control_twice": ('name: "END"', 'name: "START"'),
    "state_dtype_vs_initial": ("data_type: TYPE_FP32\n      dims", "data_type: TYPE_FP16\n      dims"),
    "state_input_twice": ('input_name: "c_in"', 'input_name: "h_in"'),
    "gpu_instances_without_gpu": ("KIND_CPU", "KIND_GPU"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, onnx_file):
    repo = tmp_path_factory.mktemp("onnxruntime_repo")
    originals = {}
    for name, (tiny, options) in MODELS.items():
        originals[name] = onnx_file(tiny)[0]  # the run's shared export: read, never written
        export_triton(originals[name], repo, TritonConfig(name=name, **options))
    lstm_all = export_triton(originals["lstm"], repo, TritonConfig(name="lstm_all", controls=ALL))
    text = lstm_all.config_path.read_text()
    for name, (old, new) in BROKEN.items():
        assert old in text, name
        shutil.copytree(lstm_all.model_dir, repo / name)
        (repo / name / "config.pbtxt").write_text(text.replace(old, new, 1).replace('"lstm_all"', f'"{name}"'))
    server = triton.start_or_skip(repo, explicit=True, models=[*MODELS, "lstm_all"])
    yield server, originals
    server.stop()


@pytest.mark.parametrize("model", list(MODELS))
def test_eight_concurrent_sequences_equal_the_original_export(served, model: str) -> None:
    server, originals = served
    protocol = "grpc" if model in ("lstm", "convlstm", "proj") else "http"
    url = server.grpc_url if protocol == "grpc" else server.http_url
    seqs = sequences(originals[model], 8, chunked=model != "lstm", seed=len(model), first_id=300)
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda s: run_sequence(protocol, url, model, s), seqs))
    worst = max(max_abs_diff(g, reference(originals[model], s.pieces())) for s, g in zip(seqs, got, strict=True))
    assert worst <= ATOL.get(model, 0.0), f"{model}: max abs diff {worst:g}"


def test_the_server_core_refuses_each_broken_config(served) -> None:
    server, _ = served
    client = tritonclient.InferenceServerClient(server.grpc_url)
    loaded = []
    for name in BROKEN:
        try:
            client.load_model(name)
            loaded.append(name)
        except tritonclient.InferenceServerException:
            assert not client.is_model_ready(name), name
    assert loaded == [], f"the server's core accepted {loaded}"
    assert client.is_server_live() and client.is_model_ready("lstm_all")


def test_the_example_client_streams_a_sequence(served) -> None:
    from examples.triton_client import stream

    server, originals = served
    xs = random_input(originals["lstm"], 6, np.random.default_rng(7))[0]
    ys = stream(server.grpc_url, "lstm", xs, sequence_id=31)
    want = np.concatenate(reference(originals["lstm"], [xs[None, t : t + 1] for t in range(6)]), axis=1)[0]
    assert max_abs_diff([ys], [want]) == 0.0


def test_the_config_names_what_the_standin_reads(served) -> None:
    """The stand-in reads state, controls and I/O from the config the core completed (not from rnnx)."""
    server, _ = served
    config = tritonclient.InferenceServerClient(server.grpc_url).get_model_config("lstm_all", as_json=True)["config"]
    assert config["backend"] == "onnxruntime"
    assert [s["input_name"] for s in config["sequence_batching"]["state"]] == ["h_in", "c_in"]
    assert [c["name"] for c in config["sequence_batching"]["control_input"]] == list(ALL)
    assert Path(server.log.parent).is_dir()
