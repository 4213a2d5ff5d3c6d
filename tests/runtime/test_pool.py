"""StreamPool: batched steps equal solo sessions, slots, batcher, errors."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import tracemalloc
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnx.errors import (
    ClosedError,
    DTypeError,
    DuplicateStreamError,
    InputValueError,
    NonFiniteError,
    NotStreamableError,
    PoolFullError,
    ShapeError,
    StateError,
    StreamExistsError,
    UnknownStreamError,
)
from rnnx.runtime import StreamingSession, StreamPool
from tests.runtime.conftest import FOREIGN_K, FOREIGN_N, make_batcher_wait, sequence, started_threads


def solo_outputs(path, xs: np.ndarray, **kw) -> np.ndarray:
    """Outputs of a batch-1 session stepping through xs (T, F...)."""
    sess = StreamingSession(path, **kw)
    return np.stack([sess.step(x[None])[0] for x in xs])


@pytest.fixture(scope="module")
def lstm(onnx_file):
    path, model = onnx_file("lstm-2l")
    xs = sequence(model, 6, 8)  # stream i gets xs[i] (T, F)
    solo = [solo_outputs(path, xs[i]) for i in range(6)]
    return path, xs, solo


def test_step_many_matches_solo_sessions(lstm):
    path, xs, solo = lstm
    with StreamPool(path, capacity=2) as pool:  # grows 2 -> 4 -> 8
        for i in range(6):
            pool.open(f"s{i}")
        for t in range(8):
            active = [i for i in range(6) if (t + i) % 3]  # a different subset each step
            ys = pool.step_many({f"s{i}": xs[i, t] for i in active})
            assert sorted(ys) == sorted(f"s{i}" for i in active)
        with pytest.raises(ShapeError, match="inputs: expected at least one"):
            pool.step_many({})  # a batch of 0 never reaches onnxruntime
    with StreamPool(path, capacity=2) as pool:
        for i in range(6):
            pool.open(i)
        got = np.stack(
            [np.stack(list(pool.step_many({i: xs[i, t] for i in range(6)}).values())) for t in range(8)], axis=1
        )  # (6, T, out)
    np.testing.assert_allclose(got, np.stack(solo), atol=1e-5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=st.lists(st.sets(st.integers(0, 5), min_size=1), min_size=1, max_size=12))
def test_any_interleaving_matches_solo(lstm, schedule):
    path, xs, solo = lstm
    steps = [0] * 6
    with StreamPool(path, capacity=1) as pool:
        for i in range(6):
            pool.open(i)
        for group in schedule:
            group = [i for i in group if steps[i] < xs.shape[1]]
            if not group:
                continue
            ys = pool.step_many({i: xs[i, steps[i]] for i in group})
            for i in group:
                np.testing.assert_allclose(ys[i], solo[i][steps[i]], atol=1e-5)
                steps[i] += 1


def test_closed_slots_are_reused_with_zero_state(lstm):
    path, xs, solo = lstm
    with StreamPool(path, capacity=2) as pool:
        pool.open("a")
        pool.open("b")
        pool.step_many({"a": xs[0, 0], "b": xs[1, 0]})
        pool.close("a")
        pool.open("c")  # takes a's slot
        assert pool.capacity == 2 and sorted(map(str, pool.streams)) == ["b", "c"]
        y = pool.step_many({"c": xs[2, 0]})["c"]
        np.testing.assert_allclose(y, solo[2][0], atol=1e-5)


def test_reset_get_and_set_state_per_stream(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        pool.open("b")
        pool.step_many({"a": xs[0, 0], "b": xs[1, 0]})
        state = pool.get_state("a")
        assert state["h"].shape == (2, 1, 8)
        pool.step_many({"a": xs[0, 1]})
        pool.set_state("b", state)  # b continues a's sequence
        np.testing.assert_allclose(pool.step_many({"b": xs[0, 1]})["b"], solo[0][1], atol=1e-5)
        pool.reset("a")
        assert not pool.get_state("a")["c"].any()
        with pytest.raises(StateError, match=r"state\['h'\]: expected shape \(2, 1, 8\), got \(2, 3, 8\)"):
            pool.set_state("a", {"h": np.zeros((2, 3, 8), np.float32), "c": state["c"]})


def test_stream_errors(lstm):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        with pytest.raises(StreamExistsError, match="stream 'a': already open"):
            pool.open("a")
        for call in (
            lambda: pool.close("z"),
            lambda: pool.reset("z"),
            lambda: pool.get_state("z"),
            lambda: pool.set_state("z", {}),
            lambda: pool.step_many({"z": xs[0, 0]}),
        ):
            with pytest.raises(UnknownStreamError, match="stream 'z': not open"):
                call()
        with pytest.raises(UnknownStreamError, match=r"stream \['unhashable'\]: not open"):  # not a TypeError
            pool.reset(["unhashable"])


def test_bad_input_in_step_many_changes_nothing(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        pool.open("b")
        with pytest.raises(
            ShapeError, match=r"stream 'b': x: expected shape \(5,\) per stream \(without the batch axis\), got \(4,\)"
        ):
            pool.step_many({"a": xs[0, 0], "b": xs[1, 0, :4]})
        assert not pool.get_state("a")["h"].any()
        np.testing.assert_allclose(pool.step_many({"a": xs[0, 0]})["a"], solo[0][0], atol=1e-5)


def test_submit_from_many_threads_matches_solo(lstm):
    path, xs, solo = lstm
    with StreamPool(path, max_batch=4, max_wait_ms=1.0) as pool:
        for i in range(6):
            pool.open(i)

        def stream(i: int) -> np.ndarray:
            return np.stack([pool.submit(i, xs[i, t]).result(timeout=30) for t in range(8)])

        with ThreadPoolExecutor(6) as ex:
            got = list(ex.map(stream, range(6)))
    np.testing.assert_allclose(np.stack(got), np.stack(solo), atol=1e-5)


def test_same_stream_submissions_run_in_order_in_separate_batches(lstm):
    path, xs, solo = lstm
    with StreamPool(path, max_batch=64, max_wait_ms=50.0) as pool:
        pool.open("a")
        pool.open("b")
        futs = [pool.submit("a", xs[0, t]) for t in range(8)] + [pool.submit("b", xs[1, 0])]
        got = np.stack([f.result(timeout=30) for f in futs[:8]])
        np.testing.assert_allclose(got, solo[0], atol=1e-5)
        np.testing.assert_allclose(futs[8].result(timeout=30), solo[1][0], atol=1e-5)


def test_bad_submission_fails_only_its_future(lstm):
    path, xs, solo = lstm
    with StreamPool(path, max_wait_ms=20.0) as pool:
        pool.open("a")
        pool.open("b")
        good = pool.submit("a", xs[0, 0])
        bad = pool.submit("b", np.zeros(3, np.float32))
        unknown = pool.submit("zz", xs[0, 0])
        np.testing.assert_allclose(good.result(timeout=30), solo[0][0], atol=1e-5)
        with pytest.raises(ShapeError, match=r"stream 'b': x: expected shape"):
            bad.result(timeout=30)
        with pytest.raises(UnknownStreamError, match="stream 'zz': not open"):
            unknown.result(timeout=30)
        assert not pool.get_state("b")["h"].any()


def test_asubmit_for_asyncio(lstm):
    path, xs, solo = lstm

    async def main(pool: StreamPool) -> list:
        return await asyncio.gather(*(pool.asubmit(i, xs[i, 0]) for i in range(3)))

    with StreamPool(path) as pool:
        for i in range(3):
            pool.open(i)
        ys = asyncio.run(main(pool))
    for i, y in enumerate(ys):
        np.testing.assert_allclose(y, solo[i][0], atol=1e-5)


def test_close_stops_the_batcher_thread_and_refuses_more(lstm):
    path, xs, _ = lstm
    before = threading.enumerate()
    pool = StreamPool(path)
    pool.open("a")
    pool.submit("a", xs[0, 0]).result(timeout=30)
    (thread,) = started_threads(before, "rnnx-batcher")
    pool.close()
    assert not thread.is_alive()
    with pytest.raises(ClosedError, match="StreamPool is closed"):
        pool.submit("a", xs[0, 0])


def test_foreign_model_pool_with_context(foreign):
    path, _ = foreign
    kw = dict(state_map={"state": "stateN"}, constants={"sr": np.array(16000)}, context=FOREIGN_K)
    xs = np.random.default_rng(1).standard_normal((3, 5, FOREIGN_N)).astype(np.float32)
    solo = [solo_outputs(path, xs[i], **kw) for i in range(3)]
    with StreamPool(path, **kw) as pool:
        for i in range(3):
            pool.open(i)
        for t in range(5):
            ys = pool.step_many({i: xs[i, t - i] for i in range(3) if i <= t})  # stream i starts at t=i
            for i, y in ys.items():
                np.testing.assert_allclose(y, solo[i][t - i], atol=1e-5)
        assert pool.get_state(0)["_context"].shape == (1, FOREIGN_K)


def test_not_streamable_models_are_refused(onnx_file):
    path, _ = onnx_file("gru-bi")
    with pytest.raises(NotStreamableError, match="not streamable"):
        StreamPool(path)


def test_thread_safety_of_direct_calls(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        errors: list = []

        def worker(i: int) -> None:
            try:
                pool.open(i)
                ys = [pool.step_many({i: xs[i, t]})[i] for t in range(8)]
                np.testing.assert_allclose(np.stack(ys), solo[i], atol=1e-5)
            except BaseException as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors


def test_every_slot_path_and_subsets_interleave_exactly(lstm):
    """Stepping every slot (no-copy path, state sets flip) mixed with subsets (gather/scatter)."""
    path, xs, _ = lstm
    received: dict[int, list] = {i: [] for i in range(6)}
    outputs: dict[int, list] = {i: [] for i in range(6)}
    with StreamPool(path, capacity=6) as pool:
        for i in range(6):
            pool.open(i)
        for t in range(8):
            active = range(6) if t % 3 != 1 else [1, 4, 5]
            ys = pool.step_many({i: xs[i, len(received[i])] for i in active})
            for i in active:
                received[i].append(xs[i, len(received[i])])
                outputs[i].append(ys[i])
            if t == 4:  # a state read and write between the two paths must survive the flip
                pool.set_state(2, pool.get_state(2))
    for i in range(6):
        np.testing.assert_allclose(np.stack(outputs[i]), solo_outputs(path, np.stack(received[i])), atol=1e-5)


def test_step_batch_equals_step_many(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as a, StreamPool(path) as b:
        for i in range(6):
            a.open(i)
            b.open(i)
        for t in range(8):
            order = [5, 0, 3, 1, 4, 2]
            got = a.step_batch(order, xs[order, t])
            want = b.step_many({i: xs[i, t] for i in order})
            np.testing.assert_array_equal(got.array, want.array)
            assert list(got) == order and got[3].shape == want[3].shape
        np.testing.assert_allclose(np.stack([got[i] for i in range(6)]), np.stack(solo)[:, -1], atol=1e-5)


def test_step_outputs_is_a_read_only_mapping(lstm):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        pool.open("b")
        ys = pool.step_many({"b": xs[1, 0], "a": xs[0, 0]})
        assert len(ys) == 2 and list(ys) == ["b", "a"] and "a" in ys
        assert ys.array.shape == (2, 3)
        np.testing.assert_array_equal(ys["a"], ys.array[1])
        with pytest.raises(KeyError):
            ys["zzz"]
        with pytest.raises(TypeError):
            ys["a"] = np.zeros(3)  # type: ignore[index]


@pytest.mark.parametrize(
    "ids, x, error, match",
    [
        (
            [0, 1, 0],
            np.zeros((3, 5), np.float32),
            DuplicateStreamError,
            r"ids: expected distinct stream ids, got 0 more than once",
        ),
        ([0, 9], np.zeros((2, 5), np.float32), UnknownStreamError, r"stream 9: not open"),
        (
            [0, 1],
            np.zeros((3, 5), np.float32),
            ShapeError,
            r"x: expected shape \(2, 5\) \(batch, features\), got \(3, 5\)",
        ),
        ([0, 1], np.zeros((2, 5), np.int64), DTypeError, r"x: expected dtype float32, got int64"),
    ],
    ids=["duplicate", "unknown", "rows", "dtype"],
)
def test_step_batch_rejects_bad_calls_and_changes_nothing(lstm, ids, x, error, match):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        for i in range(3):
            pool.open(i)
        pool.step_batch([0, 1, 2], xs[:3, 0])
        before = [pool.get_state(i) for i in range(3)]
        with pytest.raises(error, match=match):
            pool.step_batch(ids, x)
        for i in range(3):
            for k, v in pool.get_state(i).items():
                np.testing.assert_array_equal(v, before[i][k])


# -- failure isolation -------------------------------------------------------------------------
WAIT = 60  # seconds any single wait may take before the test fails instead of hanging


@pytest.fixture(scope="module")
def tokens(onnx_file, tmp_path_factory):
    """A token model as exported today (vocab_size recorded) and as an older file without it."""
    import onnx

    path, model = onnx_file("tokens-lstm")
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "rnnx.spec":
            spec = json.loads(prop.value)
            assert spec["input"]["vocab_size"] == 20
            del spec["input"]["vocab_size"]
            prop.value = json.dumps(spec)
    old = tmp_path_factory.mktemp("old-spec") / "tokens-no-vocab.onnx"
    onnx.save(proto, str(old))
    xs = sequence(model, 3, 4)  # (3, T) token ids in [0, 20)
    return path, old, xs


def test_a_step_the_model_rejects_fails_only_its_own_future(tokens):
    """No vocabulary in the contract: the graph itself rejects id 25; the batch is retried singly."""
    _, old, xs = tokens
    with StreamPool(old) as pool:
        for i in "abc":
            pool.open(i)
        good_a, bad, good_c = pool.submit_many({"a": xs[0, 0], "b": np.int64(25), "c": xs[2, 0]})
        with pytest.raises(InputValueError, match=r"stream 'b': the model rejected this step at run time"):
            bad.result(timeout=WAIT)
        np.testing.assert_allclose(good_a.result(timeout=WAIT), solo_outputs(old, xs[0, :1])[0], atol=1e-5)
        np.testing.assert_allclose(good_c.result(timeout=WAIT), solo_outputs(old, xs[2, :1])[0], atol=1e-5)
        assert not pool.get_state("b")["h"].any()  # the rejected step changed nothing


@pytest.mark.parametrize("bad_id", [20, -1, 10**12], ids=["vocab", "negative", "huge"])
def test_token_ids_are_checked_against_the_vocabulary(tokens, bad_id):
    path, _, xs = tokens
    match = r"stream 'b': x: expected token ids in \[0, 20\) \(vocab_size 20\), got \[" + str(bad_id)
    with StreamPool(path, max_wait_ms=50) as pool:
        for i in "abc":
            pool.open(i)
        good_a, bad, good_c = pool.submit_many({"a": xs[0, 0], "b": np.int64(bad_id), "c": xs[2, 0]})
        with pytest.raises(InputValueError, match=match):
            bad.result(timeout=WAIT)
        np.testing.assert_allclose(good_a.result(timeout=WAIT), solo_outputs(path, xs[0, :1])[0], atol=1e-5)
        np.testing.assert_allclose(good_c.result(timeout=WAIT), solo_outputs(path, xs[2, :1])[0], atol=1e-5)
        with pytest.raises(InputValueError, match=match):
            pool.submit("b", np.int64(bad_id)).result(timeout=WAIT)
        with pytest.raises(InputValueError, match=match):
            pool.step_many({"a": xs[0, 1], "b": np.int64(bad_id)})
        with pytest.raises(InputValueError, match=match.replace("stream 'b'", "stream 'b'")):
            pool.step_batch(["a", "b"], np.array([xs[0, 1], bad_id]))
        assert not pool.get_state("b")["h"].any()


# -- input checks ---------------------------------------------------------------------------
def test_mixed_int_and_float_inputs_are_refused_like_a_lone_int(lstm):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        pool.open("b")
        with pytest.raises(DTypeError, match=r"stream 'b': x: expected dtype float32, got int64"):
            pool.step_many({"a": xs[0, 0], "b": np.ones(5, np.int64)})
        with pytest.raises(DTypeError, match=r"stream 'b': x: expected dtype float32, got int64"):
            pool.step_many({"b": np.ones(5, np.int64)})
        assert not pool.get_state("a")["h"].any()


def test_zero_size_batches_are_refused(lstm):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        for call in (
            lambda: pool.step_many({}),
            lambda: pool.step_batch([], np.zeros((0, 5), np.float32)),
            lambda: pool.submit_many({}),
        ):
            with pytest.raises(ShapeError, match="expected at least one"):
                call()


def test_step_outputs_rows_are_read_only(lstm):
    path, xs, _ = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        ys = pool.step_many({"a": xs[0, 0]})
        with pytest.raises(ValueError, match="read-only"):
            ys["a"][0] = 1.0


# -- limits ---------------------------------------------------------------------------------
def test_max_streams_is_enforced(lstm):
    path, _, _ = lstm
    with StreamPool(path, max_streams=2) as pool:
        pool.open("a")
        pool.open("b")
        with pytest.raises(PoolFullError, match=r"max_streams: 2 streams open \(the limit\)"):
            pool.open("c")
        pool.close("a")
        pool.open("c")


def test_max_pending_blocks_submit_with_a_timeout_and_refuses_oversized_bulks(lstm):
    path, xs, solo = lstm
    with StreamPool(path, max_pending=2, max_wait_ms=1000) as pool:
        for i in range(2):
            pool.open(i)
        make_batcher_wait(pool, xs[:2, 0], [0, 1])  # now one ready stream waits (1 s) for a second
        first = [pool.submit(0, xs[0, 1]), pool.submit(0, xs[0, 2])]  # 2 queued: the limit
        with pytest.raises(PoolFullError, match=r"max_pending: 2 steps queued \(the limit\) for 0.01 s"):
            pool.submit(1, xs[1, 1], timeout=0.01)
        with pytest.raises(PoolFullError, match="max_pending"):
            pool.submit_many({1: xs[1, 1]})
        third = pool.submit(1, xs[1, 1], timeout=WAIT)  # blocks until the batch is taken
        got = [f.result(timeout=WAIT) for f in first + [third]]
    np.testing.assert_allclose(np.stack(got), [solo[0][1], solo[0][2], solo[1][1]], atol=1e-5)


def test_slot_storage_shrinks_when_most_streams_close(lstm):
    path, xs, solo = lstm
    with StreamPool(path, capacity=2) as pool:
        for i in range(40):
            pool.open(i)
        assert pool.capacity == 64
        pool.step_many({i: xs[i % 6, 0] for i in range(40)})
        keep = [35, 37, 39]  # in the top slots: they move when the arrays shrink
        before = {i: pool.get_state(i) for i in keep}
        for i in range(40):
            if i not in keep:
                pool.close(i)
        assert pool.capacity == 8
        for i in range(40, 45):  # the 5 free slots take 5 new streams: no growth, no kept slot reused
            pool.open(i)
            assert not any(v.any() for v in pool.get_state(i).values())
        assert pool.capacity == 8
        for i in keep:
            for k, v in pool.get_state(i).items():
                np.testing.assert_array_equal(v, before[i][k])
        ys = pool.step_many({i: xs[i % 6, 1] for i in keep})
        for i in keep:
            np.testing.assert_allclose(ys[i], solo[i % 6][1], atol=1e-5)
        pool.open(45)  # a sixth: the arrays grow again
        assert pool.capacity == 16


# -- lifecycle ------------------------------------------------------------------------------
def test_close_releases_the_session_thread_and_buffers_and_fails_queued_steps(lstm):
    path, xs, _ = lstm
    before = threading.enumerate()
    tracemalloc.start()  # numpy's allocations are traced: the slot arrays are 1 MiB of them
    try:
        pool = StreamPool(path, max_wait_ms=1000, capacity=4096)
        pool.open("a")
        pool.open("b")
        session = weakref.ref(pool.backend.session)
        make_batcher_wait(pool, xs[:2, 0], ["a", "b"])
        queued = pool.submit("a", xs[0, 1])  # waits for company
        (thread,) = started_threads(before, "rnnx-batcher")
        slot_bytes = 2 * pool.capacity * sum(v.nbytes for v in pool.get_state("a").values())  # 2 sets
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        pool.close()
        with pytest.raises(ClosedError, match="closed before this step ran"):
            queued.result(timeout=WAIT)
        gc.collect()
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert not thread.is_alive()
    assert freed >= slot_bytes, (freed, slot_bytes)  # the pool object lives on, its buffers do not
    assert pool.backend.session is None and pool.capacity == 0
    assert session() is None
    pool.close()  # idempotent
    with pytest.raises(ClosedError, match="StreamPool is closed"):
        pool.step_many({"a": xs[0, 0]})
    with pytest.raises(ClosedError, match="StreamPool is closed"):
        pool.open("b")


def test_a_pool_dropped_unclosed_is_cleaned_up_with_a_resource_warning(lstm):
    path, xs, _ = lstm
    pool = StreamPool(path)
    pool.open("a")
    before = threading.enumerate()
    pool.submit("a", xs[0, 0]).result(timeout=WAIT)
    (thread,), session = started_threads(before, "rnnx-batcher"), weakref.ref(pool.backend.session)
    with pytest.warns(ResourceWarning, match="unclosed StreamPool"):
        del pool
        gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive()
    gc.collect()
    assert session() is None


def test_close_from_a_done_callback_does_not_deadlock(lstm):
    path, xs, solo = lstm
    before = threading.enumerate()
    pool = StreamPool(path)
    pool.open("a")
    pool.open("b")
    closed = threading.Event()

    def close_stream_then_pool(fut) -> None:
        pool.close("b")
        pool.close()
        closed.set()

    fut = pool.submit("a", xs[0, 0])
    fut.add_done_callback(close_stream_then_pool)
    assert closed.wait(WAIT), "close() from a done-callback deadlocked"
    np.testing.assert_allclose(fut.result(timeout=WAIT), solo[0][0], atol=1e-5)
    for thread in started_threads(before, "rnnx-batcher"):
        thread.join(WAIT)
        assert not thread.is_alive()


def test_submit_many_matches_solo_and_queues_nothing_on_error(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        for i in range(6):
            pool.open(i)
        with pytest.raises(UnknownStreamError, match="stream 9: not open"):
            pool.submit_many({0: xs[0, 0], 9: xs[0, 0]})
        with pytest.raises(ShapeError, match=r"stream 1: x: expected shape"):
            pool.submit_many({0: xs[0, 0], 1: xs[1, 0, :3]})
        assert pool.pending == 0
        got = [[f.result(timeout=WAIT) for f in pool.submit_many({i: xs[i, t] for i in range(6)})] for t in range(8)]
    np.testing.assert_allclose(np.stack(got, axis=1), np.stack(solo), atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [dict(max_batch=6, max_wait_ms=5), dict(max_pending=2, max_wait_ms=1)],
    ids=["batched", "asubmit-awaits-room-under-max-pending"],
)
def test_many_asyncio_clients_match_solo_sessions(lstm, options):
    """Closed-loop asyncio clients, one stream each: results come back in one hand-off per batch."""
    path, xs, solo = lstm

    async def client(pool: StreamPool, i: int) -> np.ndarray:
        return np.stack([await pool.asubmit(i, xs[i, t]) for t in range(8)])

    async def main(pool: StreamPool) -> list:
        return await asyncio.wait_for(asyncio.gather(*(client(pool, i) for i in range(6))), WAIT)

    with StreamPool(path, **options) as pool:
        for i in range(6):
            pool.open(i)
        got = asyncio.run(main(pool))
    np.testing.assert_allclose(np.stack(got), np.stack(solo), atol=1e-5)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            np.zeros(4, np.float32),
            ShapeError,
            r"stream 'a': x: expected shape \(5,\) per stream \(without the batch axis\), got \(4,\)",
        ),
        (np.zeros(5, np.int64), DTypeError, r"stream 'a': x: expected dtype float32, got int64"),
    ],
    ids=["same-wrong-shape", "same-int-dtype"],
)
def test_step_many_fast_path_validates_uniform_bad_inputs(lstm, bad, error, match):
    """Mutation caught: ``_fast_batch`` returning ``np.array(values)`` without ``check_input``.

    Every stream gets the same wrong input, so stacking succeeds and only validation stops it.
    """
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        pool.open("b")
        with pytest.raises(error, match=match):
            pool.step_many({"a": bad, "b": bad.copy()})
        assert not pool.get_state("a")["h"].any() and not pool.get_state("b")["h"].any()


# -- check_finite ---------------------------------------------------------------------------
def test_check_finite_raise_fails_only_the_nan_stream_and_keeps_its_state(lstm):
    path, xs, solo = lstm
    nan = np.full(5, np.nan, np.float32)
    with StreamPool(path, check_finite="raise", max_wait_ms=50) as pool:
        assert pool.options.check_finite == "raise"
        for i in "abc":
            pool.open(i)
        good_a, bad, good_c = pool.submit_many({"a": xs[0, 0], "b": nan, "c": xs[2, 0]})
        with pytest.raises(NonFiniteError, match=r"stream 'b': x: expected finite values in the input"):
            bad.result(timeout=WAIT)
        np.testing.assert_allclose(good_a.result(timeout=WAIT), solo[0][0], atol=1e-5)
        np.testing.assert_allclose(good_c.result(timeout=WAIT), solo[2][0], atol=1e-5)
        with pytest.raises(NonFiniteError, match=r"stream 'b': x: expected finite values in the input"):
            pool.step_many({"a": xs[0, 1], "b": nan})
        assert not pool.get_state("b")["h"].any()
        np.testing.assert_allclose(pool.step_many({"a": xs[0, 1]})["a"], solo[0][1], atol=1e-5)


def test_check_finite_raise_on_a_nan_output_restores_the_state(lstm):
    """A NaN that reaches the output (here through the state) is caught after the step and undone."""
    path, xs, solo = lstm
    with StreamPool(path, check_finite="raise") as pool:
        pool.open("a")
        pool.open("b")
        pool.step_many({"a": xs[0, 0], "b": xs[1, 0]})
        state = pool.get_state("b")
        poisoned = {k: np.full_like(v, np.nan) for k, v in state.items()}
        pool.set_state("b", poisoned)
        with pytest.raises(NonFiniteError, match=r"stream 'b': y: expected finite values in the output"):
            pool.step_many({"a": xs[0, 1], "b": xs[1, 1]})
        assert np.isnan(pool.get_state("b")["h"]).all()  # unchanged, not half-stepped
        bad = pool.submit("b", xs[1, 1])
        good = pool.submit("a", xs[0, 1])
        with pytest.raises(NonFiniteError, match="stream 'b': y: expected finite values in the output"):
            bad.result(timeout=WAIT)
        np.testing.assert_allclose(good.result(timeout=WAIT), solo[0][1], atol=1e-5)
        assert np.isnan(pool.get_state("b")["h"]).all()


def test_check_finite_warn_warns_and_runs(lstm):
    path, xs, _ = lstm
    with StreamPool(path, check_finite="warn") as pool:
        pool.open("a")
        with pytest.warns(RuntimeWarning, match="stream 'a': x: expected finite values in the input"):
            pool.step_many({"a": np.full(5, np.nan, np.float32)})


@pytest.fixture(scope="module")
def time_major(tmp_path_factory):
    """A GRU file kept time-major: input (time, batch, F), output (time, batch, OUT)."""
    import torch

    from rnnx.exporter import make_stateful
    from tests.foreign import FEATURES, PlainRNN, export_plain

    tmp = tmp_path_factory.mktemp("time-major")
    model = PlainRNN("gru", batch_first=False)
    src = export_plain(model, (torch.zeros(5, 2, FEATURES),), tmp / "tm.onnx", dynamo=False)
    path = make_stateful(src, tmp / "s.onnx", batch_first=False).path
    x = np.random.default_rng(0).standard_normal((4, 3, FEATURES)).astype(np.float32)  # (T, B, F)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()  # (T, B, OUT)
    return path, x, want


def test_a_time_major_file_streams_through_every_pool_path(time_major):
    """batch_axis 1, time_axis 0: a step is (F,) per stream, (B, F) stacked, like any other file."""
    path, x, want = time_major
    with (
        StreamPool(path, capacity=3) as many,
        StreamPool(path, capacity=3) as batch,
        StreamPool(path, capacity=3) as queued,
    ):
        for pool in (many, batch, queued):
            for i in range(3):
                pool.open(i)
        for t in range(len(x)):
            ys = many.step_many({i: x[t, i] for i in range(3)})
            np.testing.assert_allclose(ys.array, want[t], atol=1e-5)  # (B, OUT)
            np.testing.assert_allclose(ys[1], want[t, 1], atol=1e-5)
            np.testing.assert_allclose(batch.step_batch([2, 0], x[t, [2, 0]]).array, want[t, [2, 0]], atol=1e-5)
            batch.step_batch([1], x[t, [1]])
            futs = queued.submit_many({i: x[t, i] for i in range(3)})
            np.testing.assert_allclose([f.result(timeout=60) for f in futs], want[t], atol=1e-5)


def test_a_nan_output_in_one_stream_rolls_back_only_that_stream(lstm):
    """Mutation caught: on a NaN output, every stream of the batch got its state back (the
    healthy stream's output was right, its state silently one step behind)."""
    path, xs, solo = lstm
    with StreamPool(path, check_finite="raise", max_wait_ms=50) as pool:
        pool.open("a")
        pool.open("b")
        pool.step_many({"a": xs[0, 0], "b": xs[1, 0]})
        pool.set_state("b", {k: np.full_like(v, np.nan) for k, v in pool.get_state("b").items()})
        bad, good = pool.submit_many({"b": xs[1, 1], "a": xs[0, 1]})
        with pytest.raises(NonFiniteError, match="stream 'b': y: expected finite values in the output"):
            bad.result(timeout=WAIT)
        np.testing.assert_allclose(good.result(timeout=WAIT), solo[0][1], atol=1e-5)
        np.testing.assert_allclose(pool.step_many({"a": xs[0, 2]})["a"], solo[0][2], atol=1e-5)  # state advanced


def test_a_wrong_step_shape_is_said_per_stream_as_given(lstm, tokens):
    path, xs, _ = lstm
    features = xs.shape[-1]
    with StreamPool(path) as pool:
        pool.open("a")
        bad = np.zeros(features - 1, np.float32)  # one feature short, no batch axis (as submitted)
        match = (
            rf"stream 'a': x: expected shape \({features},\) per stream \(without the batch axis\), "
            rf"got \({features - 1},\)$"
        )
        with pytest.raises(ShapeError, match=match):
            pool.submit("a", bad).result(timeout=WAIT)
        with pytest.raises(ShapeError, match=match):
            pool.step_many({"a": bad})
    token_path, _, _ = tokens
    with StreamPool(token_path) as pool:
        pool.open("t")
        with pytest.raises(
            ShapeError,
            match=r"stream 't': x: expected shape \(\) per stream \(one token id\), "
            r"got \(1,\)$",
        ):
            pool.step_many({"t": np.array([1])})


def test_a_ragged_nested_list_is_a_shape_error_naming_the_input(lstm):
    """numpy's own ValueError ("inhomogeneous shape") escaped submit, step_many and step_batch."""
    path, xs, _ = lstm
    ragged = [[0.0] * xs.shape[-1], [0.0]]
    with StreamPool(path) as pool:
        pool.open("a")
        with pytest.raises(ShapeError, match=r"stream 'a': x: expected an array, got a ragged nested sequence"):
            pool.submit("a", ragged).result(timeout=WAIT)
        with pytest.raises(ShapeError, match=r"stream 'a': x: expected an array, got a ragged nested sequence"):
            pool.step_many({"a": ragged})
        with pytest.raises(ShapeError, match=r"x: expected an array, got a ragged nested sequence"):
            pool.step_batch(["a"], [ragged])
        assert not pool.get_state("a")["h"].any()  # nothing ran


def test_closing_a_stream_gives_back_the_room_its_queued_steps_held(lstm):
    """Mutation caught: close(stream) failed its queued steps but left them counted in
    ``pending``: the pool filled up with steps that no longer existed."""
    path, xs, _ = lstm
    with StreamPool(path, max_pending=8, max_wait_ms=200) as pool:
        pool.open("a")
        pool.open("b")
        futs = [pool.submit("a", xs[0, t % 8]) for t in range(8)]  # one stream: one step per batch
        pool.close("a")
        assert pool.pending == 0
        for f in futs:  # each either ran or failed because its stream closed
            try:
                f.result(timeout=WAIT)
            except UnknownStreamError as e:
                assert "closed before this step ran" in str(e)
        more = [pool.submit("b", xs[1, t % 8], timeout=5) for t in range(8)]  # the full room again
        assert len([f.result(timeout=WAIT) for f in more]) == 8


def test_a_stream_closed_after_its_batch_was_taken_does_not_step(lstm):
    """Mutation caught: a step whose stream closed between the batcher taking the batch and
    running it still ran (on a slot already given back). The close happens in a done-callback
    of the batch's other step, which check_finite fails before the batch runs."""
    path, xs, _ = lstm
    with StreamPool(path, check_finite="raise", max_wait_ms=500) as pool:
        for i in "abc":
            pool.open(i)
        for f in pool.submit_many({i: xs[k, 0] for k, i in enumerate("abc")}):  # the batcher now waits for 3
            f.result(timeout=WAIT)
        bad, good = pool.submit_many({"b": np.full(5, np.nan, np.float32), "a": xs[0, 1]})
        bad.add_done_callback(lambda _: pool.close("a"))
        with pytest.raises(NonFiniteError):
            bad.result(timeout=WAIT)
        with pytest.raises(UnknownStreamError, match="stream 'a': closed before this step ran"):
            good.result(timeout=WAIT)
