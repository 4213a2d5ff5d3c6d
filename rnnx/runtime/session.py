"""StreamingSession: run an exported recurrent model one step (or one chunk) at a time."""

from __future__ import annotations

import math
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnx.checks import check_int
from rnnx.errors import ClosedError, ConcurrentUseError, ConfigError, NotStreamableError, ShapeError, SpecError
from rnnx.runtime.backend import Backend, PathLike
from rnnx.runtime.contract import CONTEXT_KEY, ForeignModel, foreign_model, not_streamable_reason
from rnnx.runtime.engine import StepEngine
from rnnx.runtime.options import RuntimeOptions, merge_options
from rnnx.runtime.providers import Providers
from rnnx.runtime.state_io import load_state_file, save_state_file
from rnnx.runtime.step_graph import ModelGraphs, open_model_graphs
from rnnx.runtime.validate import as_array, check_finite, check_input, check_state, check_token_ids
from rnnx.spec import ModelSpec

MAX_STATE_BYTES = 1 << 34  # most bytes a session's state buffers may take (16 GiB), checked before allocating


def _release(graphs: ModelGraphs, engine: StepEngine, name: str, warn: bool) -> None:
    """Free a session's buffers and backends; the finalizer of an unclosed session warns."""
    if warn:
        warnings.warn(
            f"StreamingSession({name}) was garbage-collected without close(); "
            f"call close() or use it as a context manager",
            ResourceWarning,
            stacklevel=2,
        )
    engine.close()
    graphs.close()


class StreamingSession:
    """Stream an exported recurrent model step by step, carrying its state between calls.

    The state contract (names, shapes of the carried tensors) comes from the file's
    ``rnnx.spec`` metadata, checked against the graph when the session opens; foreign
    ONNX files are described with ``state_map``. States live in preallocated buffers (on
    the GPU with CUDA) and are never copied per step. A session serves ONE thread at a
    time: a call while another thread is inside one raises ConcurrentUseError; use
    :class:`~rnnx.runtime.StreamPool` for concurrent streams. ``close()`` (or a ``with``
    block) frees the onnxruntime session and the buffers. When the file's contract names a
    step graph (a loop-free graph beside it, see :mod:`rnnx.runtime.step_graph`),
    :meth:`step` (and :meth:`feed` of one time step) runs on it, longer chunks and
    :meth:`run` on the main graph, over the same state.

    Example:
        A complete streaming loop::

            import numpy as np
            from rnnx.runtime import StreamingSession

            with StreamingSession("model.onnx") as sess:        # batch_size=1, CPU
                for frame in np.random.rand(100, 16).astype(np.float32):
                    y = sess.step(frame[None])                  # (1, 16) -> (1, 1)
                sess.save_state("state.npz")                    # resume later / elsewhere
                ys = sess.feed(np.zeros((1, 64, 16), np.float32))  # 64 steps in one call
                sess.reset()                                    # start a new sequence

    Args:
        path: the ``.onnx`` file.
        options: a :class:`~rnnx.runtime.RuntimeOptions` (providers, threads, optimisation,
            check_finite, step_graph); the keyword shortcuts below override it.
        providers: "cpu", "cuda", "auto" or a list of onnxruntime provider names.
        batch_size: number of sequences stepped together.
        state_map: ``{state_input: state_output}`` for ONNX files not exported by rnnx.
        constants: ``{input: value}`` fed unchanged on every call (e.g. ``{"sr": np.array(16000)}``).
        context: keep the last K values of the data input's last axis and prepend them to
            the next call (zeros at the start); only for inputs without a time axis.
        state_shapes: ``{state_input: (2, "batch", 64)}`` where the graph's state shape
            does not tell the batch axis.
        foreign: the four options above in one :class:`~rnnx.runtime.ForeignModel` (instead of them).
        check_finite: "off" (default), "warn" or "raise" on NaN/inf in inputs and outputs.
        step_graph: False runs single steps on the main graph even when the file has a
            step graph (default: the options', True).

    Raises:
        ModelFileError: the file is missing, corrupt or has no usable contract.
        SpecError: the contract disagrees with the graph (also a step graph whose SHA-256
            or inputs/outputs disagree with the contract).
        ProviderError: a requested execution provider is not available.
        ConfigError: an option is out of range.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        options: RuntimeOptions | None = None,
        providers: Providers | None = None,
        batch_size: int = 1,
        state_map: Mapping[str, str] | None = None,
        constants: Mapping[str, Any] | None = None,
        context: int = 0,
        state_shapes: Mapping[str, Sequence[Any]] | None = None,
        check_finite: str | None = None,
        step_graph: bool | None = None,
        foreign: ForeignModel | None = None,
    ) -> None:
        batch_size = check_int("batch_size", batch_size)
        self.options = merge_options(options, providers=providers, check_finite=check_finite, step_graph=step_graph)
        self.path = Path(path)
        graphs = open_model_graphs(
            path,
            self.options,
            foreign_model(
                foreign, state_map=state_map, constants=constants, context=context, state_shapes=state_shapes
            ),
        )
        self.backend, self.contract = graphs.backend, graphs.contract
        self.step_graph: Path | None = graphs.step_path  # the step graph step() runs on, if any
        self.batch_size = batch_size
        self.device = self.backend.device
        need = (
            sum(math.prod(s.concrete_shape(batch_size)) * np.dtype(s.dtype).itemsize for s in self.contract.states) * 2
        )  # two ping-pong state sets
        if need > MAX_STATE_BYTES:
            graphs.close()
            raise ConfigError(
                f"batch_size: expected state buffers of at most {MAX_STATE_BYTES} bytes, "
                f"batch_size={batch_size} needs {need}; use a smaller batch or a StreamPool"
            )
        self._engine = StepEngine(self.backend, self.contract, batch_size, step_backend=graphs.step)
        self._ctx = np.zeros((batch_size, self.contract.context), self.contract.input.dtype)
        self._fast: tuple | None = None  # step()'s validated fast path, see _fast_path
        self._busy = threading.Lock()  # held during a call: a second thread gets ConcurrentUseError
        self._finite = self.options.check_finite  # "off" | "warn" | "raise"
        self._vocab = self.contract.vocab_size  # read on every step
        self._closed = False
        self._graphs = graphs
        self._finalizer = weakref.finalize(self, _release, graphs, self._engine, self.path.name, True)
        self._finalizer.atexit = False

    @property
    def step_backend(self) -> Backend:
        """The backend single steps run on: the file's step graph when the session uses one,
        else :attr:`backend` (benchmarks time a bare loop on it: ``step_backend.run(...)``)."""
        return self._engine.step_backend

    @property
    def state_device(self) -> str:
        """Where the state buffers are, read from the buffers themselves: "cpu" (host memory)
        or "cuda" (device memory, on :attr:`backend`'s ``device_id``); they stay there
        between calls.

        Raises:
            ClosedError: the session is closed (its buffers are freed).
            ConcurrentUseError: another thread is inside a call of this session.
        """
        with self._guard("state_device"):
            return self._engine.state_device()

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Free the onnxruntime session and every buffer; later calls raise ClosedError. Idempotent."""
        with self._guard("close"):
            self._closed, self._fast = True, None
            if self._finalizer.detach() is not None:
                _release(self._graphs, self._engine, self.path.name, False)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> StreamingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties ------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        """The :class:`rnnx.spec.ModelSpec` contract (foreign models: lowered from state_map, kind "foreign")."""
        spec = self.contract.spec
        if spec is None:  # never: read_contract always sets it
            raise SpecError("the session's contract has no ModelSpec")
        return spec

    @property
    def state_names(self) -> list[str]:
        """Keys of :meth:`get_state` (plus ``_context`` when ``context > 0``)."""
        return [s.name for s in self.contract.states] + ([CONTEXT_KEY] if self.contract.context else [])

    # -- streaming -------------------------------------------------------------------
    def step(self, x: Any) -> np.ndarray:
        """Advance every sequence by one time step.

        Args:
            x: one time slice ``(batch, features...)``; for foreign models, the data
                input exactly as the graph takes it (minus the left context).

        Returns:
            That step's output ``(batch, out...)`` (a new array).

        Raises:
            NotStreamableError: the model runs on whole sequences only (bidirectional).
            ShapeError: ``x`` has the wrong rank or size.
            DTypeError: ``x`` has a dtype the input cannot take.
            InputValueError: a token id outside ``[0, vocab_size)``.
            NonFiniteError: NaN/inf seen with ``check_finite="raise"``.
            ClosedError: the session is closed.
            ConcurrentUseError: another thread is inside a call of this session.

        The state is unchanged on error.
        """
        if not self._busy.acquire(False):
            raise self._concurrent("step")
        try:
            fast = self._fast
            if fast is not None and type(x) is np.ndarray and x.shape == fast[0] and x.dtype == fast[1]:
                # the common case, already validated in full once: same shape and dtype as last time
                if self._vocab is not None:
                    check_token_ids(self.contract.input.name, x, self._vocab)
                np.copyto(fast[2], x)
                self._engine.run_step()
                return fast[3].copy()  # (B, out...)
            self._require_open("step")
            self._require_streamable("step")
            arr = check_input(self.contract, x, self.batch_size, with_time=False)
            check_token_ids(self.contract.input.name, arr, self._vocab)
            self._check_finite(arr, "input")
            ctx = self._ctx.copy() if self._finite != "off" and self.contract.context else None
            y = self._step_impl(arr)
            self._check_finite(y, "output", undo=lambda: self._undo_step(ctx))
            self._fast = self._fast_path(arr)
            return y
        finally:
            self._busy.release()

    def _fast_path(self, arr: np.ndarray) -> tuple | None:
        """(shape, dtype, x view, y view) of the bound step buffers, when a plain copy suffices."""
        c, eng = self.contract, self._engine
        if (
            c.context
            or c.input.time_axis is None
            or c.output.time_axis is None
            or eng.y_buf is None
            or eng.x_buf is None
            or self._finite != "off"
        ):
            return None
        x_view = eng.x_buf.reshape(arr.shape)  # (B, 1, F...) viewed as (B, F...)
        y_view = np.take(eng.y_buf, 0, axis=c.output.time_axis)  # shape (B, out...) ...
        y_view = eng.y_buf.reshape(y_view.shape)  # ... but as a view of the bound buffer
        if not (np.shares_memory(x_view, eng.x_buf) and np.shares_memory(y_view, eng.y_buf)):
            return None
        return arr.shape, arr.dtype, x_view, y_view

    def feed(self, chunk: Any) -> np.ndarray:
        """Advance by a chunk of steps ``(batch, time, features...)`` in one call.

        Returns:
            The outputs of every step ``(batch, time, out...)``.

        Raises:
            NotStreamableError: the model runs on whole sequences only (bidirectional).
            ShapeError: ``x`` has the wrong rank or size.
            DTypeError: ``x`` has a dtype the input cannot take.
            InputValueError: a token id outside ``[0, vocab_size)``.
            NonFiniteError: NaN/inf seen with ``check_finite="raise"``.
            ClosedError: the session is closed.
            ConcurrentUseError: another thread is inside a call of this session.

        The state is unchanged on error.
        """
        with self._guard("feed"):
            self._require_streamable("feed")
            io = self.contract.input
            if io.time_axis is None:  # foreign: step through axis 1 of the chunk
                arr = as_array(io.name, chunk)
                if arr.ndim < 2:
                    check_input(self.contract, arr, self.batch_size, with_time=False)
                if arr.shape[1] == 0:
                    raise ShapeError(f"{io.name}: expected at least one time step on axis 1, got shape {arr.shape}")
                slices = [
                    check_input(self.contract, arr[:, t], self.batch_size, with_time=False) for t in range(arr.shape[1])
                ]
                for sl in slices:
                    self._check_finite(sl, "input")
                return self._feed_steps(slices)
            arr = check_input(self.contract, chunk, self.batch_size, with_time=True)
            check_token_ids(io.name, arr, self._vocab)
            self._check_finite(arr, "input")
            y = self._engine.run_chunk(arr)
            self._check_finite(y, "output", undo=lambda: self._undo_step(None))
            return y

    def run(self, x: Any) -> np.ndarray:
        """Run a whole sequence from zero state; the session's own state is untouched.

        Works for every model, including the non-streamable (bidirectional) ones. Any
        batch size of at least 1 is accepted.

        Args:
            x: ``(batch, time, features...)`` (foreign models: the data input as given).

        Returns:
            The full output, e.g. ``(batch, time, out...)``.

        Raises:
            ShapeError: ``x`` has the wrong rank or size.
            DTypeError: ``x`` has a dtype the input cannot take.
            InputValueError: a token id outside ``[0, vocab_size)``.
            NonFiniteError: NaN/inf seen with ``check_finite="raise"``.
            ClosedError: the session is closed.
            ConcurrentUseError: another thread is inside a call of this session.
        """
        with self._guard("run"):
            c = self.contract
            arr = check_input(c, x, None, with_time=True)
            check_token_ids(c.input.name, arr, self._vocab)
            self._check_finite(arr, "input")
            batch = arr.shape[c.input.batch_axis]
            if c.context:
                arr = np.concatenate([np.zeros(arr.shape[:-1] + (c.context,), arr.dtype), arr], axis=-1)
            feeds = {c.input.name: arr, **c.constants}
            feeds.update({s.input: np.zeros(s.concrete_shape(batch), s.dtype) for s in c.states})
            y = self.backend.run([c.output.name], feeds)[0]
            self._check_finite(y, "output")
            return y

    # -- state -----------------------------------------------------------------------
    def reset(self) -> None:
        """Zero every state (and the left context): the next step starts a new sequence."""
        with self._guard("reset"):
            self._engine.zero()
            self._ctx[...] = 0

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the current states, keyed by state name (never views of live buffers)."""
        with self._guard("get_state"):
            return self._get_state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Replace the whole state (as returned by :meth:`get_state`).

        Raises:
            StateError: unknown or missing names, wrong shapes or dtypes (state unchanged).
        """
        with self._guard("set_state"):
            self._set_state(check_state(self.contract, state, self.batch_size))

    def save_state(self, path: PathLike) -> Path:
        """Write the state to an ``.npz`` file atomically; returns the path."""
        return save_state_file(path, self.get_state())

    def load_state(self, path: PathLike) -> None:
        """Load a state file written by :meth:`save_state` (no pickle, contents checked
        against this session's contract before anything is decompressed).

        Raises:
            FileNotFoundError: there is no file at ``path``.
            StateError: the file is corrupt or does not match the state contract.
        """
        self.set_state(load_state_file(path, self._expected_state()))

    # -- implementation ----------------------------------------------------------------
    def _guard(self, what: str) -> _Guard:
        return _Guard(self, what)

    def _concurrent(self, what: str) -> ConcurrentUseError:
        return ConcurrentUseError(
            f"{what}: this StreamingSession is in use by another thread; a session serves one "
            f"thread at a time (guard it with a lock, or use StreamPool for concurrent streams)"
        )

    def _require_open(self, what: str) -> None:
        if self._closed:
            raise ClosedError(f"{what}: the StreamingSession of {self.path.name} is closed")

    def _require_streamable(self, what: str) -> None:
        if not self.contract.streamable:
            raise NotStreamableError(
                f"{what}: {self.path.name} is not streamable ({not_streamable_reason(self.contract)})"
            )

    def _check_finite(self, arr: np.ndarray, what: str, undo: Any | None = None) -> None:
        name = self.contract.input.name if what == "input" else self.contract.output.name
        check_finite(self._finite, name, arr, what, undo)

    def _undo_step(self, ctx: np.ndarray | None) -> None:
        """Return to the state before the last bound run (its input set is still intact)."""
        self._engine.cur ^= 1
        if ctx is not None:
            self._ctx[...] = ctx

    def _expected_state(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {
            **{s.name: (s.concrete_shape(self.batch_size), np.dtype(s.dtype)) for s in self.contract.states},
            **(
                {CONTEXT_KEY: ((self.batch_size, self.contract.context), self.contract.context_dtype)}
                if self.contract.context
                else {}
            ),
        }

    def _get_state(self) -> dict[str, np.ndarray]:
        out = {s.name: self._engine.get(i) for i, s in enumerate(self.contract.states)}
        if self.contract.context:
            out[CONTEXT_KEY] = self._ctx.copy()
        return out

    def _set_state(self, checked: Mapping[str, np.ndarray]) -> None:
        for i, s in enumerate(self.contract.states):
            self._engine.set(i, checked[s.name])
        if self.contract.context:
            self._ctx[...] = checked[CONTEXT_KEY]

    def _graph_step_shape(self, arr: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        c = self.contract
        x_shape = list(arr.shape)
        if c.input.time_axis is not None:
            x_shape.insert(c.input.time_axis, 1)
        elif c.context:
            x_shape[-1] += c.context
        return tuple(x_shape), c.output_shape(self.batch_size)

    def _step_impl(self, arr: np.ndarray) -> np.ndarray:
        c, eng = self.contract, self._engine
        buf = eng.step_buffer(*self._graph_step_shape(arr))
        if c.input.time_axis is not None:
            np.copyto(buf.reshape(arr.shape), arr)  # (B, 1, F...) viewed as (B, F...)
        elif c.context:
            buf[..., : c.context] = self._ctx
            buf[..., c.context :] = arr
        else:
            np.copyto(buf, arr)
        y = eng.run_step()
        if c.context:
            self._ctx[...] = buf[..., -c.context :]
        if c.output.time_axis is not None:
            return np.take(y, 0, axis=c.output.time_axis)  # (B, 1, out) -> (B, out), a copy
        return y.copy()

    def _feed_steps(self, slices: list[np.ndarray]) -> np.ndarray:
        """Step through validated slices; any failure restores the state from before the call."""
        before = self._get_state()
        try:
            ys = []
            for sl in slices:
                y = self._step_impl(sl)
                self._check_finite(y, "output")
                ys.append(y)
            return np.stack(ys, axis=1)
        except BaseException:
            self._set_state(before)
            raise


class _Guard:
    """``with session._guard(what):`` one call at a time, on an open session."""

    __slots__ = ("sess", "what")

    def __init__(self, sess: StreamingSession, what: str) -> None:
        self.sess, self.what = sess, what

    def __enter__(self) -> None:
        if not self.sess._busy.acquire(False):
            raise self.sess._concurrent(self.what)
        if self.sess._closed and self.what != "close":
            self.sess._busy.release()
            self.sess._require_open(self.what)

    def __exit__(self, *exc: object) -> None:
        self.sess._busy.release()
