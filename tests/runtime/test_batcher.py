"""The pool's batcher: per-stream order, backlogs, generations, a failing worker, fork, options."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time

import numpy as np
import pytest

from rnnx.errors import ClosedError, ConfigError, UnknownStreamError
from rnnx.runtime import StreamingSession, StreamPool, batcher
from rnnx.runtime.batcher import MIN_OVERLAP, PAUSE_S, PROBE_S, SplitProbe
from tests.runtime.conftest import make_batcher_wait, sequence, started_threads

WAIT = 60  # seconds any single wait may take before the test fails instead of hanging


@pytest.fixture(scope="module")
def lstm(onnx_file):
    path, model = onnx_file("lstm-1l")
    return path, sequence(model, 3, 6)  # (3 streams, T, F)


def test_one_stream_with_a_deep_backlog_drains_in_order(lstm):
    """16k queued steps of one stream run in order, each once, equal to one call over the sequence.

    That it drains in linear time (the old batcher rescanned the backlog per batch: 37.7 s for
    16k) is measured by benchmarks/bench_batcher.py as a ratio, not asserted here.
    """
    path, xs = lstm
    steps = np.resize(xs[0], (16_384, xs.shape[-1]))  # (T, F)
    with StreamPool(path, max_wait_ms=0) as pool:
        pool.open("a")
        futs = [pool.submit("a", x) for x in steps]
        got = np.stack([f.result(timeout=WAIT) for f in futs])
    want = StreamingSession(path).feed(steps[None])[0]  # one call over the whole sequence
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_steps_queued_for_a_closed_stream_never_run_on_a_reopened_id(lstm):
    path, xs = lstm
    with StreamPool(path, max_batch=64, max_wait_ms=1000) as pool:
        pool.open("a")
        pool.open("b")
        make_batcher_wait(pool, xs[:2, 0], ["a", "b"])  # steps of "a" alone now wait for company
        stale = [pool.submit("a", xs[0, t]) for t in range(1, 4)]
        pool.close("a")
        pool.open("a")  # a new stream (generation) under the same id
        for f in stale:
            with pytest.raises(UnknownStreamError, match="stream 'a': closed before this step ran"):
                f.result(timeout=WAIT)
        assert not pool.get_state("a")["h"].any()  # none of them ran on the new stream
        y = pool.submit("a", xs[1, 0]).result(timeout=WAIT)
    np.testing.assert_allclose(y, StreamingSession(path).step(xs[1, :1])[0], atol=1e-5)


def test_a_future_cancelled_while_its_step_runs_cannot_hide_the_step(lstm):
    """Mutation caught: ``run_queued`` without ``claim`` (the futures' set_running_or_notify_cancel).

    A ``submit`` future cancelled after the batcher took its step used to report
    cancelled while the step still ran and advanced the stream's state. Now a taken step's
    future is running: ``cancel()`` returns False and the result arrives.

    The batcher is held inside the batch of "b" and "a" (steps run, results being handed
    over) by "b"'s done-callback, which runs in the batcher thread before "a"'s result is set.
    """
    path, xs = lstm
    with StreamPool(path, max_batch=64, max_wait_ms=1000) as pool:
        pool.open("a")
        pool.open("b")
        make_batcher_wait(pool, xs[:2, 0], ["a", "b"])  # a lone step now waits for company
        entered, gate = threading.Event(), threading.Event()

        def hold(_) -> None:  # only in the batcher thread: the hand-over of the batch's results
            if threading.current_thread() is not threading.main_thread():
                entered.set()
                gate.wait(WAIT)

        first = pool.submit("b", xs[1, 1])  # waits up to 1 s for "a"'s step
        first.add_done_callback(hold)
        fut = pool.submit("a", xs[0, 1])  # company: one batch, "b" first
        try:
            assert entered.wait(WAIT), "the batch of b and a was not held in the batcher"
            assert fut.running()
            assert not fut.cancel()
        finally:
            gate.set()
        y = fut.result(timeout=WAIT)
        first.result(timeout=WAIT)
    with StreamingSession(path) as solo:
        solo.step(xs[0, :1])
        np.testing.assert_allclose(y, solo.step(xs[0, 1:2])[0], atol=1e-5)  # the step ran, and its future says so


def test_a_future_cancelled_before_its_step_is_taken_never_runs(lstm):
    path, xs = lstm
    with StreamPool(path, max_batch=64, max_wait_ms=1000) as pool:
        pool.open("a")
        pool.open("b")
        make_batcher_wait(pool, xs[:2, 0], ["a", "b"])  # a lone step of "a" now waits for company
        before = pool.get_state("a")
        fut = pool.submit("a", xs[0, 1])
        assert fut.cancel()
        pool.submit("b", xs[1, 1]).result(timeout=WAIT)  # company: the batch is taken and runs
        np.testing.assert_array_equal(pool.get_state("a")["h"], before["h"])


def test_a_failing_batcher_fails_pending_steps_and_refuses_new_work(lstm, monkeypatch):
    """An exception escaping the worker must never leave futures hanging (fault injected)."""
    path, xs = lstm
    before = threading.enumerate()
    pool = StreamPool(path, max_wait_ms=50)
    pool.open("a")
    pool.open("b")
    pool.submit("a", xs[0, 0]).result(timeout=WAIT)  # the worker runs
    (thread,) = started_threads(before, "rnnx-batcher")

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(pool, "run_queued", broken)
    futs = [pool.submit("a", xs[0, 1]), pool.submit("a", xs[0, 2]), pool.submit("b", xs[1, 0])]
    for f in futs:  # the batch being run and the step still queued behind it
        with pytest.raises(ClosedError, match="the batcher thread failed \\(RuntimeError: boom\\)") as e:
            f.result(timeout=WAIT)
        assert isinstance(e.value.__cause__, RuntimeError)
    thread.join(WAIT)
    assert not thread.is_alive()
    with pytest.raises(ClosedError, match="batcher thread failed"):
        pool.submit("a", xs[0, 0])
    pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_gets_a_clear_error_and_the_parent_keeps_working(lstm):
    path, xs = lstm
    with StreamPool(path) as pool:
        pool.open("a")
        first = pool.submit("a", xs[0, 0]).result(timeout=WAIT)  # the batcher thread exists
        pid = os.fork()
        if pid == 0:  # the child: every call must fail fast and clearly, never hang
            code = 1
            try:
                try:
                    pool.submit("a", xs[0, 1]).result(timeout=5)
                except ClosedError as e:
                    code = 0 if "fork()" in str(e) else 3
                try:
                    pool.step_many({"a": xs[0, 1]})
                    code = 4
                except ClosedError:
                    pass
                pool.close()
            except BaseException:  # noqa: BLE001 - anything else is a failure, reported by exit code
                code = 2
            os._exit(code)
        deadline = time.monotonic() + WAIT
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        second = pool.submit("a", xs[0, 1]).result(timeout=WAIT)  # the parent's pool still works
    solo = StreamingSession(path)
    np.testing.assert_allclose([first, second], [solo.step(xs[0, :1])[0], solo.step(xs[0, 1:2])[0]], atol=1e-5)


@pytest.mark.parametrize(
    "option, value",
    [
        ("max_wait_ms", math.inf),
        ("max_wait_ms", math.nan),
        ("max_wait_ms", -1.0),
        ("max_wait_ms", 5_000),
        ("max_wait_ms", "2"),
        ("max_batch", 0),
        ("max_batch", -3),
        ("max_batch", 2.5),
        ("max_batch", True),
        ("max_batch", 10**6),
        ("max_pending", 0),
        ("max_streams", 0),
        ("capacity", 0),
    ],
    ids=[
        "wait-inf",
        "wait-nan",
        "wait-negative",
        "wait-huge",
        "wait-str",
        "batch-0",
        "batch-negative",
        "batch-float",
        "batch-bool",
        "batch-huge",
        "pending-0",
        "streams-0",
        "capacity-0",
    ],
)
def test_options_are_validated_and_bounded(lstm, option, value):
    path, _ = lstm
    with pytest.raises(ConfigError, match=f"{option}: expected"):
        StreamPool(path, **{option: value})


def test_a_lone_client_is_served_step_after_step(lstm):
    """One stream submitting one step at a time gets each result, equal to a session's steps.

    That it never waits max_wait_ms for company (the batcher waits for as many streams as its
    last batch had) is measured by benchmarks/bench_batcher.py, not asserted on the clock here.
    """
    path, xs = lstm
    with StreamPool(path, max_wait_ms=1000) as pool, StreamingSession(path) as solo:
        pool.open(0)
        for t in range(5):
            np.testing.assert_allclose(
                pool.submit(0, xs[0, t]).result(timeout=WAIT), solo.step(xs[0, t][None])[0], atol=1e-6
            )


def test_zero_wait_runs_at_once(lstm):
    path, xs = lstm
    with StreamPool(path, max_wait_ms=0) as pool:
        pool.open(0)
        y = pool.submit(0, xs[0, 0]).result(timeout=WAIT)
    np.testing.assert_allclose(y, StreamingSession(path).step(xs[0, :1])[0], atol=1e-5)


def test_worker_thread_does_not_keep_the_pool_alive(lstm):
    path, xs = lstm
    before = threading.enumerate()
    pool = StreamPool(path)
    pool.open("a")
    pool.submit("a", xs[0, 0]).result(timeout=WAIT)
    (thread,) = started_threads(before, "rnnx-batcher")
    assert thread.is_alive() and threading.active_count() >= 2
    pool.close()
    assert not thread.is_alive()


def test_a_burst_runs_in_two_overlapping_halves_and_the_hand_off_thread_ends_with_the_pool(lstm, monkeypatch):
    """40 ready streams (>= 2 * SPLIT_MIN): the batcher takes 20, then the other 20, so clients of one
    half work while onnxruntime runs the other; asyncio results of big batches (>= HANDOFF_MIN) go
    back through the hand-off thread, which ends with the pool."""
    path, xs = lstm
    monkeypatch.setattr(batcher, "PROBE_S", 1e9)  # splitting stays on whatever this machine's load
    before = threading.enumerate()
    with StreamPool(path, max_batch=64, max_wait_ms=0) as pool:
        for i in range(70):
            pool.open(i)
        pool.submit(0, xs[0, 0]).result(timeout=WAIT)  # the worker exists and idles
        sizes: list[int] = []
        run = pool.run_queued
        monkeypatch.setattr(pool, "run_queued", lambda sqs, *rest: (sizes.append(len(sqs)), run(sqs, *rest)))
        futs = pool.submit_many({i: xs[1, 0] for i in range(1, 40)} | {0: xs[0, 1]})  # queued under one lock
        got = [f.result(timeout=WAIT) for f in futs]
        assert sizes == [20, 20]

        async def main() -> list:  # 70 steps queued at once, run as 35 + 35: results via the hand-off thread
            return await asyncio.gather(*[pool.asubmit(i, xs[2, 0]) for i in range(70)])

        later = asyncio.run(main())
        (handoff,) = started_threads(before, "rnnx-handoff")
    assert not handoff.is_alive()
    solo = StreamingSession(path)
    np.testing.assert_allclose(got[:-1], np.repeat(solo.step(xs[1, :1]), 39, axis=0), atol=1e-5)
    solo.close()
    assert np.shape(later) == (70,) + np.shape(got[0])


def test_splitting_pauses_when_the_process_gets_no_second_core_and_retries_later():
    clock = {"wall": 0.0, "cpu": 0.0}
    probe = SplitProbe(wall=lambda: clock["wall"], cpu=lambda: clock["cpu"])
    clock["wall"] += 10 * PROBE_S  # a lone client, never split: nothing is judged
    assert probe.update(halved=False) is None and probe.on
    assert probe.update(halved=True) is None  # the first split starts the window
    clock["wall"] += PROBE_S
    clock["cpu"] += PROBE_S * (MIN_OVERLAP + 0.2)  # two cores at work: keep splitting
    assert probe.update(halved=True) is None and probe.on
    clock["wall"] += PROBE_S
    clock["cpu"] += PROBE_S * 1.0  # one core's worth: the halves cannot overlap
    assert probe.update(halved=True) is False and not probe.on
    clock["wall"] += PAUSE_S / 2
    assert probe.update(halved=False) is None and not probe.on  # paused
    clock["wall"] += PAUSE_S / 2
    assert probe.update(halved=False) is True and probe.on  # tried again


def test_results_held_through_a_batch_that_never_ran_are_handed_over_at_the_next_one():
    """A batch whose steps were all refused before onnxruntime does not flush: the next take must."""
    loop = asyncio.new_event_loop()
    futs = [loop.create_future() for _ in range(3)]
    handoff = batcher.Handoff()

    def settle(futs: list, ys: list) -> None:  # what the batcher hands over: results set in the loop
        for f, y in zip(futs, ys, strict=True):
            f.set_result(y)

    def done() -> list[bool]:
        loop.run_until_complete(asyncio.sleep(0))  # run the calls handed to the loop
        return [f.done() for f in futs]

    handoff.call(loop, settle, futs[:1], [0])  # batch 1's results, held
    handoff.tick()  # batch 2 taken, nothing flushed since batch 1 was: hand them over now
    assert done() == [True, False, False]
    handoff.call(loop, settle, futs[1:2], [1])
    handoff.flush()  # batch 3 reaches onnxruntime: flushed right before
    handoff.call(loop, settle, futs[2:], [2])
    handoff.tick()  # batch 4 taken right after a batch that ran: batch 3's results wait for its run
    assert done() == [True, True, False]
    handoff.tick()  # batch 4 never ran: now
    assert done() == [True, True, True] and [f.result() for f in futs] == [0, 1, 2]
    handoff.stop()
    loop.close()
