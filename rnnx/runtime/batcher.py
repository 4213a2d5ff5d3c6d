"""Background micro-batcher for StreamPool: per-stream FIFOs, one worker thread.

Each open stream has a :class:`StreamQueue`: its slot and the FIFO of its queued steps.
A stream with queued steps sits in the *ready line* exactly once, so a batch takes at
most one step per stream (steps of one stream run in submission order, in successive
batches) and forming a batch costs O(batch), never a rescan of what is queued: a
stream with a backlog of 16k steps is drained in linear time.

The worker waits for company until as many streams are ready as the last batch had
(so one lone client is served at once, and 256 closed-loop clients are batched together),
at most ``max_wait`` seconds after the oldest ready step arrived; steps left over from a
full batch run at once. When at least twice as many streams are ready as the last batch
had (and at least ``2 * SPLIT_MIN``), it takes only half of them: the clients of one half
then do their Python work while onnxruntime (which releases the GIL) runs the other half,
and closed-loop clients settle into two groups that overlap. That only pays when a
second core is free: halves cost one more onnxruntime call per round and a gather and
scatter of their states. So the worker watches the process's CPU time against the wall
clock while it splits (:class:`SplitProbe`): when the two barely run at once (a machine
busy with other work), it stops splitting for a while, then tries again.

Results go back in one hand-off per batch and event loop (``loop.call_soon_threadsafe``
once), not one per step. The woken event loop takes the GIL at the first chance and keeps
it while it runs every resumed client (hundreds of microseconds), and the worker gives it
that chance often before its next onnxruntime call: the self-pipe write, and numpy's
gathers and copies, release the GIL. So the worker *holds* a batch's asyncio results and
releases them (:meth:`Handoff.flush`) right before the next onnxruntime call, or before
it waits for work; a small *hand-off thread* makes the ``call_soon_threadsafe`` calls,
and the event loop runs its clients while onnxruntime runs the next batch. Plain futures
(``submit``) are resolved by the worker itself, outside every lock, after each batch.

The worker holds this queue and only a *weak* reference to the pool, so a pool dropped
without ``close()`` is collected; its finalizer shuts the queue down. Any exception
escaping the worker fails every pending step with :class:`~rnnx.errors.ClosedError`
(chained to the cause) and the pool refuses new work; it never dies silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import InvalidStateError
from typing import Any

import numpy as np

from rnnx.errors import ClosedError, PoolFullError, UnknownStreamError

logger = logging.getLogger(__name__)

Item = tuple  # (x: one validated step without the batch axis, future, event loop of an asyncio future or None)
Batch = tuple[list, list, list, list]  # (stream queues, inputs, futures, loops), one entry per step
_IDLE, _FILLING = 1, 2  # what the worker is waiting for: any step / more company or a deadline
SPLIT_MIN = 16  # a batch is only split in two when each half has at least this many streams
HANDOFF_MIN = 32  # results of fewer steps than this go to their event loop straight from the worker
PROBE_S = 0.25  # seconds of splitting over which the overlap is judged
PAUSE_S = 5.0  # seconds without splitting after a probe found no overlap
MIN_OVERLAP = 1.1  # process CPU seconds per wall second that splitting must reach to go on


class StreamQueue:
    """One open stream as the batcher sees it. A reopened id gets a new one (a new generation)."""

    __slots__ = ("id", "slot", "items", "open")

    def __init__(self, stream_id: Any, slot: int) -> None:
        self.id, self.slot = stream_id, slot
        self.items: deque[Item] = deque()  # queued steps, oldest first
        self.open = True  # False once closed: its steps can never run on a reopened id


# -- handing results back ------------------------------------------------------------------
def _settle(futs: list, ys: Iterable) -> None:
    """Resolve asyncio futures in their own loop (``ys``: results, or exceptions to set)."""
    if isinstance(ys, np.ndarray):  # a batch's outputs, row k for future k
        for fut, y in zip(futs, ys):
            try:
                fut.set_result(y)
            except asyncio.InvalidStateError:  # cancelled by its awaiter meanwhile
                pass
        return
    for fut, y in zip(futs, ys):
        if not fut.done():  # cancelled by its awaiter meanwhile
            if isinstance(y, BaseException):
                fut.set_exception(y)
            else:
                fut.set_result(y)


def _set(fut: Any, y: Any) -> None:
    """Resolve one plain (``concurrent.futures``) future."""
    try:
        if isinstance(y, BaseException):
            fut.set_exception(y)
        else:
            fut.set_result(y)
    except InvalidStateError:  # cancelled (or already failed) meanwhile
        pass


def _call_in(loop: asyncio.AbstractEventLoop, fn: Callable, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody is left awaiting these futures
        pass


Caller = Callable[..., None]  # (loop, fn, *args): runs fn(*args) in the event loop soon


def resolve(futs: list, loops: list, ys: Any, call: Caller = _call_in) -> None:
    """Hand a batch's results (a sequence, row k for step k) to their futures.

    Plain futures are resolved here; asyncio futures in one ``call(loop, _settle, ...)``
    per event loop (``call``: :func:`_call_in`, or a :class:`Handoff`'s ``call``).
    """
    first = loops[0]
    if first is not None and loops.count(first) == len(loops):  # the common case: one event loop
        call(first, _settle, futs, ys)
        return
    if first is None and loops.count(None) == len(loops):  # only plain futures
        for fut, y in zip(futs, ys):
            _set(fut, y)
        return
    by_loop: dict[Any, tuple[list, list]] = {}
    for fut, loop, y in zip(futs, loops, ys):
        if loop is None:
            _set(fut, y)
        else:
            pair = by_loop.setdefault(loop, ([], []))
            pair[0].append(fut)
            pair[1].append(y)
    for loop, (fs, vs) in by_loop.items():
        call(loop, _settle, fs, vs)


def fail(futs: Iterable, loops: Iterable, error: BaseException, call: Caller = _call_in) -> None:
    """Fail futures of either kind with ``error`` (``call``: as in :func:`resolve`)."""
    futs, loops = list(futs), list(loops)
    if futs:
        resolve(futs, loops, [error] * len(futs), call)


class Handoff:
    """The worker's ``call_soon_threadsafe`` calls: held, then made by a thread (see the module docstring).

    :meth:`call` holds a call; :meth:`flush` passes the held calls to the thread (started
    on first use), which makes them once it gets the GIL; :meth:`stop` flushes, lets the
    thread make every call and ends it. Only the worker thread calls these.
    """

    def __init__(self) -> None:
        self.held: list[tuple] = []  # (loop, fn, args) not yet passed to the thread
        self.flushes = 0  # flush() calls so far (one per onnxruntime call of the batcher)
        self._flushes_at_tick = 0
        self.jobs: queue.SimpleQueue[list | None] = queue.SimpleQueue()  # C queue: put() keeps the GIL
        self.thread: threading.Thread | None = None

    def call(self, loop: asyncio.AbstractEventLoop, fn: Callable, *args: Any) -> None:
        """Hold ``loop.call_soon_threadsafe(fn, *args)`` until the next :meth:`flush`."""
        self.held.append((loop, fn, args))

    def flush(self) -> None:
        """Pass the held calls to the hand-off thread (make them here when they resolve few steps).

        A small batch's clients keep the event loop only briefly, and one thread switch
        less per batch is what a lightly loaded server's latency is made of.
        """
        self.flushes += 1
        if self.held:
            if sum(len(args[0]) for _, _, args in self.held) < HANDOFF_MIN:
                held, self.held = self.held, []
                for loop, fn, args in held:
                    _call_in(loop, fn, *args)
                return
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rnnx-handoff", daemon=True)
                self.thread.start()
            held, self.held = self.held, []
            self.jobs.put(held)

    def tick(self) -> None:
        """Called as each batch is taken: calls held through a whole batch that never reached
        onnxruntime (every step of it refused beforehand) are flushed now, not held longer."""
        if self.held and self.flushes == self._flushes_at_tick:
            self.flush()
        self._flushes_at_tick = self.flushes

    def stop(self, timeout: float = 30.0) -> None:
        """Make every held call, then end the thread (waits up to ``timeout`` s)."""
        self.flush()
        t = self.thread
        if t is not None:
            self.jobs.put(None)
            if t is not threading.current_thread():
                t.join(timeout)

    def _run(self) -> None:
        jobs = self.jobs
        while True:
            batch = jobs.get()
            if batch is None:
                return
            for loop, fn, args in batch:
                try:
                    _call_in(loop, fn, *args)
                except Exception:  # noqa: BLE001 - never die: the futures of later calls must still resolve
                    logger.exception("StreamPool hand-off to an event loop failed")
            del batch


class SplitProbe:
    """Whether the batcher splits batches now: on while the process runs on two cores at once.

    Every :data:`PROBE_S` seconds while on and the clients run in halves, the process's
    CPU time is compared with the wall time; below :data:`MIN_OVERLAP` (no second core to
    overlap with) splitting turns off for :data:`PAUSE_S` seconds, then on again to try.
    Batches that were never split (a lone client, light traffic) are never judged.
    """

    def __init__(
        self, wall: Callable[[], float] = time.monotonic, cpu: Callable[[], float] = time.process_time
    ) -> None:
        self.wall, self.cpu = wall, cpu  # clocks (injectable for tests)
        self.on = True
        self._t0, self._cpu0 = wall(), cpu()

    def update(self, halved: bool) -> bool | None:
        """Called by the worker after each batch: True/False when splitting turns on/off, else None.

        ``halved``: whether the clients run in halves (a split happened since the last merge).
        """
        now = self.wall()
        if self.on and not halved:  # nothing to judge: the window starts with the first split
            self._t0, self._cpu0 = now, self.cpu()
            return None
        if now - self._t0 < (PROBE_S if self.on else PAUSE_S):
            return None
        cpu = self.cpu()
        on = not self.on or (cpu - self._cpu0) / (now - self._t0) >= MIN_OVERLAP
        changed = on != self.on
        self.on, self._t0, self._cpu0 = on, now, cpu
        return on if changed else None


# -- the queue ---------------------------------------------------------------------------------
class WorkQueue:
    """The per-stream FIFOs, the ready line, limits, and the worker thread's lifecycle."""

    def __init__(self, pool_ref: weakref.ref[Any], max_batch: int, max_wait_s: float, max_pending: int) -> None:
        self.pool_ref = pool_ref  # the worker's only link to the pool: weak
        self.max_batch, self.max_wait_s, self.max_pending = max_batch, max_wait_s, max_pending
        self._new_locks()
        self.ready: deque[StreamQueue] = deque()  # streams with queued steps, each at most once
        self.pending = 0  # queued steps (not yet taken into a batch)
        self.since = 0.0  # monotonic time the oldest ready step has been waiting since
        self.waiting = 0  # _IDLE / _FILLING while the worker waits, else 0
        self.target = 1  # streams a batch waits for: as many as the last batch had (adapts to load)
        self.probe = SplitProbe()  # whether to split batches in two halves now
        self.halved = False  # a batch was split since the halves were last merged
        self.space_waiters: deque = deque()  # asyncio futures of asubmit calls waiting for room
        self.refusal: str | None = None  # set once the queue takes no more work: why
        self.cause: BaseException | None = None  # what killed the worker, if something did
        self.thread: threading.Thread | None = None
        self.handoff = Handoff()  # makes the worker's call_soon_threadsafe calls
        _LIVE.add(self)

    def _new_locks(self) -> None:
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # the worker waits here
        self.space = threading.Condition(self.lock)  # blocked submit() calls wait here

    # -- worker side: results ------------------------------------------------------------
    def resolve(self, futs: list, loops: list, ys: Any) -> None:
        """:func:`resolve` from the worker: asyncio futures through the hand-off thread."""
        resolve(futs, loops, ys, self.handoff.call)

    def fail(self, futs: list, loops: list, error: BaseException) -> None:
        """:func:`fail` from the worker: asyncio futures through the hand-off thread."""
        fail(futs, loops, error, self.handoff.call)

    # -- submitting side --------------------------------------------------------------
    def refused(self) -> ClosedError:
        err = ClosedError(self.refusal or "StreamPool is closed")
        err.__cause__ = self.cause
        return err

    def put(self, sq: StreamQueue, item: Item, timeout: float | None) -> None:
        """Queue one step; blocks while ``max_pending`` steps are queued (up to ``timeout`` s).

        Raises:
            ClosedError, UnknownStreamError, PoolFullError.
        """
        with self.lock:
            if self.pending >= self.max_pending:
                self._wait_for_room(timeout)
            self._append(sq, item)

    def put_many(self, sqs: list[StreamQueue], items: list[Item]) -> None:
        """Queue several steps at once (never blocks: raises PoolFullError if they do not fit)."""
        with self.lock:
            if self.pending + len(items) > self.max_pending:
                self._check_open()
                raise PoolFullError(
                    f"max_pending: {self.pending} steps queued, {len(items)} more do not fit "
                    f"under the limit of {self.max_pending}"
                )
            self._check_open()
            closed = next((sq for sq in sqs if not sq.open), None)
            if closed is not None:  # closed since it was looked up: queue none of them
                raise UnknownStreamError(f"stream {closed.id!r}: not open (closed)")
            for sq, item in zip(sqs, items):
                self._append(sq, item)

    def try_put(self, sq: StreamQueue, item: Item, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """Queue one step, or return a future that is done when there may be room."""
        with self.lock:
            if self.pending >= self.max_pending:
                self._check_open()
                waiter = loop.create_future()
                self.space_waiters.append((loop, waiter))
                return waiter
            self._append(sq, item)
            return None

    def _check_open(self) -> None:
        if self.refusal is not None:
            raise self.refused()

    def _wait_for_room(self, timeout: float | None) -> None:
        if self.thread is threading.current_thread():
            raise PoolFullError(
                f"max_pending: {self.pending} steps queued (the limit); a done-callback "
                f"cannot wait for room, it would block the batcher itself"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending >= self.max_pending:
            self._check_open()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise PoolFullError(
                    f"max_pending: {self.pending} steps queued (the limit) for "
                    f"{timeout} s; submit fewer, or raise max_pending"
                )
            self.space.wait(left)

    def _append(self, sq: StreamQueue, item: Item) -> None:
        if self.refusal is not None:
            raise self.refused()
        if not sq.open:
            raise UnknownStreamError(f"stream {sq.id!r}: not open (closed)")
        if self.thread is None:  # started on first use, under the lock
            self.thread = threading.Thread(target=_work, args=(self,), name="rnnx-batcher", daemon=True)
            self.thread.start()
        sq.items.append(item)
        self.pending += 1
        if len(sq.items) == 1:
            ready = self.ready
            if not ready:
                self.since = time.monotonic()
            ready.append(sq)
            if self.waiting == _IDLE or (self.waiting == _FILLING and len(ready) >= self.target):
                self.waiting = 0  # one wake-up is enough
                self.work.notify()

    def close_stream(self, sq: StreamQueue) -> tuple[list, list]:
        """Mark a stream closed; returns its queued steps' (futures, loops) for the caller to fail."""
        with self.lock:
            sq.open = False
            items, sq.items = sq.items, deque()
            self.pending -= len(items)
            self._wake_space()
        return [it[1] for it in items], [it[2] for it in items]

    def shutdown(self, reason: str, cause: BaseException | None = None) -> tuple[list, list]:
        """Refuse new work from now on; returns every queued step's (futures, loops)."""
        with self.lock:
            if self.refusal is None:
                self.refusal, self.cause = reason, cause
            futs, loops = [], []
            for sq in self.ready:
                for _, fut, loop in sq.items:
                    futs.append(fut)
                    loops.append(loop)
                sq.items = deque()
            self.ready.clear()
            self.pending = 0
            self.work.notify_all()
            self.space.notify_all()
            waiters, self.space_waiters = self.space_waiters, deque()
        for loop, w in waiters:
            _call_in(loop, _release, w)
        return futs, loops

    def after_fork(self) -> None:
        """In a fork()ed child: fresh locks (the parent's may be held forever), no worker, no work."""
        self._new_locks()
        self.thread, self.waiting, self.pending = None, 0, 0
        self.ready, self.space_waiters = deque(), deque()
        self.handoff = Handoff()
        self.refusal = (
            f"StreamPool: process {os.getpid()} is a fork() of the process that made this pool; "
            f"its onnxruntime session and batcher thread do not survive fork(): create a new "
            f"StreamPool in the child (steps queued before the fork are answered in the parent)"
        )

    # -- worker side ----------------------------------------------------------------------
    def take(self) -> Batch | None:
        """Wait for and take the next batch; None once the queue is shut down.

        Held asyncio results are flushed before waiting (a due batch flushes them right
        before its onnxruntime call instead).
        """
        with self.lock:
            if (
                self.refusal is None
                and self.ready
                and (len(self.ready) >= self.target or self.since + self.max_wait_s <= time.monotonic())
            ):
                batch = self._take_ready()
                if batch[0]:
                    return batch
        self.handoff.flush()
        with self.lock:
            while True:
                if not self._wait_for_work():
                    return None
                batch = self._take_ready()
                if batch[0]:
                    return batch

    def _wait_for_work(self) -> bool:
        """Under ``lock``: wait until a batch is due (full, or the oldest step waited long enough)."""
        while True:
            if self.refusal is not None:
                return False
            ready = self.ready
            if not ready:
                self.waiting = _IDLE
                self.work.wait()
                self.waiting = 0
                continue
            if len(ready) >= self.target:
                return True
            left = self.since + self.max_wait_s - time.monotonic()
            if left <= 0:
                return True
            self.waiting = _FILLING
            self.work.wait(left)
            self.waiting = 0

    def _take_ready(self) -> Batch:
        """Under ``lock``: the next step of up to ``max_batch`` ready streams, in line order."""
        ready = self.ready
        limit = self.max_batch
        if self.probe.on and len(ready) >= 2 * max(self.target, SPLIT_MIN):  # room to overlap two halves
            self.halved = True
            limit = (len(ready) + 1) // 2
        taken = [ready.popleft() for _ in range(min(limit, len(ready)))]
        sqs = [sq for sq in taken if sq.items]  # one closed while in line has none: they were failed then
        items = [sq.items.popleft() for sq in sqs]
        ready.extend([sq for sq in sqs if sq.items])  # to the back of the line: every ready stream gets its turn
        self.target = max(1, len(sqs))
        self.pending -= len(sqs)
        self.since = float("-inf")  # what is left has waited long enough: run it next
        self._wake_space()
        xs, futs, loops = (list(col) for col in zip(*items)) if items else ([], [], [])
        return sqs, xs, futs, loops

    def _wake_space(self) -> None:
        """Under ``lock``: let blocked submitters retry once there is room."""
        if self.pending < self.max_pending:
            self.space.notify_all()
            while self.space_waiters:
                loop, w = self.space_waiters.popleft()
                _call_in(loop, _release, w)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _work(queue: WorkQueue) -> None:
    """The worker thread: take a batch, run it on the pool (if still alive), repeat."""
    batch: Batch | None = None
    try:
        while True:
            batch = queue.take()
            if batch is None:
                return
            queue.handoff.tick()
            pool = queue.pool_ref()
            if pool is None:  # collected between batches: its finalizer shuts the queue down
                queue.fail(batch[2], batch[3], ClosedError("StreamPool was garbage-collected"))
                return
            pool.run_queued(*batch)
            del pool  # hold the pool only while a batch runs
            batch = None
            turned = queue.probe.update(queue.halved)
            if turned is False:  # no second core: merge the halves (wait for both next time)
                with queue.lock:
                    queue.target, queue.halved = min(queue.max_batch, 2 * queue.target), False
    except BaseException as e:  # never die silently: fail everything, refuse new work
        logger.error("StreamPool batcher failed; the pool refuses new work", exc_info=True)
        futs, loops = queue.shutdown(
            f"StreamPool: the batcher thread failed ({type(e).__name__}: {e}); "
            f"the pool takes no more submissions, close it and open a new one",
            e,
        )
        if batch is not None:
            futs, loops = futs + list(batch[2]), loops + list(batch[3])
        queue.fail(futs, loops, queue.refused())
    finally:
        queue.handoff.stop()  # after the calls queued so far are made


_LIVE: weakref.WeakSet[WorkQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for q in list(_LIVE):
        q.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
