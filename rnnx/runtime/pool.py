"""StreamPool: many independent streams through one model, one onnxruntime call per batch."""

from __future__ import annotations

import asyncio
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from rnnx.checks import check_int, check_number
from rnnx.errors import (
    ClosedError,
    DuplicateStreamError,
    InputValueError,
    NonFiniteError,
    NotStreamableError,
    PoolFullError,
    RnnxError,
    ShapeError,
    StreamExistsError,
    UnknownStreamError,
)
from rnnx.runtime.backend import PathLike
from rnnx.runtime.batch_engine import BatchEngine
from rnnx.runtime.batcher import StreamQueue, WorkQueue, fail
from rnnx.runtime.contract import CONTEXT_KEY, ForeignModel, foreign_model, not_streamable_reason
from rnnx.runtime.options import RuntimeOptions, merge_options
from rnnx.runtime.providers import Providers
from rnnx.runtime.slots import SlotStore
from rnnx.runtime.step_graph import open_model_graphs
from rnnx.runtime.validate import as_array, check_input, check_state, token_ids_in_range

_ALL = object()
_dtype_of = attrgetter("dtype")
_is_open, _slot_of = attrgetter("open"), attrgetter("slot")

MAX_STREAMS = 65_536  # default limit on open streams
MAX_PENDING = 65_536  # default limit on queued (submitted, not yet running) steps
MAX_BATCH_LIMIT = 65_536  # largest accepted max_batch
MAX_WAIT_LIMIT_MS = 1_000.0  # largest accepted max_wait_ms


class StepOutputs(Mapping):
    """``{stream_id: y}`` of one :meth:`StreamPool.step_many` call.

    A read-only mapping over ONE read-only output array: each ``y`` is a row of it, made
    on access, so a step over thousands of streams builds no per-stream objects.
    ``.array`` is the whole ``(n, out...)`` output in the order the ids were given.
    """

    __slots__ = ("_pos", "array")

    def __init__(self, pos: Mapping[Hashable, int], array: np.ndarray) -> None:
        array.flags.writeable = False
        self._pos = pos  # stream id -> row of array
        self.array = array  # (n, out...)

    def __getitem__(self, stream_id: Hashable) -> np.ndarray:
        return self.array[self._pos[stream_id]]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._pos)

    def __len__(self) -> int:
        return len(self._pos)

    def __repr__(self) -> str:
        return f"StepOutputs({len(self)} streams, output {self.array.shape} {self.array.dtype})"


def _int_option(name: str, value: Any, hi: int) -> int:
    return check_int(name, value, maximum=hi)


def _wait_option(value: Any) -> float:
    return check_number("max_wait_ms", value, maximum=MAX_WAIT_LIMIT_MS)


class StreamPool:
    """Serve many independent streams of one model, batching their steps.

    Each stream has its own state, kept in a preallocated slot of shared arrays.
    :meth:`step_many` advances several streams in ONE onnxruntime call; :meth:`submit`,
    :meth:`submit_many` (thread-safe) and :meth:`asubmit` (asyncio) queue single steps for
    a background batcher that groups concurrent submissions. Every stream gets the outputs a
    solo :class:`~rnnx.runtime.StreamingSession` would give on the same inputs: exactly for
    float32 graphs of native ops, within float rounding where a batched kernel sums in another
    order (an LSTM with ``proj_size``: ~3e-8). An int8 file quantizes its activations per call
    over the whole batch, so there a stream's outputs depend on its batch mates within the int8
    tolerance (measured: 1.7e-3 for a tiny LSTM beside a stream 50x larger).
    States are kept on the host (gathered/scattered with numpy) whatever the provider.
    The batcher is a daemon thread named ``rnnx-batcher``, started by the first queued step;
    big asyncio batches hand their results back through one named ``rnnx-handoff``. Both
    end when the pool closes.

    Example::

        with StreamPool("model.onnx", max_batch=64) as pool:
            pool.open("alice"); pool.open("bob")
            ys = pool.step_many({"alice": np.zeros(16, np.float32),
                                 "bob": np.ones(16, np.float32)})   # {"alice": (1,), ...}
            y = pool.submit("alice", np.zeros(16, np.float32)).result()

    Args:
        path: the ``.onnx`` file.
        max_batch: most steps the batcher runs in one call (1 to 65536).
        max_wait_ms: longest a queued step waits for company before its batch runs
            (0 to 1000 ms; a full batch runs at once).
        max_streams: most open streams; :meth:`open` beyond it raises PoolFullError.
        max_pending: most queued steps; beyond it :meth:`submit` blocks (up to its
            ``timeout``), :meth:`asubmit` awaits room, :meth:`submit_many` raises PoolFullError.
        providers: as in :class:`~rnnx.runtime.StreamingSession`.
        state_map: as in :class:`~rnnx.runtime.StreamingSession`.
        constants: as in :class:`~rnnx.runtime.StreamingSession`.
        context: as in :class:`~rnnx.runtime.StreamingSession`.
        state_shapes: as in :class:`~rnnx.runtime.StreamingSession`.
        foreign: as in :class:`~rnnx.runtime.StreamingSession`.
        capacity: initial (and smallest) number of state slots; doubles as streams open,
            halves when at most a quarter of the slots are in use.
        check_finite: "off" (default), "warn" or "raise" on NaN/inf in a stream's input or
            output, as in :class:`~rnnx.runtime.StreamingSession`; with "raise" only the
            offending stream's step fails (its state unchanged), and a direct
            :meth:`step_many` raises with every state unchanged.
        step_graph: whether steps run on the file's step graph when its contract names one
            (default: the options', True). A pool runs single steps only, so it then keeps
            just that graph open (the main graph is closed once the contract is checked).

    Raises:
        ConfigError: an option out of range.
        ModelFileError: the file is missing, corrupt or has no usable contract.
        SpecError: the contract disagrees with the graph.
        ProviderError: a requested execution provider is not available.
        NotStreamableError: the model runs on whole sequences only (bidirectional).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        max_streams: int = MAX_STREAMS,
        max_pending: int = MAX_PENDING,
        options: RuntimeOptions | None = None,
        providers: Providers | None = None,
        state_map: Mapping[str, str] | None = None,
        constants: Mapping[str, Any] | None = None,
        context: int = 0,
        state_shapes: Mapping[str, Sequence[Any]] | None = None,
        capacity: int = 8,
        check_finite: str | None = None,
        step_graph: bool | None = None,
        foreign: ForeignModel | None = None,
    ) -> None:
        self.max_batch = _int_option("max_batch", max_batch, MAX_BATCH_LIMIT)
        self.max_wait_ms = _wait_option(max_wait_ms)
        self.max_streams = _int_option("max_streams", max_streams, 1 << 31)
        self.max_pending = _int_option("max_pending", max_pending, 1 << 31)
        capacity = min(_int_option("capacity", capacity, 1 << 31), self.max_streams)
        self.options = merge_options(options, providers=providers, check_finite=check_finite, step_graph=step_graph)
        graphs = open_model_graphs(
            path,
            self.options,
            foreign_model(
                foreign, state_map=state_map, constants=constants, context=context, state_shapes=state_shapes
            ),
        )
        self.contract = graphs.contract
        if not self.contract.streamable:
            graphs.close()
            raise NotStreamableError(
                f"StreamPool: {path} is not streamable "
                f"({not_streamable_reason(self.contract)}; StreamingSession.run takes whole "
                f"sequences)"
            )
        if graphs.step is not None:  # every call of a pool is one step: the main graph is not needed
            graphs.backend.close()
        self.backend = graphs.step if graphs.step is not None else graphs.backend  # the graph steps run on
        self.step_graph: Path | None = graphs.step_path  # the step graph's file, when the pool runs on it
        c = self.contract
        self._slots = SlotStore(c, capacity)
        self._engine = BatchEngine(self.backend, c, self._slots)
        self._ids: dict[Hashable, int] = {}  # stream id -> slot
        self._streams: dict[Hashable, StreamQueue] = {}  # stream id -> its queue (and generation)
        self._idx_cache: tuple | None = None  # (ids, slots, rows) of the last step_many
        self._lock = threading.RLock()  # slots, engine and the stream tables
        self._queue = WorkQueue(weakref.ref(self), max_batch, self.max_wait_ms / 1000.0, max_pending)
        self._finalizer = weakref.finalize(self, _collected, self._queue, str(path))
        self._finalizer.atexit = False
        self._vocab = c.vocab_size  # read on every step
        self._finite = self.options.check_finite  # "off" | "warn" | "raise" on NaN/inf
        self._shape = self._fixed_step_shape()  # (F...) of one submitted step, when fixed
        self._dtype = c.input.dtype
        self._axis = _step_axis(c.input)  # the batch axis of stacked steps (the graph's, less time)
        self._out_axis = _step_axis(c.output)  # the batch axis of a step's stacked outputs

    # -- streams -----------------------------------------------------------------------
    def open(self, stream_id: Hashable) -> None:
        """Start a stream with zero state.

        Raises:
            StreamExistsError: already open. PoolFullError: ``max_streams`` are open.
        """
        with self._lock:
            self._require_open()
            if stream_id in self._ids:
                raise StreamExistsError(f"stream {stream_id!r}: already open; close it or reset it")
            if len(self._ids) >= self.max_streams:
                raise PoolFullError(
                    f"max_streams: {len(self._ids)} streams open (the limit); close one "
                    f"before opening {stream_id!r}, or raise max_streams"
                )
            slot = self._slots.acquire()
            self._ids[stream_id] = slot
            self._streams[stream_id] = StreamQueue(stream_id, slot)
            self._idx_cache = None

    def close(self, stream_id: Hashable = _ALL) -> None:
        """Close one stream, or (no argument) the whole pool.

        Closing a stream fails its queued steps with UnknownStreamError (a reopened id
        starts afresh). Closing the pool fails every queued step with ClosedError,
        waits for a running batch, stops the batcher thread and releases the session and
        the state buffers; it is idempotent and safe from a future's done-callback.
        """
        if stream_id is _ALL:
            self._shutdown()
            return
        with self._lock:
            self._require_open()
            slot = self._slot(stream_id)
            sq = self._streams.pop(stream_id)
            del self._ids[stream_id]
            futs, loops = self._queue.close_stream(sq)
            self._slots.release(slot)
            self._idx_cache = None
            self._shrink_if_sparse()
        fail(futs, loops, UnknownStreamError(f"stream {stream_id!r}: closed before this step ran"))

    def reset(self, stream_id: Hashable) -> None:
        """Zero one stream's state."""
        with self._lock:
            self._require_open()
            self._slots.zero(self._slot(stream_id))

    def get_state(self, stream_id: Hashable) -> dict[str, np.ndarray]:
        """Copies of one stream's states (batch axis of size 1), like a batch-1 session's."""
        with self._lock:
            self._require_open()
            slot = self._slot(stream_id)
            out = self._slots.get(slot)
            if self.contract.context:
                out[CONTEXT_KEY] = self._slots.ctx[slot : slot + 1].copy()
            return out

    def set_state(self, stream_id: Hashable, state: Mapping[str, Any]) -> None:
        """Replace one stream's state. Raises StateError on bad names/shapes/dtypes."""
        with self._lock:
            self._require_open()
            slot = self._slot(stream_id)
            checked = check_state(self.contract, state, 1)
            self._slots.set(slot, checked)
            if self.contract.context:
                self._slots.ctx[slot] = checked[CONTEXT_KEY][0]

    @property
    def streams(self) -> list[Hashable]:
        """Ids of the open streams."""
        with self._lock:
            return list(self._ids)

    @property
    def capacity(self) -> int:
        """State slots allocated now: at least the ``capacity`` option, doubled as streams open,
        halved when at most a quarter are in use (0 once the pool is closed and its buffers freed)."""
        with self._lock:
            slots = self._slots
            return 0 if slots is None else slots.capacity

    @property
    def pending(self) -> int:
        """Steps submitted and not yet taken into a batch."""
        return self._queue.pending

    def __len__(self) -> int:
        return len(self._ids)

    # -- stepping ------------------------------------------------------------------------
    def step_many(self, inputs: Mapping[Hashable, Any]) -> StepOutputs:
        """Advance several streams by one step in one onnxruntime call.

        Args:
            inputs: ``{stream_id: x}``, each x one step WITHOUT the batch axis, e.g. ``(16,)``.

        Returns:
            ``{stream_id: y}`` (a read-only :class:`StepOutputs` mapping), each y that
            stream's step output without the batch axis; ``.array`` holds them all, ``(n, out...)``.

        Raises:
            UnknownStreamError: a stream id is not open.
            ShapeError: an input has the wrong shape, or there are no streams at all.
            DTypeError: an input has a dtype the model cannot take.
            InputValueError: an input holds values the model cannot take (a token id
                outside the vocabulary).

        On error nothing is computed and no state changes.
        """
        ids = list(inputs)
        if not ids:
            raise ShapeError("inputs: expected at least one {stream_id: x}, got an empty mapping")
        values = list(inputs.values())
        x = self._fast_batch(values)
        if x is None:  # slow path: find and name the offending stream
            x = np.concatenate([self._check(i, v) for i, v in zip(ids, values)], axis=self._axis)
        self._check_values(ids, x)
        with self._lock:
            self._require_open()
            idx, pos = self._indices(ids)
            return StepOutputs(pos, self._step_checked(idx, x, ids))

    def step_batch(self, ids: Sequence[Hashable], x: Any) -> StepOutputs:
        """:meth:`step_many` for inputs already stacked: one row of ``x`` per stream.

        For servers that hold their streams' inputs in one array: no per-stream stacking.

        Args:
            ids: the streams to advance, distinct, in the order of the rows of ``x``.
            x: ``(len(ids), F...)``, row k is the step input of ``ids[k]``.

        Returns:
            The same :class:`StepOutputs` as :meth:`step_many`.

        Raises:
            UnknownStreamError: a stream id is not open.
            DuplicateStreamError: a stream id is given twice.
            ShapeError: ``x`` has the wrong shape.
            DTypeError: ``x`` has a dtype the model cannot take.
            InputValueError: ``x`` holds values the model cannot take.

        On error nothing is computed and no state changes.
        """
        ids = list(ids)
        if not ids:
            raise ShapeError("ids: expected at least one stream, got none")
        if (
            type(x) is np.ndarray
            and x.dtype is self._dtype
            and x.shape[1:] == self._shape  # the common case
            and len(x) == len(ids)
            and self._axis == 0
            and x.flags.c_contiguous
        ):
            arr = x
        else:
            arr = as_array(self.contract.input.name, x)
            if self._axis != 0 and arr.ndim > self._axis:
                arr = np.moveaxis(arr, 0, self._axis)
            arr = check_input(self.contract, arr, len(ids), with_time=False)
        self._check_values(ids, arr)
        with self._lock:
            self._require_open()
            idx, pos = self._indices(ids)
            return StepOutputs(pos, self._step_checked(idx, arr, ids))

    def submit(self, stream_id: Hashable, x: Any, *, timeout: float | None = None) -> Future[np.ndarray]:
        """Queue one step of one stream; thread-safe. Returns a Future of its output.

        A bad input or unknown stream fails this future only. Steps of the same stream
        run in submission order. ``x`` is copied: reuse it at once. Cancelling the future
        before its batch starts skips the step.

        Args:
            stream_id: an open stream.
            x: one step without the batch axis, e.g. ``(16,)``.
            timeout: when ``max_pending`` steps are queued, wait at most this many seconds
                for room (None: as long as it takes).

        Raises:
            ClosedError: the pool was closed (or its batcher failed, or this is a fork).
            PoolFullError: still no room after ``timeout`` seconds.
        """
        q = self._queue
        if q.refusal is not None:
            raise q.refused()
        fut: Future = Future()
        try:
            sq = self._stream(stream_id)
            arr = self._step_input(stream_id, x)
        except RnnxError as e:
            fut.set_exception(e)
            return fut
        try:
            q.put(sq, (arr, fut, None), timeout)
        except UnknownStreamError as e:  # closed meanwhile
            fut.set_exception(e)
        return fut

    def submit_many(self, inputs: Mapping[Hashable, Any]) -> list[Future[np.ndarray]]:
        """Queue one step for each of several streams at once; thread-safe.

        Cheaper than one :meth:`submit` per stream: one stacked validation, one lock.

        Args:
            inputs: ``{stream_id: x}``, each x one step without the batch axis.

        Returns:
            One Future per stream, in the order of ``inputs``. A step whose values the
            model cannot take (a token id outside the vocabulary) fails its own future.

        Raises:
            UnknownStreamError: a stream id is not open (nothing is queued).
            ShapeError: an input has the wrong shape (nothing is queued).
            DTypeError: an input has a dtype the model cannot take (nothing is queued).
            PoolFullError: the steps do not fit under ``max_pending`` (nothing is queued).
            ClosedError: the pool is closed.
        """
        q = self._queue
        if q.refusal is not None:
            raise q.refused()
        ids = list(inputs)
        if not ids:
            raise ShapeError("inputs: expected at least one {stream_id: x}, got an empty mapping")
        values = list(inputs.values())
        sqs = [self._stream(i) for i in ids]
        x = self._fast_batch(values)
        axis = self._axis
        if x is None:
            rows = [np.take(self._check(i, v), 0, axis=axis) for i, v in zip(ids, values)]  # copies
        else:  # token ids are checked per step when the batch runs: a bad one fails alone
            rows = list(np.ascontiguousarray(np.moveaxis(x, axis, 0)))  # views of a fresh array
        futs: list[Future] = [Future() for _ in ids]
        q.put_many(sqs, [(r, f, None) for r, f in zip(rows, futs)])
        return futs

    def asubmit(self, stream_id: Hashable, x: Any) -> Awaitable[np.ndarray]:
        """``y = await pool.asubmit(id, x)``: one step for asyncio code (call it in a running loop).

        Returns the step's asyncio future itself (no coroutine per step), or, while
        ``max_pending`` steps are queued, a coroutine that awaits room first.

        Raises:
            UnknownStreamError: the stream is not open (at the call; when awaited: the
                stream was closed meanwhile).
            ShapeError: ``x`` has the wrong shape (at the call).
            DTypeError: ``x`` has a dtype the model cannot take (at the call).
            ClosedError: the pool is closed (at the call; when awaited: closed meanwhile).
            InputValueError: when awaited, the model could not take this step's values.
            NonFiniteError: when awaited, NaN/inf with ``check_finite="raise"``.

        Awaited errors fail this step only.
        """
        sq = self._stream(stream_id)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        item = (self._step_input(stream_id, x), fut, loop)
        waiter = self._queue.try_put(sq, item, loop)
        return fut if waiter is None else self._await_room(sq, item, waiter)

    async def _await_room(self, sq: StreamQueue, item: tuple, waiter: Awaitable[None] | None) -> np.ndarray:
        while waiter is not None:  # max_pending steps are queued: wait for room, then queue
            await waiter
            waiter = self._queue.try_put(sq, item, item[2])
        return await item[1]

    # -- lifecycle -------------------------------------------------------------------------
    def _shutdown(self) -> None:
        q = self._queue
        forked = q.refusal is not None and "fork()" in q.refusal
        futs, loops = q.shutdown("StreamPool is closed")
        fail(futs, loops, ClosedError("StreamPool: closed before this step ran"))
        self._finalizer.detach()
        if forked:  # the parent's lock and backend belong to the parent; drop nothing here
            return
        with self._lock:  # waits for a running batch
            for sq in self._streams.values():
                sq.open = False
            self._ids.clear()
            self._streams.clear()
            self._idx_cache = None
            self._engine = self._slots = None  # type: ignore[assignment]
            self.backend.close()
        t = q.thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=30)

    def __enter__(self) -> StreamPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._shutdown()

    # -- implementation --------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._queue.refusal is not None:
            raise self._queue.refused()

    def _slot(self, stream_id: Hashable) -> int:
        try:
            return self._ids[stream_id]
        except (KeyError, TypeError):
            raise UnknownStreamError(
                f"stream {stream_id!r}: not open; open streams: {len(self._ids)} (call open({stream_id!r}) first)"
            ) from None

    def _stream(self, stream_id: Hashable) -> StreamQueue:
        try:
            return self._streams[stream_id]
        except (KeyError, TypeError):
            self._require_open()  # a closed pool says so rather than "unknown stream"
            self._slot(stream_id)  # raises UnknownStreamError with the usual message
            raise

    def _indices(self, ids: list[Hashable]) -> tuple[np.ndarray, dict[Hashable, int]]:
        """Slot index and row of each id; the last answer is reused while no stream opens or closes."""
        cached = self._idx_cache
        if cached is not None and cached[0] == ids:
            return cached[1], cached[2]
        try:
            idx = np.fromiter(map(self._ids.__getitem__, ids), np.intp, len(ids))
        except (KeyError, TypeError):
            for i in ids:
                self._slot(i)  # raises UnknownStreamError naming the first unknown id
            raise
        pos = {i: row for row, i in enumerate(ids)}
        if len(pos) != len(ids):
            dup = next(i for k, i in enumerate(ids) if pos[i] != k)
            raise DuplicateStreamError(f"ids: expected distinct stream ids, got {dup!r} more than once")
        self._idx_cache = (ids, idx, pos)
        return idx, pos

    def _fixed_step_shape(self) -> tuple[int, ...] | None:
        """The shape ``(F...)`` of one step when the contract fixes it, else None."""
        io = self.contract.input
        if self.contract.context:
            return None
        dims = [d for k, d in enumerate(io.dims) if k not in (io.batch_axis, io.time_axis)]
        if any(d is None or d == 0 for d in dims):
            return None
        return tuple(d for d in dims if d is not None)

    def _step_input(self, stream_id: Hashable, x: Any) -> Any:
        """One submitted step as a private, validated copy (no batch axis).

        Raw bytes when the contract fixes the step's shape (cheaper to copy and to stack
        than an array), else an array ``(F...)``.
        """
        if type(x) is np.ndarray and x.dtype is self._dtype and x.shape == self._shape:
            return x.tobytes()  # the common case: exactly the contract's shape and dtype
        arr = self._check(stream_id, x)
        self._check_tokens([stream_id], arr)
        row = np.take(arr, 0, axis=self._axis)  # a copy
        return row.tobytes() if self._shape is not None else row

    def _stack(self, xs: list) -> np.ndarray:
        """Queued steps (bytes or arrays ``(F...)``) stacked along the graph's batch axis."""
        axis = self._axis
        if self._shape is not None:  # one C-level join of the raw steps
            x = np.frombuffer(bytearray().join(xs), self._dtype).reshape((len(xs),) + self._shape)  # (n, F...)
            return x if axis == 0 else np.moveaxis(x, 0, axis)
        return np.array(xs) if axis == 0 else np.stack(xs, axis=axis)

    def _check(self, stream_id: Hashable, x: Any) -> np.ndarray:
        try:
            given = as_array(self.contract.input.name, x)  # converted once: shape checked here, values below
        except ShapeError as e:
            raise ShapeError(f"stream {stream_id!r}: {e}") from None
        if self._shape is not None and given.shape != self._shape:  # said in the caller's terms: one stream's step
            what = "one token id" if self._shape == () and self._vocab is not None else "without the batch axis"
            raise ShapeError(
                f"stream {stream_id!r}: {self.contract.input.name}: expected shape {self._shape} "
                f"per stream ({what}), got {given.shape}"
            )
        arr = np.expand_dims(given, 0)  # (1, F...): add the batch axis
        if self._axis != 0:
            arr = np.moveaxis(arr, 0, self._axis)
        try:
            arr = check_input(self.contract, arr, 1, with_time=False)
        except RnnxError as e:
            raise type(e)(f"stream {stream_id!r}: {e} (per-stream input, without the batch axis)") from None
        if arr.size == 0:
            raise ShapeError(
                f"stream {stream_id!r}: {self.contract.input.name}: expected a non-empty step, got shape {given.shape}"
            )
        return arr

    def _fast_batch(self, values: list[Any]) -> np.ndarray | None:
        """All inputs stacked and checked at once, or None if any needs a closer look."""
        shape = self._shape
        if shape:  # fixed (F...): one C-level concatenation checks dtypes (exactly), ranks and trailing dims
            try:
                x = np.concatenate(values, dtype=self._dtype, casting="no")  # (n * F0, F1...)
            except (TypeError, ValueError):
                return None  # a list, another dtype or rank: the slow path converts or names it
            if len(x) != len(values) * shape[0] or set(map(len, values)) != {shape[0]}:
                return None
            x = x.reshape((len(values),) + shape)  # (n, F...)
            return x if self._axis == 0 else np.moveaxis(x, 0, self._axis)
        try:
            dtypes = list(map(_dtype_of, values))
            if dtypes.count(dtypes[0]) != len(dtypes) and len({d.kind for d in dtypes}) != 1:
                return None  # mixed int/float: the slow path names the odd one out
            x = np.array(values)  # (n, F...); C-level stacking, much faster than np.stack
            if self._axis != 0:
                x = np.moveaxis(x, 0, self._axis)
            x = check_input(self.contract, x, len(values), with_time=False)
        except (AttributeError, ValueError, TypeError, RnnxError):
            return None
        return x if x.size else None

    def _bad_tokens(self, x: np.ndarray) -> np.ndarray | None:
        """Rows (along the batch axis) holding a token id outside ``[0, vocab_size)``, or None."""
        v = self._vocab
        if v is None or x.dtype.kind not in "iu" or not x.size:
            return None
        if token_ids_in_range(x, v):
            return None
        axis = self._axis
        bad = np.moveaxis((x < 0) | (x >= v), axis, 0)  # (n, ...)
        return np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))

    def _token_error(self, stream_id: Hashable, row: np.ndarray) -> InputValueError:
        return InputValueError(
            f"stream {stream_id!r}: {self.contract.input.name}: expected token ids in "
            f"[0, {self._vocab}) (vocab_size {self._vocab}), got "
            f"{np.asarray(row).ravel().tolist()[:8]}"
        )

    def _check_tokens(self, ids: list[Hashable], x: np.ndarray) -> None:
        bad = self._bad_tokens(x)
        if bad is not None:
            k = int(bad[0])
            raise self._token_error(ids[k], np.take(x, k, axis=self._axis))

    def _check_values(self, ids: list[Hashable], x: np.ndarray) -> None:
        """Token range and (with check_finite) NaN/inf of a stacked input, before any compute."""
        if self._vocab is None and self._finite == "off":
            return
        self._check_tokens(ids, x)
        bad = self._nonfinite(x, "input", ids)
        if bad is not None:
            raise self._finite_error(ids[int(bad[0])], "input")

    def _nonfinite(self, arr: np.ndarray, what: str, ids: list[Hashable], axis: int | None = None) -> np.ndarray | None:
        """Rows (along the batch axis) with NaN/inf when ``check_finite`` is on; warns for "warn"."""
        if self._finite == "off" or arr.dtype.kind not in "fc":
            return None
        ok = np.isfinite(arr)
        if ok.all():
            return None
        axis = self._axis if axis is None else axis
        rows = np.flatnonzero(~np.moveaxis(ok, axis, 0).reshape(arr.shape[axis], -1).all(axis=1))
        if self._finite == "warn":
            warnings.warn(
                f"{self._finite_message(ids[int(rows[0])], what)} ({len(rows)} of {arr.shape[axis]} streams)",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return rows

    def _finite_message(self, stream_id: Hashable, what: str) -> str:
        name = self.contract.input.name if what == "input" else self.contract.output.name
        return (
            f"stream {stream_id!r}: {name}: expected finite values in the {what}, got NaN/inf "
            f"(check_finite={self._finite!r})"
        )

    def _finite_error(self, stream_id: Hashable, what: str) -> NonFiniteError:
        return NonFiniteError(self._finite_message(stream_id, what) + "; the stream's state is unchanged")

    def _step_checked(
        self,
        idx: np.ndarray,
        x: np.ndarray,
        ids: list[Hashable],
        per_stream: bool = False,
        before_run: Callable[[], None] | None = None,
    ) -> Any:
        """:meth:`_step_impl` plus check_finite on the outputs (under the lock).

        With "raise", streams whose output has a NaN/inf get their state back: every stream
        of the call (``per_stream=False``, the call raises), or only those (``per_stream=True``:
        their rows become NonFiniteErrors in the returned list). ``before_run`` is called
        right before onnxruntime runs (the batcher hands earlier results over then).
        """
        if self._finite != "raise":
            y = self._step_impl(idx, x, before_run)
            if self._finite == "warn":
                self._nonfinite(y, "output", ids, axis=0)
            return y
        slots, c = self._slots, self.contract
        before = slots.gather(idx, out=[np.empty(s.concrete_shape(len(idx)), s.dtype) for s in c.states])
        ctx = slots.ctx[idx].copy() if c.context else None
        y = self._step_impl(idx, x, before_run)
        bad = self._nonfinite(y, "output", ids, axis=0)
        if bad is None:
            return y
        undo = bad if per_stream else np.arange(len(idx))
        slots.scatter(idx[undo], [np.take(b, undo, axis=s.batch_axis) for s, b in zip(c.states, before)])
        if ctx is not None:
            slots.ctx[idx[undo]] = ctx[undo]
        if not per_stream:
            raise NonFiniteError(self._finite_message(ids[int(bad[0])], "output") + "; the state is unchanged")
        out: list[Any] = list(y)
        for k in bad.tolist():
            out[k] = self._finite_error(ids[k], "output")
        return out

    def _step_impl(self, idx: np.ndarray, x: np.ndarray, before_run: Callable[[], None] | None = None) -> np.ndarray:
        """One batched step: ``x`` is ``(n, F...)`` for the streams in slots ``idx``; returns ``(n, out...)``."""
        c = self.contract
        if c.input.time_axis is not None:
            t = c.input.time_axis
            x = x.reshape(x.shape[:t] + (1,) + x.shape[t:])  # (n, 1, F...)
        elif c.context:
            x = np.concatenate([self._slots.ctx[idx], x], axis=-1)  # (n, K + N)
        y = self._engine.step(idx, x, before_run)
        if c.context:
            self._slots.ctx[idx] = x[..., -c.context :]
        if c.output.time_axis is not None:
            y = y.reshape(y.shape[: c.output.time_axis] + y.shape[c.output.time_axis + 1 :])  # drop T=1
        return y if self._out_axis == 0 else np.moveaxis(y, self._out_axis, 0)  # (n, out...)

    def _shrink_if_sparse(self) -> None:
        """Halve the slot arrays (repeatedly) once at most a quarter of the slots are in use."""
        moves = self._slots.shrink(len(self._ids), list(self._ids.values()))
        if moves is None:
            return
        for sid, slot in list(self._ids.items()):
            if slot in moves:
                self._ids[sid] = self._streams[sid].slot = moves[slot]
        self._engine.forget()

    # -- the batcher's side ----------------------------------------------------------------
    def run_queued(self, sqs: list[StreamQueue], xs: list, futs: list, loops: list) -> None:
        """Run queued steps (in the batcher thread) and hand their results back.

        A step whose stream closed meanwhile, or whose token ids are out of range, fails
        alone; a batch the model rejects at run time is retried step by step, so only the
        culprit fails.
        """
        q = self._queue
        taken = list(map(_claim, futs, loops))
        if not all(taken):  # cancelled before the batch started: skipped
            sqs, xs, futs, loops = _keep((sqs, xs, futs, loops), taken)
        x = None
        if xs and (self._vocab is not None or self._finite != "off"):  # per-step value checks
            try:
                x = self._stack(xs)
            except ValueError:  # free-size steps that do not fit together: checked one by one below
                pass
            else:
                errors = self._value_errors(x, [sq.id for sq in sqs])
                if errors:
                    for k, err in errors.items():
                        q.resolve([futs[k]], [loops[k]], [err])
                    sqs, xs, futs, loops = _keep((sqs, xs, futs, loops), [k not in errors for k in range(len(futs))])
                    x = None
        error: BaseException | None = None
        with self._lock:
            if q.refusal is not None:
                q.fail(futs, loops, ClosedError("StreamPool: closed before this step ran"))
                return
            if not all(map(_is_open, sqs)):  # closed after the batch was taken
                for sq, fut, loop in zip(sqs, futs, loops):
                    if not sq.open:
                        q.resolve([fut], [loop], [UnknownStreamError(f"stream {sq.id!r}: closed before this step ran")])
                sqs, xs, futs, loops = _keep((sqs, xs, futs, loops), [sq.open for sq in sqs])
                x = None
            if not futs:
                return
            idx = np.fromiter(map(_slot_of, sqs), np.intp, len(sqs))
            try:  # stacking too: steps of a free-size input may not fit together
                ys = self._step_checked(
                    idx,
                    self._stack(xs) if x is None else x,
                    [sq.id for sq in sqs],
                    per_stream=True,
                    before_run=q.handoff.flush,
                )
            except Exception as e:  # noqa: BLE001 - rejected: the culprit is found below
                ys, error = None, e
        if error is None:
            q.resolve(futs, loops, ys)
        elif len(futs) == 1:
            q.resolve(futs, loops, [_step_error(sqs[0].id, error)])
        else:
            for one in zip(sqs, xs, futs, loops):
                self.run_queued(*([v] for v in one))

    def _value_errors(self, x: np.ndarray, ids: list[Hashable]) -> dict[int, BaseException]:
        """Per-step errors of a stacked batch: token ids out of range, NaN/inf (with check_finite)."""
        errors: dict[int, BaseException] = {}
        bad_ids = self._bad_tokens(x)
        axis = self._axis
        for k in [] if bad_ids is None else bad_ids.tolist():
            errors[k] = self._token_error(ids[k], np.take(x, k, axis=axis))
        bad_values = self._nonfinite(x, "input", ids)
        for k in [] if bad_values is None else bad_values.tolist():
            errors.setdefault(k, self._finite_error(ids[k], "input"))
        return errors


def _step_axis(io: Any) -> int:
    """The batch axis of a step's stacked data: the graph's, less the time axis when that comes first."""
    return io.batch_axis - (io.time_axis is not None and io.time_axis < io.batch_axis)


def _claim(fut: Any, loop: Any) -> bool:
    """Take a queued step's future for running; False if it was cancelled first.

    A plain future is marked running, so ``cancel()`` can no longer hide a step that runs
    (an asyncio future has no such state: its awaiter may still stop waiting).
    """
    if loop is not None:
        return not fut.cancelled()
    if fut.running():  # a step retried alone after its batch was rejected
        return True
    try:
        return fut.set_running_or_notify_cancel()
    except RuntimeError:  # already resolved (failed by a close meanwhile): nothing to run
        return False


def _keep(columns: tuple[list, ...], mask: list[bool]) -> tuple[list, ...]:
    """The entries of parallel lists where ``mask`` is True."""
    return tuple([v for v, m in zip(col, mask) if m] for col in columns)


def _step_error(stream_id: Hashable, e: BaseException) -> BaseException:
    """The error one step's future gets when the model rejected it at run time."""
    if isinstance(e, RnnxError) or not isinstance(e, Exception):
        return e
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    err = InputValueError(f"stream {stream_id!r}: the model rejected this step at run time ({first})")
    err.__cause__ = e
    return err


def _collected(queue: WorkQueue, path: str) -> None:
    """Finalizer of a pool garbage-collected without close(): stop its batcher, fail queued steps."""
    futs, loops = queue.shutdown("StreamPool was garbage-collected without close()")
    fail(futs, loops, ClosedError("StreamPool: garbage-collected before this step ran"))
    warnings.warn(
        f"unclosed StreamPool({path!r}); call close() or use it as a context manager", ResourceWarning, stacklevel=2
    )
