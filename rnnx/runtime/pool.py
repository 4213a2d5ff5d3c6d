"""StreamPool: many independent streams through one model, one onnxruntime call per batch."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Hashable, Mapping, Optional, Sequence

import numpy as np
import onnxruntime as ort

from rnnx.errors import DuplicateStreamError, NotStreamableError, RnnxError, SpecError, StreamExistsError, UnknownStreamError
from rnnx.runtime.batcher import Batcher, Item
from rnnx.runtime.backend import PathLike
from rnnx.runtime.contract import CONTEXT_KEY, open_model
from rnnx.runtime.options import RuntimeOptions, merge_options
from rnnx.runtime.providers import Providers
from rnnx.runtime.batch_engine import BatchEngine
from rnnx.runtime.slots import SlotStore
from rnnx.runtime.validate import check_input, check_state

_ALL = object()


class StepOutputs(Mapping):
    """``{stream_id: y}`` of one :meth:`StreamPool.step_many` call.

    A read-only mapping over ONE output array: each ``y`` is a row of it, made on access,
    so a step over thousands of streams builds no per-stream objects. ``.array`` is the
    whole ``(n, out...)`` output in the order the ids were given.
    """

    __slots__ = ("_pos", "array")

    def __init__(self, pos: Mapping[Hashable, int], array: np.ndarray) -> None:
        self._pos = pos  # stream id -> row of array
        self.array = array  # (n, out...)

    def __getitem__(self, stream_id: Hashable) -> np.ndarray:
        return self.array[self._pos[stream_id]]

    def __iter__(self):
        return iter(self._pos)

    def __len__(self) -> int:
        return len(self._pos)

    def __repr__(self) -> str:
        return f"StepOutputs({len(self)} streams, output {self.array.shape} {self.array.dtype})"


class StreamPool:
    """Serve many independent streams of one model, batching their steps.

    Each stream has its own state, kept in a preallocated slot of shared arrays.
    :meth:`step_many` advances several streams in ONE onnxruntime call; :meth:`submit`
    (thread-safe) hands single steps to a background batcher that groups concurrent
    submissions. Every stream gets exactly the outputs a solo
    :class:`~rnnx.runtime.StreamingSession` would give on the same inputs. States are
    kept on the host (gathered/scattered with numpy) whatever the provider.

    Example:
        >>> with StreamPool("model.onnx", max_batch=64) as pool:  # doctest: +SKIP
        ...     pool.open("alice"); pool.open("bob")
        ...     ys = pool.step_many({"alice": np.zeros(16, np.float32),
        ...                          "bob": np.ones(16, np.float32)})   # {"alice": (1,), ...}
        ...     y = pool.submit("alice", np.zeros(16, np.float32)).result()

    Args:
        path: the ``.onnx`` file.
        max_batch: most submissions the batcher groups into one call.
        max_wait_ms: longest the batcher waits for more submissions after the first.
        options, providers, state_map, constants, context, session_options, state_shapes:
            as in :class:`~rnnx.runtime.StreamingSession`.
        capacity: initial number of state slots (doubles as streams open).
    """

    def __init__(self, path: PathLike, *, max_batch: int = 64, max_wait_ms: float = 2.0,
                 options: Optional[RuntimeOptions] = None, providers: Optional[Providers] = None,
                 state_map: Optional[Mapping[str, str]] = None,
                 constants: Optional[Mapping[str, Any]] = None, context: int = 0,
                 session_options: Optional[ort.SessionOptions] = None,
                 state_shapes: Optional[Mapping[str, Sequence[Any]]] = None, capacity: int = 8) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise SpecError(f"max_batch: expected a positive int, got {max_batch!r}")
        if not max_wait_ms >= 0:
            raise SpecError(f"max_wait_ms: expected a non-negative number, got {max_wait_ms!r}")
        self.options = merge_options(options, providers=providers, session_options=session_options)
        self.backend, self.contract = open_model(path, self.options, state_map=state_map, constants=constants,
                                                 context=context, state_shapes=state_shapes)
        if not self.contract.streamable:
            raise NotStreamableError(f"StreamPool: {path} is not streamable (bidirectional); "
                                     f"use StreamingSession.run on whole sequences")
        self.max_batch, self.max_wait_ms = max_batch, float(max_wait_ms)
        self._slots = SlotStore(self.contract, capacity)
        self._engine = BatchEngine(self.backend, self.contract, self._slots)
        self._ids: dict[Hashable, int] = {}
        self._idx_cache: Optional[tuple] = None  # (ids, slots, rows) of the last step_many
        self._lock = threading.RLock()
        self._batcher: Optional[Batcher] = None
        self._closed = False
        c = self.contract
        self._outputs = [c.output.name] + [s.output for s in c.states]

    # -- streams -----------------------------------------------------------------------
    def open(self, stream_id: Hashable) -> None:
        """Start a stream with zero state. Raises StreamExistsError if already open."""
        with self._lock:
            if stream_id in self._ids:
                raise StreamExistsError(f"stream {stream_id!r}: already open; close it or reset it")
            self._ids[stream_id] = self._slots.acquire()
            self._idx_cache = None

    def close(self, stream_id: Hashable = _ALL) -> None:
        """Close one stream, or (no argument) the whole pool: stop the batcher thread."""
        if stream_id is _ALL:
            self._shutdown()
            return
        with self._lock:
            self._slots.release(self._slot(stream_id))
            del self._ids[stream_id]
            self._idx_cache = None

    def reset(self, stream_id: Hashable) -> None:
        """Zero one stream's state."""
        with self._lock:
            self._slots.zero(self._slot(stream_id))

    def get_state(self, stream_id: Hashable) -> dict[str, np.ndarray]:
        """Copies of one stream's states (batch axis of size 1), like a batch-1 session's."""
        with self._lock:
            slot = self._slot(stream_id)
            out = self._slots.get(slot)
            if self.contract.context:
                out[CONTEXT_KEY] = self._slots.ctx[slot:slot + 1].copy()
            return out

    def set_state(self, stream_id: Hashable, state: Mapping[str, Any]) -> None:
        """Replace one stream's state. Raises StateError on bad names/shapes/dtypes."""
        with self._lock:
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
            UnknownStreamError, ShapeError, DTypeError: nothing is computed and no state changes.
        """
        ids = list(inputs)
        if not ids:
            return StepOutputs({}, np.empty((0,), self.contract.output.dtype))
        values = list(inputs.values())
        x = self._fast_batch(values)
        if x is None:  # slow path: find and name the offending stream
            x = np.concatenate([self._check(i, v) for i, v in zip(ids, values)],
                               axis=self.contract.input.batch_axis)
        with self._lock:
            idx, pos = self._indices(ids)
            return StepOutputs(pos, self._step_impl(idx, x))

    def step_batch(self, ids: Sequence[Hashable], x: Any) -> StepOutputs:
        """:meth:`step_many` for inputs already stacked: one row of ``x`` per stream.

        For servers that hold their streams' inputs in one array: no per-stream stacking.

        Args:
            ids: the streams to advance, distinct, in the order of the rows of ``x``.
            x: ``(len(ids), F...)``, row k is the step input of ``ids[k]``.

        Returns:
            The same :class:`StepOutputs` as :meth:`step_many`.

        Raises:
            UnknownStreamError, DuplicateStreamError, ShapeError, DTypeError: nothing is
            computed and no state changes.
        """
        ids = list(ids)
        if not ids:
            return StepOutputs({}, np.empty((0,), self.contract.output.dtype))
        io = self.contract.input
        arr = np.asarray(x)
        if io.batch_axis != 0 and arr.ndim > io.batch_axis:
            arr = np.moveaxis(arr, 0, io.batch_axis)
        arr = check_input(self.contract, arr, len(ids), with_time=False)
        with self._lock:
            idx, pos = self._indices(ids)
            return StepOutputs(pos, self._step_impl(idx, arr))

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


    def submit(self, stream_id: Hashable, x: Any) -> "Future[np.ndarray]":
        """Queue one step of one stream; thread-safe. Returns a Future of its output.

        A bad input or unknown stream fails this future only. Steps of the same stream
        run in submission order.
        """
        fut: Future = Future()
        try:
            with self._lock:
                self._slot(stream_id)
            arr = self._check(stream_id, x)
        except RnnxError as e:
            fut.set_exception(e)
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("StreamPool is closed")
            if self._batcher is None:
                self._batcher = Batcher(self._run_items, self.max_batch, self.max_wait_ms / 1000.0)
            self._batcher.put((stream_id, arr, fut))
        return fut

    async def asubmit(self, stream_id: Hashable, x: Any) -> np.ndarray:
        """``await pool.asubmit(id, x)``: :meth:`submit` for asyncio code."""
        return await asyncio.wrap_future(self.submit(stream_id, x))

    # -- lifecycle -------------------------------------------------------------------------
    def _shutdown(self) -> None:
        with self._lock:
            self._closed = True
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.stop()

    def __enter__(self) -> "StreamPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self._shutdown()

    # -- implementation --------------------------------------------------------------------
    def _slot(self, stream_id: Hashable) -> int:
        try:
            return self._ids[stream_id]
        except (KeyError, TypeError):
            raise UnknownStreamError(f"stream {stream_id!r}: not open; open streams: "
                                     f"{len(self._ids)} (call open({stream_id!r}) first)") from None

    def _check(self, stream_id: Hashable, x: Any) -> np.ndarray:
        arr = np.expand_dims(np.asarray(x), 0)  # (1, F...): add the batch axis
        if self.contract.input.batch_axis != 0:
            arr = np.moveaxis(arr, 0, self.contract.input.batch_axis)
        try:
            return check_input(self.contract, arr, 1, with_time=False)
        except RnnxError as e:
            raise type(e)(f"stream {stream_id!r}: {e} (per-stream input, without the batch axis)") from None

    def _fast_batch(self, values: list[Any]) -> Optional[np.ndarray]:
        """All inputs stacked and checked at once, or None if any needs a closer look."""
        io = self.contract.input
        try:
            x = np.array(values)  # (n, F...); C-level stacking, much faster than np.stack
            if io.batch_axis != 0:
                x = np.moveaxis(x, 0, io.batch_axis)
            return check_input(self.contract, x, len(values), with_time=False)
        except (ValueError, TypeError, RnnxError):
            return None

    def _step_impl(self, idx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """One batched step: ``x`` is ``(n, F...)`` for the streams in slots ``idx``; returns ``(n, out...)``."""
        c = self.contract
        if c.input.time_axis is not None:
            t = c.input.time_axis
            x = x.reshape(x.shape[:t] + (1,) + x.shape[t:])  # (n, 1, F...)
        elif c.context:
            x = np.concatenate([self._slots.ctx[idx], x], axis=-1)  # (n, K + N)
        y = self._engine.step(idx, x)
        if c.context:
            self._slots.ctx[idx] = x[..., -c.context:]
        if c.output.time_axis is not None:
            y = y.reshape(y.shape[:c.output.time_axis] + y.shape[c.output.time_axis + 1:])  # drop T=1
        return y if c.output.batch_axis == 0 else np.moveaxis(y, c.output.batch_axis, 0)  # (n, out...)

    def _run_items(self, items: list[Item]) -> None:
        live = [it for it in items if it[2].set_running_or_notify_cancel()]
        with self._lock:
            ok = []
            for it in live:
                if it[0] in self._ids:
                    ok.append(it)
                else:
                    it[2].set_exception(UnknownStreamError(f"stream {it[0]!r}: not open (closed before its step ran)"))
            if not ok:
                return
            try:
                idx = np.asarray([self._ids[it[0]] for it in ok], dtype=np.intp)
                ys = self._step_impl(idx, np.concatenate([it[1] for it in ok], axis=self.contract.input.batch_axis))
            except BaseException as e:  # an onnxruntime failure fails the whole batch
                for it in ok:
                    it[2].set_exception(e)
                return
        for it, y in zip(ok, ys):
            it[2].set_result(y)
