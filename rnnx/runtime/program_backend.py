"""A step program (torch.export ``.pt2``, ExecuTorch ``.pte``) behind the runtime's backend seam.

Both formats hold one time step with explicit state: ``(x_t, *state) -> (y_t, *new_state)``
(``x_t`` is ``x`` without its time axis). :class:`StepProgramBackend` presents that program
with the contract's signature, ``(x, *state) -> (y, *new_state)`` over any number of steps,
by running the step once per time step and carrying the state between calls: the time loop
stays in the runtime, so ``StreamingSession``/``StreamPool`` (step, feed, snapshots, pools)
work unchanged. Buffers are numpy arrays on the host; the contract comes from the spec the
program carries (``rnnx.spec``), checked like an ONNX file's.

The engine itself is imported only when such a file is opened
(:func:`rnnx.runtime.backend.open_backend` picks the opener by suffix), so the runtime still
imports nothing but numpy and onnxruntime otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnx.atomic import path_kind
from rnnx.errors import ModelFileError, ShapeError, SpecError
from rnnx.runtime.tensor_info import TensorInfo
from rnnx.spec import METADATA_KEY, ModelSpec

logger = logging.getLogger(__name__)
StepFn = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]  # (x_t, *state) -> (y_t, *state)


@dataclass
class ProgramBinding:
    """Buffers bound to one call: inputs in the program's order, outputs by name (None: allocated)."""

    inputs: list[np.ndarray]  # x, then each state input, in the contract's order
    outputs: list[np.ndarray | None]  # y, then each state output; None: fetch() returns a new array
    results: list[np.ndarray] = field(default_factory=list)  # the last run's outputs


def closed_run(binding: Any) -> None:
    """``run_bound`` of a closed program backend."""
    raise RuntimeError("backend is closed")


def require_file(path: Path, fmt: str) -> None:
    """Raise ModelFileError unless ``path`` is a regular file (the message says what is there)."""
    if not path.is_file():
        raise ModelFileError(f"model: expected {fmt} file, got {path_kind(path)} at {path}")


class StepProgramBackend:
    """A one-step program as a :class:`rnnx.runtime.backend.Backend` over whole chunks.

    Args:
        path: the program file (named in errors).
        spec: the contract the program carries (must be streamable: a step program).
        step: runs one step: ``[x_t, *state] -> [y_t, *new_state]`` (host arrays).
        engine: what runs it, for messages ("torch.export", "ExecuTorch").
        max_batch: the largest batch the program takes (ExecuTorch plans memory for a bound), or None.
    """

    device = "cpu"
    device_id = 0

    def __init__(self, path: Path, spec: ModelSpec, step: StepFn, engine: str, max_batch: int | None = None) -> None:
        if not spec.streamable or spec.input.time_axis is None:
            raise SpecError(
                f"{path}: a step program needs a streamable model with a time axis "
                f"(its {METADATA_KEY} says streamable={spec.streamable})"
            )
        self.path, self.spec, self.engine, self.max_batch = path, spec, engine, max_batch
        self._time_axis: int = spec.input.time_axis
        self._step: StepFn | None = step
        self._in = [spec.input.name, *(s.input for s in spec.state)]
        self._out = [spec.output.name, *(s.output for s in spec.state)]
        self.run_bound: Callable[[Any], None] = self._run_bound

    # -- description ---------------------------------------------------------------------
    def inputs(self) -> list[TensorInfo]:
        return [
            TensorInfo.of(self.spec.input),
            *(TensorInfo.of(s, s.input) for s in self.spec.state),
        ]

    def outputs(self) -> list[TensorInfo]:
        return [
            TensorInfo.of(self.spec.output),
            *(TensorInfo.of(s, s.output) for s in self.spec.state),
        ]

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: self.spec.to_json()}

    # -- buffers -------------------------------------------------------------------------
    def alloc(self, shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
        return np.zeros(tuple(shape), dtype)

    def read(self, buf: np.ndarray) -> np.ndarray:
        return buf.copy()

    def write(self, buf: np.ndarray, value: np.ndarray) -> None:
        np.copyto(buf, value)

    # -- calls ---------------------------------------------------------------------------
    def _chunk(self, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """The contract's call over every step of ``x``: the step program once per step."""
        step = self._step
        if step is None:
            raise RuntimeError("backend is closed")
        t_in, t_out = self._time_axis, self.spec.output.time_axis
        batch = x.shape[self.spec.input.batch_axis]
        if self.max_batch is not None and batch > self.max_batch:
            raise ShapeError(
                f"{self.spec.input.name}: expected a batch of at most {self.max_batch} (the "
                f"{self.engine} program's bound), got {batch}"
            )
        ys = []
        for t in range(x.shape[t_in]):
            y_t, *state = step([np.ascontiguousarray(x.take(t, axis=t_in)), *state])
            ys.append(np.asarray(y_t))
        if not ys:
            raise ValueError(f"{self.spec.input.name}: expected at least one time step, got 0")
        y = np.stack(ys, axis=t_out if t_out is not None else 1)
        return [y, *(np.asarray(s) for s in state)]

    def bind(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> ProgramBinding:
        missing = [n for n in self._in if n not in inputs]
        if missing:
            raise SpecError(f"bind: inputs {missing} are not bound (the program takes {self._in})")
        return ProgramBinding([inputs[n] for n in self._in], [outputs.get(n) for n in self._out])

    def _run_bound(self, b: ProgramBinding) -> None:
        results = self._chunk(b.inputs[0], list(b.inputs[1:]))
        for buf, value in zip(b.outputs, results, strict=True):
            if buf is not None:
                np.copyto(buf, value)
        b.results = results

    def fetch(self, bound: ProgramBinding) -> list[np.ndarray]:
        return [r.copy() if buf is None else buf.copy() for buf, r in zip(bound.outputs, bound.results, strict=True)]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self._in if n not in feeds]
        if missing:
            raise SpecError(f"run: expected feeds {self._in}, missing {missing}")
        values = self._chunk(np.asarray(feeds[self._in[0]]), [np.asarray(feeds[n]) for n in self._in[1:]])
        results = dict(zip(self._out, values, strict=True))
        return [results[n] for n in outputs]

    def close(self) -> None:
        self._step = None
        self.run_bound = closed_run
