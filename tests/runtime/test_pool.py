"""StreamPool: batched steps equal solo sessions, slots, batcher, errors."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.runtime.conftest import FOREIGN_K, FOREIGN_N, sequence
from rnnx.errors import (DTypeError, DuplicateStreamError, NotStreamableError, ShapeError, StateError, StreamExistsError,
                         UnknownStreamError)
from rnnx.runtime import StreamingSession, StreamPool


def solo_outputs(path, xs: np.ndarray, **kw) -> np.ndarray:
    """Outputs of a batch-1 session stepping through xs (T, F...)."""
    sess = StreamingSession(path, **kw)
    return np.stack([sess.step(x[None])[0] for x in xs])


@pytest.fixture(scope="module")
def lstm(exported):
    path, model = exported("lstm-2l")
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
        assert pool.step_many({}) == {}
    with StreamPool(path, capacity=2) as pool:
        for i in range(6):
            pool.open(i)
        got = np.stack([np.stack(list(pool.step_many({i: xs[i, t] for i in range(6)}).values()))
                        for t in range(8)], axis=1)  # (6, T, out)
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
            ys = pool.step_many({i: xs[i, steps[i]] for i in group})
            for i in group:
                np.testing.assert_allclose(ys[i], solo[i][steps[i]], atol=1e-5)
                steps[i] += 1


def test_closed_slots_are_reused_with_zero_state(lstm):
    path, xs, solo = lstm
    with StreamPool(path, capacity=2) as pool:
        pool.open("a"); pool.open("b")
        pool.step_many({"a": xs[0, 0], "b": xs[1, 0]})
        pool.close("a")
        pool.open("c")  # takes a's slot
        assert pool._slots.capacity == 2 and sorted(map(str, pool.streams)) == ["b", "c"]
        y = pool.step_many({"c": xs[2, 0]})["c"]
        np.testing.assert_allclose(y, solo[2][0], atol=1e-5)


def test_reset_get_and_set_state_per_stream(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        pool.open("a"); pool.open("b")
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
        for call in (lambda: pool.close("z"), lambda: pool.reset("z"), lambda: pool.get_state("z"),
                     lambda: pool.set_state("z", {}), lambda: pool.step_many({"z": xs[0, 0]})):
            with pytest.raises(UnknownStreamError, match="stream 'z': not open"):
                call()
        with pytest.raises(KeyError):
            pool.reset(["unhashable"])


def test_bad_input_in_step_many_changes_nothing(lstm):
    path, xs, solo = lstm
    with StreamPool(path) as pool:
        pool.open("a"); pool.open("b")
        with pytest.raises(ShapeError, match=r"stream 'b': x: expected shape \(1, 5\) \(batch, features\), got \(1, 4\)"):
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
        pool.open("a"); pool.open("b")
        futs = [pool.submit("a", xs[0, t]) for t in range(8)] + [pool.submit("b", xs[1, 0])]
        got = np.stack([f.result(timeout=30) for f in futs[:8]])
        np.testing.assert_allclose(got, solo[0], atol=1e-5)
        np.testing.assert_allclose(futs[8].result(timeout=30), solo[1][0], atol=1e-5)


def test_bad_submission_fails_only_its_future(lstm):
    path, xs, solo = lstm
    with StreamPool(path, max_wait_ms=20.0) as pool:
        pool.open("a"); pool.open("b")
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
    pool = StreamPool(path)
    pool.open("a")
    pool.submit("a", xs[0, 0]).result(timeout=30)
    thread = pool._batcher._thread
    pool.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="StreamPool is closed"):
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


def test_not_streamable_models_are_refused(exported):
    path, _ = exported("gru-bi")
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


@pytest.mark.parametrize("ids, x, error, match", [
    ([0, 1, 0], np.zeros((3, 5), np.float32), DuplicateStreamError, r"ids: expected distinct stream ids, got 0 more than once"),
    ([0, 9], np.zeros((2, 5), np.float32), UnknownStreamError, r"stream 9: not open"),
    ([0, 1], np.zeros((3, 5), np.float32), ShapeError, r"x: expected shape \(2, 5\) \(batch, features\), got \(3, 5\)"),
    ([0, 1], np.zeros((2, 5), np.int64), DTypeError, r"x: expected dtype float32, got int64"),
], ids=["duplicate", "unknown", "rows", "dtype"])
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
