"""StreamingSession: run an exported recurrent model one step (or one chunk) at a time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import onnxruntime as ort

from rnnx.errors import ModelFileError, NotStreamableError, SpecError
from rnnx.runtime.contract import CONTEXT_KEY, Contract, read_contract
from rnnx.runtime.engine import StepEngine
from rnnx.runtime.providers import Providers, check_session_providers, device_of, resolve_providers
from rnnx.runtime.state_io import load_state_file, save_state_file
from rnnx.runtime.validate import check_input, check_state

PathLike = Union[str, "os.PathLike[str]"]


def open_session(path: PathLike, providers: Providers = "cpu",
                 session_options: Optional[ort.SessionOptions] = None) -> ort.InferenceSession:
    """Load an ONNX file into onnxruntime with the resolved providers.

    Raises:
        ModelFileError: missing, unreadable or non-ONNX file. ProviderError: see providers.
    """
    resolved = resolve_providers(providers)
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model: expected an ONNX file, got {'a directory' if p.is_dir() else 'no file'} at {p}")
    try:
        sess = ort.InferenceSession(str(p), sess_options=session_options, providers=resolved)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"model {p}: not a loadable ONNX file ({first})") from None
    check_session_providers(resolved, sess)
    return sess


class StreamingSession:
    """Stream an exported recurrent model step by step, carrying its state between calls.

    The state contract (names, shapes of the carried tensors) comes from the file's
    ``rnnx.spec`` metadata; foreign ONNX files are described with ``state_map``.
    States live in preallocated buffers (on the GPU with CUDA) and are never copied
    per step. A session serves ONE thread at a time: guard it with a lock or use
    :class:`~rnnx.runtime.StreamPool` for concurrent streams.

    Example:
        A complete streaming loop::

            import numpy as np
            from rnnx.runtime import StreamingSession

            sess = StreamingSession("model.onnx")          # batch_size=1, CPU
            for frame in np.random.rand(100, 16).astype(np.float32):
                y = sess.step(frame[None])                  # (1, 16) -> (1, 1)
            sess.save_state("state.npz")                    # resume later / elsewhere
            ys = sess.feed(np.zeros((1, 64, 16), np.float32))  # 64 steps in one call
            sess.reset()                                    # start a new sequence

    Args:
        path: the ``.onnx`` file.
        providers: "cpu", "cuda", "auto" or a list of onnxruntime provider names.
        batch_size: number of sequences stepped together.
        state_map: ``{state_input: state_output}`` for ONNX files not exported by rnnx.
        constants: ``{input: value}`` fed unchanged on every call (e.g. ``{"sr": np.array(16000)}``).
        context: keep the last K values of the data input's last axis and prepend them to
            the next call (zeros at the start); only for inputs without a time axis.
        session_options: an ``onnxruntime.SessionOptions`` (threads, optimisation level).
        state_shapes: ``{state_input: (2, "batch", 64)}`` where the graph's state shape
            does not tell the batch axis.

    Raises:
        ModelFileError, SpecError, ProviderError: the file, contract or providers are unusable.
    """

    def __init__(self, path: PathLike, *, providers: Providers = "cpu", batch_size: int = 1,
                 state_map: Optional[Mapping[str, str]] = None,
                 constants: Optional[Mapping[str, Any]] = None, context: int = 0,
                 session_options: Optional[ort.SessionOptions] = None,
                 state_shapes: Optional[Mapping[str, Sequence[Any]]] = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SpecError(f"batch_size: expected a positive int, got {batch_size!r}")
        self.path = Path(path)
        self.session = open_session(path, providers, session_options)
        self.contract: Contract = read_contract(self.session, state_map=state_map, constants=constants,
                                                context=context, state_shapes=state_shapes)
        if context and self.contract.input.time_axis is not None:
            raise SpecError(f"context: left context applies to inputs without a time axis; "
                            f"{self.contract.input.name} has one (axis {self.contract.input.time_axis})")
        self.batch_size = batch_size
        self.device = device_of(self.session)
        self._engine = StepEngine(self.session, self.contract, batch_size, self.device)
        self._ctx = np.zeros((batch_size, context), self.contract.input.dtype)
        self._fast: Optional[tuple] = None  # step()'s validated fast path, see _fast_path

    # -- properties ------------------------------------------------------------------
    @property
    def spec(self):  # -> Optional[ModelSpec]
        """The file's :class:`rnnx.spec.ModelSpec`, or None for foreign models."""
        return self.contract.spec

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
            NotStreamableError, ShapeError, DTypeError. The state is unchanged on error.
        """
        fast = self._fast
        if fast is not None and type(x) is np.ndarray and x.shape == fast[0] and x.dtype == fast[1]:
            # the common case, already validated in full once: same shape and dtype as last time
            np.copyto(fast[2], x)
            self._engine.run_step()
            return fast[3].copy()  # (B, out...)
        self._require_streamable("step")
        arr = check_input(self.contract, x, self.batch_size, with_time=False)
        y = self._step_impl(arr)
        self._fast = self._fast_path(arr)
        return y

    def _fast_path(self, arr: np.ndarray) -> Optional[tuple]:
        """(shape, dtype, x view, y view) of the bound step buffers, when a plain copy suffices."""
        c, eng = self.contract, self._engine
        if c.context or c.input.time_axis is None or c.output.time_axis is None or eng.y_buf is None:
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
            NotStreamableError, ShapeError, DTypeError. The state is unchanged on error.
        """
        self._require_streamable("feed")
        io = self.contract.input
        if io.time_axis is None:  # foreign: step through axis 1 of the chunk
            arr = np.asarray(chunk)
            if arr.ndim < 2:
                check_input(self.contract, arr, self.batch_size, with_time=False)
            slices = [check_input(self.contract, arr[:, t], self.batch_size, with_time=False)
                      for t in range(arr.shape[1])]
            return self._feed_steps(slices)
        arr = check_input(self.contract, chunk, self.batch_size, with_time=True)
        return self._engine.run_chunk(arr)

    def run(self, x: Any) -> np.ndarray:
        """Run a whole sequence from zero state; the session's own state is untouched.

        Works for every model, including the non-streamable (bidirectional) ones. Any
        batch size is accepted.

        Args:
            x: ``(batch, time, features...)`` (foreign models: the data input as given).

        Returns:
            The full output, e.g. ``(batch, time, out...)``.
        """
        c = self.contract
        arr = check_input(c, x, None, with_time=True)
        batch = arr.shape[c.input.batch_axis]
        if c.context:
            arr = np.concatenate([np.zeros(arr.shape[:-1] + (c.context,), arr.dtype), arr], axis=-1)
        feeds = {c.input.name: arr, **c.constants}
        feeds.update({s.input: np.zeros(s.concrete_shape(batch), s.dtype) for s in c.states})
        return self.session.run([c.output.name], feeds)[0]

    # -- state -----------------------------------------------------------------------
    def reset(self) -> None:
        """Zero every state (and the left context): the next step starts a new sequence."""
        self._engine.zero()
        self._ctx[...] = 0

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the current states, keyed by state name."""
        out = {s.name: self._engine.get(i) for i, s in enumerate(self.contract.states)}
        if self.contract.context:
            out[CONTEXT_KEY] = self._ctx.copy()
        return out

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Replace the whole state (as returned by :meth:`get_state`).

        Raises:
            StateError: unknown or missing names, wrong shapes or dtypes (state unchanged).
        """
        checked = check_state(self.contract, state, self.batch_size)
        for i, s in enumerate(self.contract.states):
            self._engine.set(i, checked[s.name])
        if self.contract.context:
            self._ctx[...] = checked[CONTEXT_KEY]

    def save_state(self, path: PathLike) -> Path:
        """Write the state to an ``.npz`` file atomically; returns the path."""
        return save_state_file(path, self.get_state())

    def load_state(self, path: PathLike) -> None:
        """Load a state file written by :meth:`save_state` (no pickle, contents checked).

        Raises:
            FileNotFoundError, StateError.
        """
        self.set_state(load_state_file(path))

    # -- implementation ----------------------------------------------------------------
    def _require_streamable(self, what: str) -> None:
        if not self.contract.streamable:
            raise NotStreamableError(
                f"{what}: {self.path.name} is not streamable (bidirectional: each output needs "
                f"the whole sequence); use run(x) on the whole sequence instead")

    def _graph_step_shape(self, arr: np.ndarray) -> tuple[tuple[int, ...], Optional[tuple[int, ...]]]:
        c = self.contract
        x_shape = list(arr.shape)
        if c.input.time_axis is not None:
            x_shape.insert(c.input.time_axis, 1)
        elif c.context:
            x_shape[-1] += c.context
        return tuple(x_shape), c.output_shape(self.batch_size)  # type: ignore[return-value]

    def _step_impl(self, arr: np.ndarray) -> np.ndarray:
        c, eng = self.contract, self._engine
        buf = eng.step_buffer(*self._graph_step_shape(arr))
        if c.input.time_axis is not None:
            np.copyto(buf.reshape(arr.shape), arr)  # (B, 1, F...) viewed as (B, F...)
        elif c.context:
            buf[..., :c.context] = self._ctx
            buf[..., c.context:] = arr
        else:
            np.copyto(buf, arr)
        y = eng.run_step()
        if c.context:
            self._ctx[...] = buf[..., -c.context:]
        if c.output.time_axis is not None:
            return np.take(y, 0, axis=c.output.time_axis)  # (B, 1, out) -> (B, out), a copy
        return y.copy()

    def _feed_steps(self, slices: list[np.ndarray]) -> np.ndarray:
        before = self.get_state()
        try:
            return np.stack([self._step_impl(s) for s in slices], axis=1)
        except BaseException:
            self.set_state(before)
            raise
