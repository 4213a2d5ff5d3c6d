"""Run an ONNX file with the contract's ``(x, state) -> (y, state)`` signature in numpy."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from rnnx.runtime import StreamingSession
from rnnx.runtime.backend import TOOL_OPTIONS, open_graph
from rnnx.spec import ModelSpec

Runner = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def onnx_runner(model: str | bytes, spec: ModelSpec) -> Runner:
    """A CPU onnxruntime session wrapped as a runner (``model``: a path or serialized bytes).

    One thread, onnxruntime's own logging off (failures surface as exceptions), the session
    options of the spec's precision (:func:`rnnx.runtime.backend.session_options`).
    """
    sess = open_graph(model, spec.precision)
    outputs = [spec.output.name, *(s.output for s in spec.state)]

    def run(x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        feed = {spec.input.name: x, **{s.input: v for s, v in zip(spec.state, state)}}
        y, *new = sess.run(outputs, feed)
        return y, new

    return run


def session_runner(path: str, spec: ModelSpec) -> Runner:
    """An ONNX file run through :class:`rnnx.runtime.StreamingSession`: the code users deploy.

    Streamable models: ``set_state`` then ``feed`` then ``get_state`` (IO bindings,
    double-buffered states); bidirectional ones: one plain call on the session's backend.
    One session per batch size, closed when the runner is garbage-collected.
    """
    options = TOOL_OPTIONS  # one thread (parity graphs are tiny), onnxruntime's logging off
    sessions: dict[int, StreamingSession] = {}
    outputs = [spec.output.name, *(s.output for s in spec.state)]

    def session(batch: int) -> StreamingSession:
        if batch not in sessions:
            sessions[batch] = StreamingSession(path, options=options, batch_size=batch)
        return sessions[batch]

    def run(x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        sess = session(x.shape[spec.input.batch_axis] if spec.streamable else 1)
        if not spec.streamable:
            feed = {spec.input.name: x, **{s.input: v for s, v in zip(spec.state, state)}}
            y, *new = sess.backend.run(outputs, feed)
            return y, new
        sess.set_state({s.name: v for s, v in zip(spec.state, state)})
        y = sess.feed(x)
        got = sess.get_state()
        return y, [got[s.name] for s in spec.state]

    def close_all() -> None:
        for s in sessions.values():
            s.close()

    weakref.finalize(run, close_all)
    return run


__all__ = ["Runner", "onnx_runner", "session_runner"]
