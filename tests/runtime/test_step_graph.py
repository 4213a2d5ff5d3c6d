"""The step graph beside a model file: single steps run on it, chunks on the main graph.

The fixtures do not depend on the exporter writing step graphs: a tiny LSTM is exported
with the ``scan`` strategy and its step graph written by hand, as a copy of the main
graph whose output ``y`` gets ``+ 1.0``. That copy is valid at T=1 (as a real step graph
is) and shows in every output which graph ran: ``y + 1`` came from the step graph.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rnnx.errors import ConfigError, NonFiniteError, SpecError
from rnnx.exporter import export_onnx
from rnnx.runtime import RuntimeOptions, StreamingSession, StreamPool
from tests.runtime.conftest import STEP, reference, sequence, write_step_graph
from tests.zoo import TINY, example_input


def _retype_input(name: str, new_name: str, elem_type: int) -> Callable:
    """An edit: graph input ``name`` becomes ``new_name`` of ``elem_type``, cast back inside the graph."""
    from onnx import TensorProto, helper

    def edit(graph) -> None:
        cast = f"{name}/float"
        for node in graph.node:
            node.input[:] = [cast if i == name else i for i in node.input]
        for inp in graph.input:
            if inp.name == name:
                inp.name = new_name
                inp.type.tensor_type.elem_type = elem_type
        graph.node.insert(0, helper.make_node("Cast", [new_name], [cast], to=TensorProto.FLOAT))

    return edit


@pytest.fixture(scope="module")
def scan_lstm(tmp_path_factory: pytest.TempPathFactory):
    """(main file without a step graph, eager model, input (2, 9, F)) of a tiny LSTM exported through Scan."""
    model = TINY["lstm-1l"]()
    path = tmp_path_factory.mktemp("scan") / "lstm.onnx"
    assert export_onnx(model, path, example_input=example_input(model, 2, 5), strategy="scan").strategy == "scan"
    return path, model, sequence(model, 2, 9)


@pytest.fixture(scope="module")
def stepped(scan_lstm, tmp_path_factory) -> Path:
    """The model with a valid step graph (``y + 1``) beside it."""
    return write_step_graph(scan_lstm[0], tmp_path_factory.mktemp("stepped"))


def _steps(sess: StreamingSession, x: np.ndarray) -> np.ndarray:
    """step, feed(3 steps), feed(1 step), step over x[:, :6]: steps and chunks alternate on one stream."""
    ys = [sess.step(x[:, 0])[:, None], sess.feed(x[:, 1:4]), sess.feed(x[:, 4:5]), sess.step(x[:, 5])[:, None]]
    return np.concatenate(ys, axis=1)  # (B, 6, out)


# -- StreamingSession -------------------------------------------------------------------------
def test_single_steps_run_the_step_graph_longer_chunks_the_main_graph_over_one_state(stepped, scan_lstm):
    _, _, x = scan_lstm
    with (
        StreamingSession(stepped, batch_size=2) as fast,
        StreamingSession(stepped, batch_size=2, step_graph=False) as plain,
    ):
        assert fast.step_graph == stepped.parent / STEP and plain.step_graph is None
        got, want = _steps(fast, x), _steps(plain, x)
        is_step = np.array([True, False, False, False, True, True])  # outputs of single steps (T=1)
        np.testing.assert_allclose(got[:, is_step], want[:, is_step] + 1.0, atol=1e-6)  # step graph
        np.testing.assert_array_equal(got[:, ~is_step], want[:, ~is_step])  # main graph, same state
        for k, v in plain.get_state().items():
            np.testing.assert_allclose(fast.get_state()[k], v, atol=1e-6)
        # the state both continue from is the main graph's own: one feed of all 6 steps agrees
        with StreamingSession(stepped, batch_size=2, step_graph=False) as whole:
            np.testing.assert_allclose(whole.feed(x[:, :6]), want, atol=1e-6)
            for k, v in whole.get_state().items():
                np.testing.assert_allclose(fast.get_state()[k], v, atol=1e-6)
        np.testing.assert_array_equal(fast.run(x), plain.run(x))  # run() is the main graph too


def test_step_graph_false_in_the_options_ignores_it(stepped, scan_lstm):
    _, _, x = scan_lstm
    with (
        StreamingSession(stepped, options=RuntimeOptions(step_graph=False), batch_size=2) as off,
        StreamingSession(scan_lstm[0], batch_size=2, step_graph=False) as main,
    ):
        assert off.step_graph is None
        np.testing.assert_array_equal(off.step(x[:, 0]), main.step(x[:, 0]))
    with pytest.raises(ConfigError, match="step_graph: expected True or False, got 'no'"):
        RuntimeOptions(step_graph="no")


def test_a_missing_step_graph_warns_once_and_steps_run_the_main_graph(scan_lstm, tmp_path, caplog):
    path = write_step_graph(scan_lstm[0], tmp_path)
    (tmp_path / STEP).unlink()
    x = scan_lstm[2]
    with caplog.at_level(logging.WARNING, logger="rnnx"):
        sess = StreamingSession(path, batch_size=2)
    with sess, StreamingSession(scan_lstm[0], batch_size=2, step_graph=False) as main:
        assert sess.step_graph is None
        np.testing.assert_array_equal(sess.step(x[:, 0]), main.step(x[:, 0]))
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and STEP in warned[0].getMessage() and "main graph" in warned[0].getMessage()


def test_an_altered_step_graph_is_refused_naming_both_digests(stepped, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(stepped.read_bytes())
    data = bytearray((stepped.parent / STEP).read_bytes())
    (folder / STEP).write_bytes(bytes(data) + b"\0")  # one byte more: another SHA-256
    expected, got = hashlib.sha256(data).hexdigest(), hashlib.sha256(bytes(data) + b"\0").hexdigest()
    for open_ in (StreamingSession, StreamPool):
        with pytest.raises(
            SpecError,
            match=rf"m\.onnx expects its step graph {STEP} .*{expected}, got {got}.*"
            rf"re-export.*step_graph=False",
        ):
            open_(folder / "m.onnx")
    with StreamingSession(folder / "m.onnx", step_graph=False) as sess:  # the way out
        assert sess.step_graph is None


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda: _retype_input("x", "features", 1), r"rnnx\.spec: graph has no input 'x'"),
        (lambda: _retype_input("x", "x", 11), r"rnnx\.spec\.input\.dtype: expected float64"),
        (lambda: _retype_input("h_in", "h_in", 11), r"rnnx\.spec\.state\[0\]\.dtype: expected float64"),
    ],
    ids=["input-renamed", "input-float64", "state-float64"],
)
def test_a_step_graph_that_disagrees_with_the_contract_is_refused(scan_lstm, tmp_path, edit, match):
    path = write_step_graph(scan_lstm[0], tmp_path, edit=edit())
    for open_ in (StreamingSession, StreamPool):
        with pytest.raises(
            SpecError,
            match=rf"step graph {STEP} \(beside m\.onnx\) disagrees with its "
            rf"contract: {match}.*step_graph=False",
        ):
            open_(path)
    with StreamingSession(path, step_graph=False) as sess:
        assert sess.step_graph is None


# -- StreamPool: every call is a step ---------------------------------------------------------
@pytest.mark.parametrize("capacity", [2, 8], ids=["every-slot", "subset"])
def test_pool_steps_run_the_step_graph(stepped, scan_lstm, capacity):
    _, _, x = scan_lstm
    with StreamingSession(stepped, batch_size=2, step_graph=False) as plain:
        want = np.stack([plain.step(x[:, t]) for t in range(4)], axis=1)  # (2, 4, out), main graph
    with StreamPool(stepped, max_wait_ms=0, capacity=capacity) as pool:
        assert pool.step_graph == stepped.parent / STEP
        pool.open("a")
        pool.open("b")
        got = [
            pool.step_many({"a": x[0, 0], "b": x[1, 0]}).array,
            pool.step_batch(["a", "b"], x[:, 1]).array,
            np.stack([pool.submit(i, x[k, 2]).result(timeout=60) for k, i in enumerate("ab")]),
        ]

        async def asubmit() -> list:
            return await asyncio.gather(*(pool.asubmit(i, x[k, 3]) for k, i in enumerate("ab")))

        got.append(np.stack(asyncio.run(asubmit())))
        np.testing.assert_allclose(np.stack(got, axis=1), want + 1.0, atol=1e-6)
    with StreamPool(stepped, step_graph=False) as pool:
        assert pool.step_graph is None
        pool.open("a")
        np.testing.assert_allclose(pool.step_many({"a": x[0, 0]})["a"], want[0, 0], atol=1e-6)


# -- failures and lifecycle -------------------------------------------------------------------
def test_a_step_the_finite_check_rejects_leaves_the_state_unchanged(scan_lstm, tmp_path):
    path = write_step_graph(scan_lstm[0], tmp_path, add=float("nan"))  # every step graph output is NaN
    x = scan_lstm[2]
    with StreamingSession(path, batch_size=2, check_finite="raise") as sess:
        sess.feed(x[:, :3])  # main graph: finite
        before = sess.get_state()
        with pytest.raises(NonFiniteError, match="state is unchanged"):
            sess.step(x[:, 3])
        for k, v in sess.get_state().items():
            np.testing.assert_array_equal(v, before[k])
        np.testing.assert_array_equal(sess.feed(x[:, 3:5]).shape, (2, 2, 3))  # goes on from there
    with StreamPool(path, check_finite="raise") as pool:
        pool.open("a")
        with pytest.raises(NonFiniteError, match="state is unchanged"):
            pool.step_many({"a": x[0, 0]})
        assert not any(v.any() for v in pool.get_state("a").values())


def _natives(obj) -> list:
    """Weak references to the onnxruntime C++ sessions an object holds (main and step graph)."""
    backends = {id(b): b for b in (obj.backend, obj.step_backend)}
    # onnxruntime's C++ session, not its Python wrapper: rnnx's IO-binding fast path (run_bound)
    # holds the native session itself, so only this shows that close() let it go
    return [weakref.ref(b.session._sess) for b in backends.values()]


def test_close_and_the_finalizer_release_both_graphs(stepped, scan_lstm):
    x = scan_lstm[2]
    sess = StreamingSession(stepped, batch_size=2)
    sess.step(x[:, 0])
    sess.feed(x[:, 1:3])
    natives = _natives(sess)
    assert len(natives) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        sess.close()
        gc.collect()
    assert [n() for n in natives] == [None, None]
    sess = StreamingSession(stepped, batch_size=2)
    natives = _natives(sess)
    with pytest.warns(ResourceWarning, match="garbage-collected without close"):
        del sess
        gc.collect()
    assert [n() for n in natives] == [None, None]
    pool = StreamPool(stepped)  # a pool keeps only the step graph open
    pool.open("a")
    pool.step_many({"a": x[0, 0]})
    native = weakref.ref(pool.backend.session._sess)
    pool.close()
    gc.collect()
    assert native() is None


def test_check_parity_covers_the_step_graph(scan_lstm, tmp_path):
    """check_parity feeds one step at a time through StreamingSession: a wrong step graph fails it."""
    from rnnx.exporter import check_parity

    model = scan_lstm[1]
    wrong = check_parity(model, write_step_graph(scan_lstm[0], tmp_path / "wrong"), batch_sizes=(2,), steps=(1, 4))
    assert not wrong.ok and all(r.tensor == "y" for r in wrong.rows if not r.ok)
    assert {r.case for r in wrong.rows if not r.ok} >= {"step", "full"}  # step(), and feed of T=1
    right = write_step_graph(scan_lstm[0], tmp_path / "right", add=0.0)
    assert check_parity(model, right, batch_sizes=(2,), steps=(1, 4)).ok


# -- the exporter's own step graph ------------------------------------------------------------
@pytest.mark.parametrize("name", ["lstm-1l-scan", "convlstm-k3"])
def test_an_exported_step_graph_streams_like_the_eager_model(scan_lstm, onnx_file, name):
    """export_onnx writes <stem>.step.onnx beside a Scan graph; sessions and pools step on it."""
    if name == "lstm-1l-scan":
        path, model, x = scan_lstm
    else:
        path, model = onnx_file(name)
        x = sequence(model, 2, 9)
    want = reference(model, x[:, :6])  # (2, 6, out...)
    with StreamingSession(path, batch_size=2) as sess:
        assert sess.step_graph == path.with_name(f"{path.stem}.step.onnx")
        np.testing.assert_allclose(_steps(sess, x), want, atol=1e-5, rtol=1e-5)
    with StreamPool(path) as pool:
        assert pool.step_graph == sess.step_graph
        pool.open("a")
        pool.open("b")
        got = np.stack([pool.step_batch(["a", "b"], x[:, t]).array for t in range(6)], axis=1)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


# -- read once (issue 16) -----------------------------------------------------------------------
def test_a_step_graph_swapped_while_sessions_open_never_runs_unchecked(scan_lstm, tmp_path):
    """The file was hashed, then opened again by path: a graph swapped in between ran unchecked
    (320 sessions in a 60 s race). Now the bytes hashed are the bytes onnxruntime gets."""
    import os
    import threading
    import time

    path = write_step_graph(scan_lstm[0], tmp_path / "good")  # y + 1
    impostor = (write_step_graph(scan_lstm[0], tmp_path / "bad", add=100.0).parent / STEP).read_bytes()
    good = (path.parent / STEP).read_bytes()
    x = scan_lstm[2]
    with StreamingSession(scan_lstm[0], batch_size=2, step_graph=False) as main:
        want = main.step(x[:, 0])
    stop = threading.Event()

    def swap() -> None:
        tmp = path.parent / "swap.tmp"
        while not stop.is_set():
            for data in (impostor, good):
                tmp.write_bytes(data)
                os.replace(tmp, path.parent / STEP)

    swapper = threading.Thread(target=swap)
    swapper.start()
    opened = refused = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                sess = StreamingSession(path, batch_size=2)
            except SpecError:
                refused += 1
                continue
            with sess:
                opened += 1
                if sess.step_graph is not None:
                    np.testing.assert_allclose(sess.step(x[:, 0]), want + 1.0, atol=1e-5)
    finally:
        stop.set()
        swapper.join()
    assert opened > 0 and refused > 0, (opened, refused)


def test_a_step_graph_over_its_size_bound_is_refused_before_it_is_read(stepped, tmp_path):
    """A 4 GiB file took 23.5 s to hash before it was refused. Measured as bytes this process
    read (/proc/self/io's rchar), not as time: nothing of the 4 GiB is read."""
    from rnnx.runtime.step_graph import step_graph_limit

    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(stepped.read_bytes())
    limit = step_graph_limit(folder / "m.onnx")
    with open(folder / STEP, "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB without the disk
    read_before = _bytes_read()
    with pytest.raises(
        SpecError, match=rf"step graph {STEP} \(beside m\.onnx\): expected at most {limit} bytes .*got {4 << 30}"
    ):
        StreamingSession(folder / "m.onnx")
    assert _bytes_read() - read_before < 64 << 20  # the model file and the libraries, not the 4 GiB


def _bytes_read() -> int:
    """Bytes this process has read so far (read(2) and friends, page cache included)."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["rchar"])


def test_a_fifo_as_the_step_graph_is_refused_without_blocking(stepped, tmp_path):
    import os

    folder = tmp_path / "fifo"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(stepped.read_bytes())
    os.mkfifo(folder / STEP)
    with pytest.raises(SpecError, match=rf"step graph {STEP} \(beside m\.onnx\): expected a regular file, got a FIFO"):
        StreamingSession(folder / "m.onnx")


def test_a_step_graph_with_an_input_the_main_graph_lacks_is_refused(scan_lstm, tmp_path):
    """Mutation caught: the runtime without its input-set check opened a step graph taking an
    input it never feeds (the contract's names all matched)."""
    from onnx import TensorProto, helper

    def extra_input(graph) -> None:
        graph.input.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1]))
        for node in graph.node:
            node.input[:] = ["y/biased" if i == "y/main" else i for i in node.input]
        graph.node.insert(0, helper.make_node("Identity", ["bias"], ["bias/id"]))
        graph.node.append(helper.make_node("Add", ["y/main", "bias/id"], ["y/biased"], name="bias/add"))

    path = write_step_graph(scan_lstm[0], tmp_path, edit=extra_input)
    with pytest.raises(SpecError, match=r"expected the main graph's inputs .*, got .*'bias'"):
        StreamingSession(path, batch_size=2)
