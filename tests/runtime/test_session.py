"""StreamingSession: parity with the eager model, state handling, validation, errors."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

from rnnx.errors import (
    ClosedError,
    ConcurrentUseError,
    ConfigError,
    DTypeError,
    InputValueError,
    ModelFileError,
    NonFiniteError,
    NotStreamableError,
    ShapeError,
    SpecError,
    StateError,
)
from rnnx.runtime import RuntimeOptions, StreamingSession
from tests.runtime.conftest import reference, sequence

STREAMABLE = [
    "lstm-2l",
    "lstm-2l-proj",
    "gru-1l",
    "rnn-tanh",
    "tokens-lstm",
    "convlstm-k3",
    "custom-peephole",
    "custom-forecaster-lstm",
]


@pytest.mark.parametrize("batch", [1, 3], ids=["b1", "b3"])
@pytest.mark.parametrize("name", STREAMABLE, ids=STREAMABLE)
def test_step_and_feed_reproduce_eager_full_sequence(onnx_file, name, batch):
    path, model = onnx_file(name)
    x = sequence(model, batch, 9)
    want = reference(model, x)
    sess = StreamingSession(path, batch_size=batch)
    stepped = np.stack([sess.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(stepped, want, atol=1e-5, rtol=1e-5)
    sess.reset()
    chunked = np.concatenate([sess.feed(x[:, :4]), sess.feed(x[:, 4:5]), sess.feed(x[:, 5:])], axis=1)
    np.testing.assert_allclose(chunked, want, atol=1e-5, rtol=1e-5)


def test_mixing_step_and_feed_continues_the_same_sequence(onnx_file):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 6)
    sess = StreamingSession(path)
    ys = [sess.feed(x[:, :2]), sess.step(x[:, 2])[:, None], sess.feed(x[:, 3:])]
    np.testing.assert_allclose(np.concatenate(ys, axis=1), reference(model, x), atol=1e-5)


def test_step_returns_fresh_arrays_not_reused_buffers(onnx_file):
    path, model = onnx_file("gru-1l")
    x = sequence(model, 1, 2)
    sess = StreamingSession(path)
    first = sess.step(x[:, 0])
    kept = first.copy()
    sess.step(x[:, 1])
    np.testing.assert_array_equal(first, kept)


def test_get_state_copies_and_set_state_restores(onnx_file):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 4)
    sess = StreamingSession(path)
    sess.feed(x[:, :2])
    saved = sess.get_state()
    assert sorted(saved) == ["c", "h"] and saved["h"].shape == (2, 1, 8)
    after = sess.feed(x[:, 2:])
    saved["h"] += 0  # a copy: stepping did not change it
    sess.set_state(saved)
    np.testing.assert_array_equal(sess.feed(x[:, 2:]), after)


def test_reset_zeroes_every_state(onnx_file):
    path, model = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    sess.feed(sequence(model, 1, 3))
    sess.reset()
    assert all(not v.any() for v in sess.get_state().values())


@pytest.mark.parametrize(
    "state, match",
    [
        ({"h": np.zeros((2, 1, 8), np.float32)}, r"expected keys \['c', 'h'\]"),
        ({"h": np.zeros((2, 1, 8), np.float32), "c": np.zeros((2, 1, 8), np.float32), "z": np.zeros(1)}, "got .*'z'"),
        (
            {"h": np.zeros((2, 2, 8), np.float32), "c": np.zeros((2, 1, 8), np.float32)},
            r"state\['h'\]: expected shape \(2, 1, 8\), got \(2, 2, 8\)",
        ),
        (
            {"h": np.zeros((2, 1, 8), np.int64), "c": np.zeros((2, 1, 8), np.float32)},
            r"state\['h'\]: expected dtype float32, got int64",
        ),
        ([1, 2], "expected a dict of arrays, got list"),
    ],
    ids=["missing", "unknown", "shape", "dtype", "not-a-dict"],
)
def test_set_state_validates_and_leaves_state_unchanged(onnx_file, state, match):
    path, model = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    sess.feed(sequence(model, 1, 3))
    before = sess.get_state()
    with pytest.raises(StateError, match=match):
        sess.set_state(state)
    for k, v in sess.get_state().items():
        np.testing.assert_array_equal(v, before[k])


def test_set_state_converts_float64(onnx_file):
    path, _ = onnx_file("gru-1l")
    sess = StreamingSession(path)
    sess.set_state({"h": np.ones((1, 1, 8))})
    assert sess.get_state()["h"].dtype == np.float32 and sess.get_state()["h"].all()


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((1, 4), np.float32), ShapeError, r"x: expected shape \(1, 5\) \(batch, features\), got \(1, 4\)"),
        (np.zeros((2, 5), np.float32), ShapeError, r"x: expected shape \(1, 5\) \(batch, features\), got \(2, 5\)"),
        (np.zeros((1, 1, 5), np.float32), ShapeError, r"x: expected shape \(1, 5\) .*got \(1, 1, 5\)"),
        (np.zeros((1, 5), np.int64), DTypeError, r"x: expected dtype float32, got int64"),
        (np.zeros((1, 5), bool), DTypeError, r"x: expected dtype float32, got bool"),
        ([[0.0] * 5, [0.0] * 4], ShapeError, r"x: expected an array, got a ragged nested sequence \(rows of"),
    ],
    ids=["features", "batch", "rank", "int", "bool", "ragged"],
)
def test_step_rejects_bad_input_before_compute(onnx_file, bad, error, match):
    path, model = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    sess.step(sequence(model, 1, 1)[:, 0])
    before = sess.get_state()
    with pytest.raises(error, match=match):
        sess.step(bad)
    for k, v in sess.get_state().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            np.zeros((1, 3, 4), np.float32),
            ShapeError,
            r"x: expected shape \(1, T, 5\) \(batch, time, features\), got \(1, 3, 4\)",
        ),
        (np.zeros((1, 0, 5), np.float32), ShapeError, "at least one time step"),
        (np.zeros((1, 3), np.float32), ShapeError, r"got \(1, 3\)"),
        (np.zeros((1, 3, 5), np.int32), DTypeError, "expected dtype float32, got int32"),
        ([[[0.0] * 5, [0.0] * 5], [[0.0] * 5]], ShapeError, r"x: expected an array, got a ragged nested sequence"),
    ],
    ids=["features", "empty-time", "rank", "int", "ragged"],
)
def test_feed_rejects_bad_chunks_and_keeps_state(onnx_file, bad, error, match):
    path, model = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    sess.feed(sequence(model, 1, 2))
    before = sess.get_state()
    with pytest.raises(error, match=match):
        sess.feed(bad)
    for k, v in sess.get_state().items():
        np.testing.assert_array_equal(v, before[k])


def test_float64_input_is_converted(onnx_file):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 3)
    sess = StreamingSession(path)
    np.testing.assert_allclose(sess.feed(x.astype(np.float64)), reference(model, x), atol=1e-5)


def test_step_fast_path_matches_validated_path_for_every_input_form(onnx_file):
    """After the first step, exact float32 arrays skip re-validation; other forms must not differ."""
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 6)
    sess = StreamingSession(path)
    forms = [x[:, 0], x[:, 1], x[:, 2].astype(np.float64), x[:, 3].tolist(), np.asfortranarray(x[:, 4]), x[:, 5]]
    ys = np.stack([sess.step(f) for f in forms], axis=1)
    np.testing.assert_allclose(ys, reference(model, x), atol=1e-5)


def test_token_model_rejects_floats_and_accepts_int32(onnx_file):
    path, model = onnx_file("tokens-lstm")
    x = sequence(model, 1, 3)
    sess = StreamingSession(path)
    with pytest.raises(DTypeError, match="x: expected dtype int64, got float32"):
        sess.step(x[:, 0].astype(np.float32))
    np.testing.assert_allclose(sess.feed(x.astype(np.int32)), reference(model, x), atol=1e-5)


@pytest.mark.parametrize("bad_id", [20, -1, 10**12], ids=["vocab", "negative", "huge"])
def test_token_ids_are_range_checked_like_the_pools_and_the_state_stays(onnx_file, bad_id):
    """step (first call and the validated fast path), feed and run refuse ids outside [0, 20)."""
    path, model = onnx_file("tokens-lstm")
    x = sequence(model, 1, 3)  # (1, 3) ids
    sess = StreamingSession(path)
    match = r"x: expected token ids in \[0, 20\) \(vocab_size 20\), got " + str(bad_id)
    bad_step = np.array([bad_id], dtype=np.int64)
    with pytest.raises(InputValueError, match=match):
        sess.step(bad_step)  # before any good step: the full check
    sess.step(x[:, 0])
    before = {k: v.copy() for k, v in sess.get_state().items()}
    with pytest.raises(InputValueError, match=match):
        sess.step(bad_step)  # same shape and dtype as the good step: the fast path
    with pytest.raises(InputValueError, match=match):
        sess.feed(np.array([[1, bad_id]], dtype=np.int64))
    with pytest.raises(InputValueError, match=match):
        sess.run(np.array([[bad_id]], dtype=np.int64))
    for k, v in sess.get_state().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("name", ["lstm-bi", "gru-bi"], ids=["lstm-bi", "gru-bi"])
def test_bidirectional_refuses_streaming_but_runs_whole_sequences(onnx_file, name):
    path, model = onnx_file(name)
    sess = StreamingSession(path)
    x = sequence(model, 2, 6)
    with pytest.raises(NotStreamableError, match="step: .* not streamable .*use run"):
        sess.step(x[:1, 0])
    with pytest.raises(NotStreamableError, match="feed: .* not streamable"):
        sess.feed(x[:1])
    np.testing.assert_allclose(sess.run(x), reference(model, x), atol=1e-5)


def test_run_starts_from_zero_and_leaves_session_state_alone(onnx_file):
    path, model = onnx_file("gru-2l")
    x = sequence(model, 2, 5)
    sess = StreamingSession(path)
    sess.step(x[:1, 0])
    before = sess.get_state()
    np.testing.assert_allclose(sess.run(x), reference(model, x), atol=1e-5)
    np.testing.assert_array_equal(sess.get_state()["h"], before["h"])


def test_save_and_load_state_round_trip(onnx_file, tmp_path):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 6)
    sess = StreamingSession(path)
    sess.feed(x[:, :3])
    file = sess.save_state(tmp_path / "s.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary file left behind
    want = sess.feed(x[:, 3:])
    other = StreamingSession(path)
    other.load_state(file)
    np.testing.assert_array_equal(other.feed(x[:, 3:]), want)


def test_saved_state_resumes_bit_exactly_in_a_new_process(onnx_file, tmp_path):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 8)
    np.save(tmp_path / "x.npy", x)
    sess = StreamingSession(path)
    sess.feed(x[:, :4])
    sess.save_state(tmp_path / "state.npz")
    want = np.stack([sess.step(x[:, t]) for t in range(4, 8)], axis=1)
    script = textwrap.dedent(f"""
        import numpy as np
        from rnnx.runtime import StreamingSession
        x = np.load({str(tmp_path / "x.npy")!r})
        s = StreamingSession({str(path)!r})
        s.load_state({str(tmp_path / "state.npz")!r})
        np.save({str(tmp_path / "y.npy")!r}, np.stack([s.step(x[:, t]) for t in range(4, 8)], axis=1))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_load_state_from_another_model_fails_and_keeps_state(onnx_file, tmp_path):
    gru_path, _ = onnx_file("gru-1l")
    StreamingSession(gru_path).save_state(tmp_path / "gru.npz")
    path, model = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    sess.feed(sequence(model, 1, 2))
    before = sess.get_state()
    with pytest.raises(StateError, match=r"gru.npz: 'h': expected shape \(2, 1, 8\) dtype float32, got \(1, 1, 8\)"):
        sess.load_state(tmp_path / "gru.npz")
    np.testing.assert_array_equal(sess.get_state()["c"], before["c"])


@pytest.mark.parametrize("content", [b"", b"garbage, not onnx", b"\x08\x07" * 50], ids=["empty", "text", "binary"])
def test_corrupt_model_files_raise_model_file_error(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a loadable ONNX file"):
        StreamingSession(bad)


def test_missing_model_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="expected an ONNX file, got no file"):
        StreamingSession(tmp_path / "nope.onnx")
    with pytest.raises(ModelFileError, match="got a directory"):
        StreamingSession(tmp_path)
    (tmp_path / "m.pt2").mkdir()  # step programs say what is there too, before their engine is imported
    with pytest.raises(ModelFileError, match=r"expected a torch.export \.pt2 file, got a directory at"):
        StreamingSession(tmp_path / "m.pt2")
    with pytest.raises(ModelFileError, match=r"expected an ExecuTorch \.pte file, got no file at"):
        StreamingSession(tmp_path / "m.pte")


def test_foreign_model_without_state_map_is_refused(foreign):
    path, _ = foreign
    with pytest.raises(ModelFileError, match="no 'rnnx.spec' metadata .* state_map="):
        StreamingSession(path)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ConfigError, "batch_size: expected an int >= 1, got 0"),
        ({"context": 2}, SpecError, "context: left context applies to inputs without a time axis"),
        ({"context": -1}, ConfigError, "context: expected an int >= 0, got -1"),
        (
            {"batch_size": 10**12},
            ConfigError,
            r"batch_size: expected state buffers of at most \d+ bytes, batch_size=1000000000000 needs",
        ),
    ],
    ids=["batch0", "context-on-time-axis", "negative-context", "huge-batch"],
)
def test_bad_constructor_arguments(onnx_file, kwargs, error, match):
    """An option out of range is a ConfigError (as in the pool); a contract mismatch a SpecError."""
    path, _ = onnx_file("gru-1l")
    with pytest.raises(error, match=match):
        StreamingSession(path, **kwargs)


def test_spec_property_exposes_the_contract(onnx_file):
    path, _ = onnx_file("lstm-2l")
    sess = StreamingSession(path)
    assert sess.spec.kind == "lstm" and sess.state_names == ["h", "c"]


def test_runtime_imports_neither_torch_nor_onnx():
    code = (
        "import sys, rnnx.runtime; bad = [m for m in ('torch', 'onnx') if m in sys.modules]; "
        "sys.exit('imported: %s' % bad if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- state access, rollback, caches (issue 10's surviving mutations) -------------------------


def test_get_state_returns_copies_not_live_views(onnx_file):
    """Mutation caught: ``OrtBackend.read`` returning the live buffer instead of ``buf.copy()``."""
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 4)
    with StreamingSession(path) as sess:
        sess.feed(x[:, :2])
        saved = sess.get_state()
        kept = {k: v.copy() for k, v in saved.items()}
        sess.step(x[:, 2])
        sess.step(x[:, 3])  # two steps: both ping-pong buffer sets are rewritten
        for k in kept:
            np.testing.assert_array_equal(saved[k], kept[k])
        saved["h"][...] = 99.0  # writing into the copy must not reach the session
        assert not (sess.get_state()["h"] == 99.0).any()


def test_foreign_feed_rolls_back_when_a_later_step_fails(onnx_file):
    """Mutation caught: ``_feed_steps`` without its ``except: self._set_state(before)`` rollback.

    A token model opened as a foreign model (state_map) steps a chunk one slice at a time;
    an out-of-range token id in the third slice fails inside onnxruntime after two slices
    already ran, and the state must be the one from before the call.
    """
    path, _ = onnx_file("tokens-lstm")
    with StreamingSession(path, state_map={"h_in": "h_out", "c_in": "c_out"}) as sess:
        sess.feed(np.array([[[3], [4]]]))  # (batch 1, 2 steps, graph slice (1, 1))
        before = sess.get_state()
        with pytest.raises(Exception, match="out of data bounds|Gather"):
            sess.feed(np.array([[[1], [2], [1000]]]))
        after = sess.get_state()
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])


def _traced() -> int:
    """Bytes tracemalloc sees allocated now (numpy's arrays included), after a collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_chunk_binding_cache_stays_bounded(onnx_file):
    """Mutation caught: ``StepEngine._chunk_plan`` without the ``len(self._chunks) >= CHUNK_PLANS`` clear.

    Chunks of ever new lengths keep the memory of at most CHUNK_PLANS of them (each ~32 KiB of
    buffers here), not one more per length.
    """
    from rnnx.runtime.engine import CHUNK_PLANS

    path, model = onnx_file("gru-1l")
    base, x = 1000, sequence(model, 1, 1000 + 3 * CHUNK_PLANS)
    with StreamingSession(path) as sess:
        tracemalloc.start()
        try:
            start = _traced()
            for steps in range(base + 1, base + 1 + CHUNK_PLANS):  # a full cache
                sess.feed(x[:, :steps])
            full = _traced() - start
            for steps in range(base + 1 + CHUNK_PLANS, base + 1 + 3 * CHUNK_PLANS):  # twice as many lengths more
                sess.feed(x[:, :steps])
            later = _traced() - start
        finally:
            tracemalloc.stop()
    assert full > 0 and later < 1.5 * full, (full, later)


# -- lifecycle and threads ---------------------------------------------------------------------


def test_close_releases_and_later_calls_raise(onnx_file):
    path, model = onnx_file("gru-1l")
    x = sequence(model, 4096, 2)
    tracemalloc.start()  # numpy's allocations are traced: the state buffers are 256 KiB of them
    try:
        start = _traced()
        with StreamingSession(path, batch_size=4096) as sess:
            sess.step(x[:, 0])  # the fast path is armed
            native = weakref.ref(sess.backend.session)
            state_bytes = 2 * sum(v.nbytes for v in sess.get_state().values())  # two ping-pong sets
        kept = _traced() - start  # what the closed session object still holds
    finally:
        tracemalloc.stop()
    assert kept < state_bytes / 4, (kept, state_bytes)
    assert sess.closed and sess.backend.session is None and native() is None
    for call in (
        lambda: sess.step(x[:, 1]),
        lambda: sess.feed(x),
        lambda: sess.run(x),
        sess.get_state,
        sess.reset,
        lambda: sess.state_device,
    ):
        with pytest.raises(ClosedError, match="is closed"):
            call()
    sess.close()  # idempotent


def test_unclosed_session_is_cleaned_up_with_a_resource_warning(onnx_file):
    import gc
    import weakref

    path, _ = onnx_file("gru-1l")
    sess = StreamingSession(path)
    backend = weakref.ref(sess.backend)
    with pytest.warns(ResourceWarning, match=r"StreamingSession\(gru-1l.onnx\) was garbage-collected without close"):
        del sess
        gc.collect()
    assert backend() is None or backend().session is None


def test_second_thread_is_refused_instead_of_corrupting_state(onnx_file):
    import threading

    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 20000)  # one feed long enough for the main thread to run into it
    errors: list[BaseException] = []
    with StreamingSession(path) as sess:
        worker = threading.Thread(target=lambda: sess.feed(x))
        worker.start()
        while worker.is_alive():
            try:
                sess.get_state()
            except ConcurrentUseError as e:
                errors.append(e)
        worker.join()
        assert errors, "the main thread never ran into the worker's feed"
        assert "in use by another thread" in str(errors[0])
        with StreamingSession(path) as alone:  # the worker's feed ran undisturbed
            alone.feed(x)
            for k, v in alone.get_state().items():
                np.testing.assert_array_equal(sess.get_state()[k], v)


def test_busy_session_refuses_every_call(onnx_file):
    path, model = onnx_file("gru-1l")
    x = sequence(model, 1, 2)
    with StreamingSession(path) as sess:
        sess.step(x[:, 0])
        state = sess.get_state()
        entered, gate = threading.Event(), threading.Event()

        class Held(dict):  # a state whose values are read once the test lets them be
            def __getitem__(self, key):
                entered.set()
                gate.wait(60)
                return super().__getitem__(key)

        worker = threading.Thread(target=sess.set_state, args=(Held({k: v + 1 for k, v in state.items()}),))
        worker.start()  # another thread, inside set_state
        try:
            assert entered.wait(60)
            for call in (
                lambda: sess.step(x[:, 1]),
                lambda: sess.feed(x),
                lambda: sess.run(x),
                sess.get_state,
                sess.reset,
                lambda: sess.set_state({}),
            ):
                with pytest.raises(ConcurrentUseError, match="another thread"):
                    call()
        finally:
            gate.set()
            worker.join(60)
        for k, v in sess.get_state().items():  # the worker's call went through undisturbed
            np.testing.assert_array_equal(v, state[k] + 1)


# -- empty batches and non-finite values -------------------------------------------------------


@pytest.mark.parametrize("name", ["lstm-2l", "gru-1l"], ids=["lstm", "gru"])
def test_empty_batch_is_refused_before_onnxruntime(onnx_file, name):
    """onnxruntime aborts the whole process (SIGABRT) on batch 0 through LSTM/GRU."""
    path, _ = onnx_file(name)
    with StreamingSession(path) as sess:
        with pytest.raises(ShapeError, match=r"x: expected a non-empty array .* got shape \(0, 4, 5\)"):
            sess.run(np.zeros((0, 4, 5), np.float32))


def test_onnxruntime_lstm_turns_nan_into_finite_numbers_so_check_finite_exists(onnx_file):
    """What the README states: with check_finite="off" a NaN input yields finite, wrong outputs."""
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 3)
    x[0, 1, 2] = np.nan
    with StreamingSession(path) as sess:
        assert np.isfinite(sess.feed(x)).all() and np.isfinite(sess.get_state()["h"]).all()


def test_check_finite_raise_refuses_and_keeps_state(onnx_file):
    path, model = onnx_file("lstm-2l")
    x = sequence(model, 1, 3)
    bad = x.copy()
    bad[0, 1, 2] = np.inf
    with StreamingSession(path, check_finite="raise") as sess:
        sess.step(x[:, 0])
        before = sess.get_state()
        for call in (lambda: sess.feed(bad), lambda: sess.step(bad[:, 1]), lambda: sess.run(bad)):
            with pytest.raises(NonFiniteError, match=r"x: expected finite values in the input, got 1 NaN/inf"):
                call()
        for k, v in sess.get_state().items():
            np.testing.assert_array_equal(v, before[k])
        np.testing.assert_allclose(sess.feed(x[:, 1:]), reference(model, x)[:, 1:], atol=1e-5)


def test_check_finite_warn_warns_and_runs(onnx_file):
    path, model = onnx_file("gru-1l")
    x = sequence(model, 1, 2)
    x[0, 0, 0] = np.nan
    with StreamingSession(path, options=RuntimeOptions(check_finite="warn")) as sess:
        with pytest.warns(RuntimeWarning, match="check_finite='warn'"):
            y = sess.feed(x)
        assert y.shape[:2] == (1, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"check_finite": "maybe"}, "check_finite: expected one of off, warn, raise, got 'maybe'"),
        ({"threads": -1}, r"threads: expected an int from 0 to 1024 or None, got -1"),
        ({"threads": 100000}, r"threads: expected an int from 0 to 1024 or None, got 100000"),
        ({"optimization": "max"}, "optimization: expected one of off, basic, extended, all, got 'max'"),
        ({"session_config": {"a": "b"}}, r"session_config: expected a tuple of \(key, value\) string pairs"),
    ],
    ids=["check-finite", "threads", "threads-too-many", "optimization", "session-config"],
)
def test_bad_runtime_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RuntimeOptions(**kwargs)


def test_runtime_options_threads_reach_onnxruntime(onnx_file):
    path, model = onnx_file("gru-1l")
    with StreamingSession(path, options=RuntimeOptions(threads=1)) as sess:
        assert sess.backend.session.get_session_options().intra_op_num_threads == 1
        assert sess.feed(sequence(model, 1, 3)).shape[:2] == (1, 3)
