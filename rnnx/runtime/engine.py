"""Double-buffered state and ping-pong IO bindings: the fast path under StreamingSession.

Two sets of state buffers (0 and 1) and two IO bindings bound once: binding A reads
set 0 and writes set 1, binding B the reverse. A step copies x into a fixed input
buffer, runs the binding of the current set and flips. The current set is only
switched after a successful run, so a failed call leaves the state untouched. On CUDA
the state buffers are device OrtValues: only x and y cross to the host.

With a step graph (:mod:`rnnx.runtime.step_graph`) single steps (and chunks of one time
step) run on its backend, longer chunks on the main graph's; both bind the same two state
sets, so they may alternate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnx.runtime.backend import Backend, closed_run
from rnnx.runtime.contract import Contract

CHUNK_PLANS = 8  # chunk shapes whose buffers and bindings are kept (a few sizes are typical)
_CACHE_MAX_ELEMENTS = 1 << 18  # chunk inputs up to this size keep their buffers and bindings


class StepEngine:
    """State buffers and bindings of one session at a fixed batch size."""

    def __init__(self, backend: Backend, contract: Contract, batch: int, step_backend: Backend | None = None) -> None:
        self.backend, self.contract, self.batch = backend, contract, batch
        self.step_backend = step_backend if step_backend is not None else backend  # runs single steps
        self._run_step = self.step_backend.run_bound  # the per-step fast path
        self.cur = 0  # index of the state set holding the current state
        shapes = [(s.concrete_shape(batch), np.dtype(s.dtype)) for s in contract.states]
        self.vals = [[backend.alloc(sh, dt) for sh, dt in shapes] for _ in range(2)]  # 2 state sets
        self.x_buf: np.ndarray | None = None  # graph-shaped input of one step
        self.y_buf: np.ndarray | None = None  # preallocated output, when its shape is known
        self.bindings: list[Any] = []
        self._chunks: dict[tuple[int, ...], tuple] = {}  # chunk shape -> (x_buf, y_buf, bindings)

    # -- state access ---------------------------------------------------------------
    def get(self, i: int) -> np.ndarray:
        """A host copy of state ``i`` of the current set."""
        return self.backend.read(self.vals[self.cur][i])

    def set(self, i: int, value: np.ndarray) -> None:
        """Overwrite state ``i`` of the current set (value already validated)."""
        self.backend.write(self.vals[self.cur][i], value)

    def state_device(self) -> str:
        """Where the state buffers are: "cpu" (numpy arrays or host values) or onnxruntime's
        device name of its values, lower case ("cuda"); several, comma-separated, if they differ."""
        devices = {"cpu" if isinstance(v, np.ndarray) else str(v.device_name()).lower() for vs in self.vals for v in vs}
        return ",".join(sorted(devices)) if devices else self.backend.device

    def zero(self) -> None:
        for i, s in enumerate(self.contract.states):
            self.set(i, np.zeros(s.concrete_shape(self.batch), s.dtype))

    def close(self) -> None:
        """Drop every buffer and binding (and the bound-run function, which holds the native session)."""
        self.vals, self.bindings, self._chunks = [], [], {}
        self.x_buf = self.y_buf = None
        self._run_step = closed_run

    # -- one step through the bound fast path ----------------------------------------
    def _bind(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...] | None) -> None:
        c = self.contract
        self.x_buf = np.zeros(x_shape, c.input.dtype)
        self.y_buf = None if y_shape is None else np.zeros(y_shape, c.output.dtype)
        self.bindings = [self._binding(self.x_buf, self.y_buf, side, self.step_backend) for side in (0, 1)]

    def step_buffer(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...] | None) -> np.ndarray:
        """The fixed input buffer for a step of graph shape ``x_shape`` (rebinding if needed)."""
        if self.x_buf is None or self.x_buf.shape != x_shape:
            self._bind(x_shape, y_shape)
        return self.x_buf  # type: ignore[return-value]

    def run_step(self) -> np.ndarray:
        """Run the bound step on ``x_buf``; returns the output (a view of a reused buffer)."""
        b = self.bindings[self.cur]
        self._run_step(b)
        self.cur ^= 1
        if self.y_buf is not None:
            return self.y_buf
        return self.step_backend.fetch(b)[0]

    # -- a whole chunk (dynamic time) --------------------------------------------------
    def run_chunk(self, x: np.ndarray) -> np.ndarray:
        """Run the graph once on ``x`` (any time length) from the current state; flips on success.

        Bindings, input and output buffers are made once per chunk shape and reused. A chunk
        of one time step runs on the step graph (when there is one), like a single step.
        """
        x_buf, y_buf, bindings, backend = self._chunk_plan(x.shape)
        np.copyto(x_buf, x)
        b = bindings[self.cur]
        backend.run_bound(b)  # a closed backend's raises
        self.cur ^= 1
        if y_buf is not None:
            return y_buf.copy()
        return backend.fetch(b)[0]

    def _chunk_plan(self, x_shape: tuple[int, ...]) -> tuple:
        plan = self._chunks.get(x_shape)
        if plan is None:
            if len(self._chunks) >= CHUNK_PLANS:  # don't grow without bound
                self._chunks.clear()
            c = self.contract
            x_buf = np.zeros(x_shape, c.input.dtype)
            steps = x_shape[c.input.time_axis] if c.input.time_axis is not None else 1
            y_shape = c.output_shape(self.batch, steps)
            y_buf = None if y_shape is None else np.zeros(y_shape, c.output.dtype)
            backend = self.step_backend if steps == 1 else self.backend  # the step graph takes T=1
            bindings = [self._binding(x_buf, y_buf, side, backend) for side in (0, 1)]
            plan = (x_buf, y_buf, bindings, backend)
            if x_buf.size <= _CACHE_MAX_ELEMENTS:  # keep small plans; a long recording is one-off
                self._chunks[x_shape] = plan
        return plan

    def _binding(self, x_buf: np.ndarray, y_buf: np.ndarray | None, side: int, backend: Backend) -> Any:
        """A binding on ``backend`` reading state set ``side`` and writing the other one."""
        c = self.contract
        ins = {c.input.name: x_buf, **c.constants}
        outs = {c.output.name: y_buf}
        for i, s in enumerate(c.states):
            ins[s.input] = self.vals[side][i]
            outs[s.output] = self.vals[1 - side][i]
        return backend.bind(ins, outs)
