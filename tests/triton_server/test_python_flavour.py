"""The python-backend flavour on a real tritonserver: every output equals StreamingSession's.

One server for the module (several models): oldest with two instances, direct, a ConvLSTM,
token ids, a short idle timeout. Sequences run concurrently from threads, one step per
request or in chunks, over gRPC and HTTP; the bar is max abs diff 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rnnx.onnx_tools.triton import TritonConfig, export_triton
from tests.triton_server import server as triton
from tests.triton_server.client import (
    infer,
    make_client,
    max_abs_diff,
    random_input,
    reference,
    run_sequence,
    sequences,
)

tritonclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient (dev extra)")

MODELS = {  # served name -> (tiny model, TritonConfig options)
    "lstm": ("lstm-2l", {"max_batch_size": 8, "instance_count": 2}),
    "lstm_direct": ("lstm-2l", {"max_batch_size": 8, "strategy": "direct", "max_queue_delay_us": 2000}),
    "convlstm": ("convlstm-k3", {"max_batch_size": 8}),
    "tokens": ("tokens-lstm", {"max_batch_size": 8, "controls": ("START", "READY", "END", "CORRID")}),
    "idle": ("gru-1l", {"max_batch_size": 4, "idle_timeout_us": 1_000_000}),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, onnx_file):
    repo = tmp_path_factory.mktemp("python_repo")
    files = {}
    for name, (tiny, options) in MODELS.items():
        repo_files = export_triton(onnx_file(tiny)[0], repo, TritonConfig(name=name, **options), backend="python")
        files[name] = repo_files.onnx_path
    server = triton.start_or_skip(repo)
    yield server, files
    server.stop()


def _check_concurrent(served, model: str, protocol: str, chunked: bool, n: int = 8) -> None:
    server, files = served
    url = server.grpc_url if protocol == "grpc" else server.http_url
    seqs = sequences(files[model], n, chunked=chunked, seed=n + chunked, first_id=100)
    with ThreadPoolExecutor(n) as ex:
        got = list(ex.map(lambda s: run_sequence(protocol, url, model, s), seqs))
    for s, g in zip(seqs, got, strict=True):
        assert max_abs_diff(g, reference(files[model], s.pieces())) == 0.0, f"sequence {s.sid}"


@pytest.mark.parametrize(
    "model,protocol,chunked",
    [
        ("lstm", "grpc", False),
        ("lstm", "http", True),
        ("lstm_direct", "grpc", True),
        ("lstm_direct", "http", False),
        ("convlstm", "grpc", True),
        ("tokens", "http", True),
    ],
    ids=[
        "oldest-x2-grpc-steps",
        "oldest-x2-http-chunks",
        "direct-grpc-chunks",
        "direct-http-steps",
        "convlstm-grpc-chunks",
        "tokens-http-chunks",
    ],
)
def test_concurrent_sequences_equal_the_runtime(served, model: str, protocol: str, chunked: bool) -> None:
    _check_concurrent(served, model, protocol, chunked)


def test_start_mid_stream_resets_the_sequence(served) -> None:
    server, files = served
    rng = np.random.default_rng(1)
    first, second = random_input(files["lstm"], 3, rng), random_input(files["lstm"], 4, rng)
    client = make_client("grpc", server.grpc_url)
    for t in range(3):
        infer(client, "grpc", "lstm", first[:, t : t + 1], 7, start=t == 0, end=False)
    got = [infer(client, "grpc", "lstm", second[:, t : t + 1], 7, start=t == 0, end=t == 3) for t in range(4)]
    assert max_abs_diff(got, reference(files["lstm"], [second[:, t : t + 1] for t in range(4)])) == 0.0


def test_end_then_the_id_starts_afresh(served) -> None:
    server, files = served
    rng = np.random.default_rng(2)
    client = make_client("http", server.http_url)
    for round_ in range(2):
        x = random_input(files["lstm_direct"], 3, rng)
        got = [infer(client, "http", "lstm_direct", x[:, t : t + 1], 9, start=t == 0, end=t == 2) for t in range(3)]
        assert max_abs_diff(got, reference(files["lstm_direct"], [x[:, t : t + 1] for t in range(3)])) == 0.0, round_
    with pytest.raises(Exception, match="START|start"):  # after END: a request without START is refused
        infer(client, "http", "lstm_direct", x[:, :1], 9, start=False, end=False)


def test_a_bad_request_is_answered_with_an_error_and_changes_nothing(served) -> None:
    server, files = served
    path = files["tokens"]
    x = random_input(path, 4, np.random.default_rng(3))
    client = make_client("grpc", server.grpc_url)
    got = [infer(client, "grpc", "tokens", x[:, :2], 11, start=True, end=False)]
    bad = x[:, 2:3].copy()
    bad[...] = 999  # beyond the vocabulary
    with pytest.raises(Exception, match=r"sequence 11: .*x.*999|sequence 11: .*999.*x"):
        infer(client, "grpc", "tokens", bad, 11, start=False, end=False)
    bad_chunk = x[:, 2:].copy()
    bad_chunk[0, -1] = -1
    with pytest.raises(Exception, match=r"sequence 11: x: expected token ids .*got -1 at index"):
        infer(client, "grpc", "tokens", bad_chunk, 11, start=False, end=False)
    with pytest.raises(Exception, match=r"x: expected shape \(1, T >= 1"):
        infer(client, "grpc", "tokens", x[:, :0], 11, start=False, end=False)
    with pytest.raises(Exception, match="x"):  # wrong feature shape: refused by Triton's core
        infer(client, "grpc", "tokens", x[..., None], 11, start=False, end=False)
    got.append(infer(client, "grpc", "tokens", x[:, 2:], 11, start=False, end=True))
    assert max_abs_diff(got, reference(path, [x[:, :2], x[:, 2:]])) == 0.0  # the bad ones changed nothing


def test_a_sequence_idle_past_its_timeout_is_released(served) -> None:
    server, files = served
    x = random_input(files["idle"], 2, np.random.default_rng(4))
    client = make_client("grpc", server.grpc_url)
    infer(client, "grpc", "idle", x[:, :1], 13, start=True, end=False)
    time.sleep(2.0)  # max_sequence_idle_microseconds is 1 s
    with pytest.raises(Exception, match="START|start|not open"):
        infer(client, "grpc", "idle", x[:, 1:], 13, start=False, end=False)
    y = infer(client, "grpc", "idle", x[:, 1:], 13, start=True, end=True)  # the id starts afresh
    assert max_abs_diff([y], reference(files["idle"], [x[:, 1:]])) == 0.0


def test_the_example_client_streams_a_sequence(served) -> None:
    from examples.triton_client import stream

    server, files = served
    xs = random_input(files["lstm"], 5, np.random.default_rng(5))[0]
    ys = stream(server.grpc_url, "lstm", xs, sequence_id=21)
    want = np.concatenate(reference(files["lstm"], [xs[None, t : t + 1] for t in range(5)]), axis=1)[0]
    assert max_abs_diff([ys], [want]) == 0.0


DYING_CLIENT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import tritonclient.grpc as g
    c = g.InferenceServerClient(sys.argv[1])
    for sid in (900, 901):
        x = g.InferInput("x", [1, 1, 5], "FP32")
        x.set_data_from_numpy(np.ones((1, 1, 5), np.float32))
        c.infer("lstm", [x], sequence_id=sid, sequence_start=True)
    print("open", flush=True)
    time.sleep(600)
""")


def test_a_client_dying_mid_sequence_harms_no_other_and_shutdown_is_bounded(served) -> None:
    """Last in the module: it stops the module's server itself (two sequences left open)."""
    server, _ = served
    proc = subprocess.Popen([sys.executable, "-c", DYING_CLIENT, server.grpc_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    _check_concurrent(served, "lstm", "grpc", chunked=True)
    seconds = server.stop()
    assert server.proc.returncode is not None
    assert seconds < triton.EXIT_TIMEOUT_S + 10, f"shutdown took {seconds:.1f} s with open sequences"
