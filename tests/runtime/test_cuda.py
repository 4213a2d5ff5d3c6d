"""The CUDA paths, end to end on a real GPU: sessions, pools, reduced precision, the CLI.

Every test here needs onnxruntime-gpu and a CUDA device (``-m gpu`` selects them) and is
skipped with that reason elsewhere; CI has no GPU, so these run on a GPU machine by hand
(the README says when they last ran and what they found). Each compares the GPU against
the eager model or the CPU runtime on the same inputs.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from rnnx.errors import ProviderError
from rnnx.exporter import export_onnx
from rnnx.onnx_tools.compare import TOLERANCES
from rnnx.runtime import StreamingSession, StreamPool, resolve_providers
from tests.runtime.conftest import reference, sequence, write_step_graph
from tests.zoo import TINY, example_input

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider not available (needs onnxruntime-gpu and a GPU)"),
]

STREAMED = ("lstm-2l", "gru-2l", "rnn-relu", "lstm-2l-proj", "convlstm-k3", "tokens-lstm", "custom-peephole")


def _stream(sess: StreamingSession, x: np.ndarray) -> np.ndarray:
    """3 single steps, then the rest as one chunk: both paths of the session."""
    ys = np.stack([sess.step(x[:, t]) for t in range(3)], axis=1)
    return np.concatenate([ys, sess.feed(x[:, 3:])], axis=1)


def test_auto_and_cuda_resolve_to_exact_float32_cuda_first():
    for choice in ("auto", "cuda"):
        assert resolve_providers(choice) == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]


@pytest.mark.parametrize("name", STREAMED)
def test_session_on_cuda_matches_eager_with_state_on_device(onnx_file, name):
    path, model = onnx_file(name)
    x = sequence(model, 2, 8)
    with StreamingSession(path, providers="cuda", batch_size=2) as sess:
        assert sess.device == "cuda"
        assert sess.state_device == "cuda"
        np.testing.assert_allclose(_stream(sess, x), reference(model, x), atol=1e-5, rtol=1e-5)
        state = sess.get_state()
        sess.reset()
        assert not any(v.any() for v in sess.get_state().values())
        sess.set_state(state)
        for k, v in sess.get_state().items():
            np.testing.assert_array_equal(v, state[k])


def test_bidirectional_run_on_cuda_matches_eager_in_float32(onnx_file):
    """Without ``use_tf32=0`` onnxruntime's CUDA GRU differed from eager by 1.7e-4 on an H100."""
    path, model = onnx_file("gru-bi")
    x = sequence(model, 3, 6)
    with StreamingSession(path, providers="cuda", batch_size=3) as sess:
        np.testing.assert_allclose(sess.run(x), reference(model, x), atol=1e-5, rtol=1e-5)


def test_rejected_call_on_cuda_leaves_device_state_unchanged(onnx_file):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 4)
    with StreamingSession(path, providers="cuda") as sess:
        sess.feed(x)
        before = sess.get_state()
        with pytest.raises(Exception, match="expected"):
            sess.step(np.zeros((1, 99), np.float32))
        for k, v in sess.get_state().items():
            np.testing.assert_array_equal(v, before[k])


def model_of(path):
    return TINY[path.stem]()


def test_device_id_of_the_provider_is_honoured(onnx_file):
    path, _ = onnx_file("gru-1l")
    last = torch.cuda.device_count() - 1 if torch.cuda.is_available() else 0
    with StreamingSession(
        path, providers=[("CUDAExecutionProvider", {"device_id": last}), "CPUExecutionProvider"]
    ) as sess:
        assert sess.backend.device_id == last
        assert sess.state_device == "cuda"
        sess.feed(sequence(model_of(path), 1, 3))


def test_device_id_that_does_not_exist_is_a_clear_error(onnx_file):
    path, _ = onnx_file("gru-1l")
    with pytest.raises(ProviderError, match="device_id"):
        StreamingSession(path, providers=[("CUDAExecutionProvider", {"device_id": 64}), "CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["lstm-2l", "convlstm-k3"])
def test_pool_on_cuda_equals_pool_on_cpu(onnx_file, name):
    path, model = onnx_file(name)
    ids = list(range(5))
    x = sequence(model, len(ids), 6)
    with StreamPool(path, providers="cuda") as gpu, StreamPool(path, providers="cpu") as cpu:
        for pool in (gpu, cpu):
            for i in ids:
                pool.open(i)
        for t in range(3):
            a, b = gpu.step_batch(ids, x[:, t]), cpu.step_batch(ids, x[:, t])
            for i in ids:
                np.testing.assert_allclose(a[i], b[i], atol=1e-5)
        futs = [gpu.submit(i, x[i, 3]) for i in ids]
        want = cpu.step_many({i: x[i, 3] for i in ids})
        for i, f in zip(ids, futs):
            np.testing.assert_allclose(f.result(timeout=30), want[i], atol=1e-5)
        for i in ids:
            for k, v in gpu.get_state(i).items():
                np.testing.assert_allclose(v, cpu.get_state(i)[k], atol=1e-5)


def test_step_graph_on_cuda_binds_the_main_graphs_device_state(tmp_path):
    """step() runs the step graph (y + 1) and feed() the main graph over the same device buffers."""
    model = TINY["lstm-1l"]()
    main = tmp_path / "lstm.onnx"
    export_onnx(model, main, example_input=example_input(model, 2, 5), strategy="scan")
    path = write_step_graph(main, tmp_path / "stepped")
    x = sequence(model, 2, 8)
    with (
        StreamingSession(path, providers="cuda", batch_size=2) as gpu,
        StreamingSession(path, batch_size=2, step_graph=False) as cpu,
    ):
        assert gpu.step_graph is not None and gpu.step_backend.device == "cuda"
        assert gpu.state_device == "cuda"
        want = _stream(cpu, x)
        want[:, :3] += 1.0  # the three steps ran on the step graph
        np.testing.assert_allclose(_stream(gpu, x), want, atol=1e-5)
        for k, v in gpu.get_state().items():
            np.testing.assert_allclose(v, cpu.get_state()[k], atol=1e-5)
    with StreamPool(path, providers="cuda") as pool:
        pool.open("a")
        np.testing.assert_allclose(
            pool.step_many({"a": x[0, 0]})["a"], reference(model, x[:1, :1])[0, 0] + 1.0, atol=1e-5
        )


@pytest.mark.parametrize("name, family", [("lstm-2l", "lstm"), ("gru-2l", "gru"), ("convlstm-k3", "convlstm")])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_streams_on_cuda_within_its_tolerance(tmp_path, name, family, precision):
    from rnnx.exporter import quantize

    model = TINY[name]()
    src = tmp_path / "fp32.onnx"
    export_onnx(model, src, example_input=example_input(model, 2, 5))
    dst = quantize(src, tmp_path / f"{precision}.onnx", precision=precision).path
    x = sequence(model, 2, 8)
    tol = TOLERANCES[(family, precision)]
    with StreamingSession(dst, providers="cuda", batch_size=2) as sess:
        assert sess.device == "cuda"
        np.testing.assert_allclose(_stream(sess, x), reference(model, x), atol=tol.atol, rtol=tol.rtol)


def test_cli_run_and_bench_on_cuda(onnx_file, tmp_path):
    from click.testing import CliRunner

    from rnnx.cli import main

    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 12)[0]
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for provider in ("cpu", "cuda"):
        out = tmp_path / f"y-{provider}.npy"
        r = CliRunner().invoke(
            main, ["run", str(path), str(tmp_path / "x.npy"), "--provider", provider, "--out", str(out)]
        )
        assert r.exit_code == 0, r.output
        outs[provider] = np.load(out)
    np.testing.assert_allclose(outs["cuda"], outs["cpu"], atol=1e-5)
    r = CliRunner().invoke(
        main, ["bench", str(path), "--provider", "cuda", "--streams", "4", "--steps", "20", "--json", "-"]
    )
    assert r.exit_code == 0, r.output  # a ratio below its target is reported, not an error
    report = json.loads(r.output[r.output.index("{") :])
    assert report["provider"] == "cuda"


def test_training_on_cuda_gives_a_model_that_exports_and_streams_on_cuda(tmp_path):
    from rnnx.training import TrainConfig, train

    if not torch.cuda.is_available():
        pytest.skip("torch here has no CUDA (onnxruntime-gpu alone cannot train)")
    result = train(
        TrainConfig(
            task="sine", out=str(tmp_path / "run"), device="cuda", epochs=2, hidden_size=8, progress=False, plots=False
        )
    )
    assert np.isfinite(result.metrics["mae"])
    model = result.model
    path = tmp_path / "model.onnx"
    export_onnx(model, path, example_input=example_input(model, 2, 5))
    x = sequence(model, 2, 8)
    with StreamingSession(path, providers="cuda", batch_size=2) as sess:
        np.testing.assert_allclose(_stream(sess, x), reference(model, x), atol=1e-4, rtol=1e-4)
