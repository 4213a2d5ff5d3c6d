"""rnnx's runtime inside Triton's python backend (``rnnx export --format triton --triton-backend python``).

Triton's sequence batcher routes every request of a sequence to the same model instance
and passes the sequence flags as control inputs (START, READY, END) beside the data
input. Triton's implicit state does nothing on the python backend, so the model keeps the
state itself: :class:`TritonSequences` holds one :class:`~rnnx.runtime.StreamPool` per
model instance and one pool stream per correlation id.

- START opens the sequence's stream (or zeroes it when the id is already open);
- a request of one time step joins the others of the same ``execute()`` in one batched
  pool step; chunks of T > 1 steps of the same length run as one batch on the main graph,
  from and back to their streams' states;
- END closes the stream after its step; READY=0 (an empty ``direct`` slot, correlation
  id 0) is answered with zeros and touches no state;
- a sequence idle for longer than ``max_sequence_idle_microseconds`` is closed (Triton
  releases its slot at the same deadline);
- a bad request gets an error naming the input, expected and received value; its own
  state is left as it was and every other request of the batch runs.

:class:`TritonPythonModel` is the python backend's entry point; the repository's
``model.py`` only imports it, so the logic is the installed rnnx's (the server's venv needs
``rnnx[cpu]`` and ``numpy<2``). This module imports ``triton_python_backend_utils`` only
inside the server.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnx.errors import RnnxError, ShapeError, UnknownStreamError
from rnnx.runtime.pool import StreamPool
from rnnx.runtime.session import StreamingSession
from rnnx.runtime.validate import check_token_ids

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"  # the rnnx export beside model.py (its step graph too, when it has one)
PARAMETER_MODEL = "rnnx_model_file"  # config.pbtxt parameter naming another file in the version folder
CHUNK_SESSIONS = 8  # chunk sessions kept open per instance (batch sizes 1, 2, 4, ... 128)
Result = np.ndarray | Exception  # one request's output (1, T, out...), or its error (RnnxError: the user's)


@dataclass(frozen=True)
class SequenceRequest:
    """One request as Triton's sequence batcher delivers it."""

    corrid: int  # correlation id (0: an empty slot of the direct strategy)
    start: bool  # CONTROL_SEQUENCE_START
    ready: bool  # CONTROL_SEQUENCE_READY (False: an empty slot)
    end: bool  # CONTROL_SEQUENCE_END
    x: np.ndarray | None  # the data input, (1, T, features...)


class TritonSequences:
    """The state of every live sequence of one model instance.

    Args:
        path: the rnnx ``.onnx`` file.
        max_batch: most one-step requests stepped together (Triton's ``max_batch_size``).
        idle_timeout_us: a sequence idle this long is closed (``max_sequence_idle_microseconds``).
        max_sequences: most live sequences of this instance.
        clock: seconds, monotonic (tests pass their own).

    Example::

        seqs = TritonSequences("model.onnx", max_batch=8, idle_timeout_us=60_000_000)
        (y,) = seqs.execute([SequenceRequest(7, True, True, False, x)])  # x: (1, 1, F)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_batch: int = 64,
        idle_timeout_us: int = 60_000_000,
        max_sequences: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.pool = StreamPool(self.path, max_batch=max_batch, max_streams=max_sequences)
        self.idle_s = idle_timeout_us / 1e6
        self._clock = clock
        self._seen: OrderedDict[int, float] = OrderedDict()  # open sequence -> last request time, oldest first
        self._chunks: dict[int, StreamingSession] = {}  # batch size -> session for T > 1 requests, made on demand
        c = self.pool.contract
        self.input_name = c.input.name
        self._vocab = c.vocab_size
        shape = c.output_shape(1, 1)  # (1, 1, out...) when known
        self._out_shape: tuple[int, ...] = tuple(shape[2:]) if shape is not None else ()
        self._out_dtype = np.dtype(c.output.dtype)

    @property
    def sequences(self) -> list[int]:
        """Correlation ids of the open sequences, least recently used first."""
        return list(self._seen)

    @property
    def chunk_sessions(self) -> list[int]:
        """Batch sizes of the sessions kept open for chunk requests (T > 1), least recently used
        first: powers of two (chunks of one length run together, padded up to one), at most
        ``CHUNK_SESSIONS`` of them."""
        return list(self._chunks)

    def close(self) -> None:
        """Release the pool and the chunk session."""
        self.pool.close()
        for sess in self._chunks.values():
            sess.close()
        self._chunks.clear()

    def execute(self, requests: Sequence[SequenceRequest]) -> list[Result]:
        """Answer one ``execute()`` batch: an output (1, T, out...) or an error per request."""
        self._evict_idle()
        results: list[Result | None] = [None] * len(requests)
        steps: list[int] = []  # requests of one time step, run together
        chunks: list[int] = []  # requests of T > 1 steps, run together by length
        pending: set[int] = set()  # their correlation ids
        undo: dict[int, Callable[[], None]] = {}
        for k, req in enumerate(requests):
            if req.corrid == 0 or not req.ready:
                results[k] = self._empty(req)
                continue
            if req.corrid in pending:  # one sequence twice: keep the order
                self._run(requests, steps, chunks, results, undo)
                steps, chunks, pending = [], [], set()
            try:
                t = self._steps(req)
                undo[k] = self._begin(req)
            except RnnxError as e:
                results[k] = _named(req, e)
                continue
            (steps if t == 1 else chunks).append(k)
            pending.add(req.corrid)
        self._run(requests, steps, chunks, results, undo)
        now = self._clock()
        for req in requests:
            if req.corrid and req.ready and req.corrid in self._seen:
                if req.end:
                    self._close(req.corrid)
                else:
                    self._seen[req.corrid] = now
                    self._seen.move_to_end(req.corrid)
        return [r for r in results if r is not None]

    # -- one request -----------------------------------------------------------------
    def _steps(self, req: SequenceRequest) -> int:
        x = req.x
        if x is None:
            raise ShapeError(f"{self.input_name}: expected an input tensor, got none")
        if x.ndim < 2 or x.shape[0] != 1 or x.shape[1] < 1:
            raise ShapeError(
                f"{self.input_name}: expected shape (1, T >= 1, features...) (one sequence, "
                f"T time steps), got {tuple(x.shape)}"
            )
        check_token_ids(self.input_name, x, self._vocab)  # the runtime's one range rule
        return int(x.shape[1])

    def _begin(self, req: SequenceRequest) -> Callable[[], None]:
        """Open or reset the request's stream at START; returns how to undo that."""
        cid = req.corrid
        if not req.start:
            if cid not in self._seen:
                raise UnknownStreamError(
                    f"sequence {cid}: not open; its first request must set sequence_start (or it was "
                    f"idle longer than max_sequence_idle_microseconds, {self.idle_s:g} s, and was released)"
                )
            return _nothing
        if cid in self._seen:
            before = self.pool.get_state(cid)
            self.pool.reset(cid)
            return lambda: self.pool.set_state(cid, before)
        self.pool.open(cid)
        self._seen[cid] = self._clock()
        return lambda: self._close(cid)

    def _session(self, batch: int) -> StreamingSession:
        """A batch-``batch`` session for chunks (the last few sizes kept open)."""
        sess = self._chunks.pop(batch, None) or StreamingSession(self.path, batch_size=batch)
        self._chunks[batch] = sess  # most recently used last
        while len(self._chunks) > CHUNK_SESSIONS:
            self._chunks.pop(next(iter(self._chunks))).close()
        return sess

    def _run(
        self,
        requests: Sequence[SequenceRequest],
        steps: list[int],
        chunks: list[int],
        results: list[Result | None],
        undo: dict[int, Callable[[], None]],
    ) -> None:
        """Run the collected requests: one batched pool step for every one-step request, and the
        chunks of each length as one batch on the main graph, from and back to the pool's
        states; a batch with a bad request (nothing changed) runs each of its requests alone."""
        if steps:
            self._isolating([steps], requests, results, undo, self._step_requests)
        by_length: dict[int, list[int]] = {}
        for k in chunks:
            x = requests[k].x
            by_length.setdefault(0 if x is None else x.shape[1], []).append(k)
        self._isolating(list(by_length.values()), requests, results, undo, self._feed_requests)

    def _feed_requests(self, reqs: list[SequenceRequest]) -> list[np.ndarray]:
        return self._feed([r.corrid for r in reqs], [r.x for r in reqs if r.x is not None])

    def _feed(self, cids: list[int], xs: list[np.ndarray]) -> list[np.ndarray]:
        """``feed`` the stacked chunks of ``cids`` (each (1, T, F...)); their states move through.

        The batch is padded with zero rows to a power of two, so a handful of sessions serve
        every batch size (rows do not mix: each row's result is the one it gets alone).
        """
        n = len(cids)
        size = 1 << (n - 1).bit_length()  # n rounded up to a power of two
        sess = self._session(size)
        axes = {s.name: s.batch_axis for s in self.pool.contract.states}
        states = [self.pool.get_state(cid) for cid in cids]
        pad = {name: np.zeros_like(states[0][name]) for name in axes}
        sess.set_state(
            {
                name: np.concatenate([st[name] for st in states] + [pad[name]] * (size - n), axis=ax)
                for name, ax in axes.items()
            }
        )
        x = np.concatenate(xs + [np.zeros_like(xs[0])] * (size - n))  # (size, T, F...)
        y = sess.feed(x)  # (size, T, out...)
        new = sess.get_state()
        for row, cid in enumerate(cids):
            self.pool.set_state(cid, {name: np.take(new[name], [row], axis=ax) for name, ax in axes.items()})
        return [y[row : row + 1] for row in range(n)]

    def _step_requests(self, reqs: list[SequenceRequest]) -> list[np.ndarray]:
        x = np.concatenate([r.x[:, 0] for r in reqs if r.x is not None])  # (n, features...), checked
        out = self.pool.step_batch([r.corrid for r in reqs], x).array  # (n, out...)
        return [np.array(out[row][None, None]) for row in range(len(reqs))]  # (1, 1, out...), copies

    @staticmethod
    def _isolating(
        groups: list[list[int]],
        requests: Sequence[SequenceRequest],
        results: list[Result | None],
        undo: dict[int, Callable[[], None]],
        run: Callable[[list[SequenceRequest]], list[np.ndarray]],
    ) -> None:
        """Run each group of requests in one call; a group that fails (nothing changed) is split
        so each request runs alone and only the culprit gets the error (its START undone)."""
        while groups:
            group = groups.pop()
            reqs = [requests[k] for k in group]
            try:
                outs = run(reqs)
            except Exception as e:  # noqa: BLE001 - nothing changed: find the request that fails, answer it alone
                if len(group) > 1:
                    groups.extend([k] for k in group)
                    continue
                undo[group[0]]()
                results[group[0]] = _failed(reqs[0], e)
                continue
            for k, y in zip(group, outs, strict=True):
                results[k] = y

    # -- bookkeeping -----------------------------------------------------------------
    def _empty(self, req: SequenceRequest) -> np.ndarray:
        """The answer to an empty slot: zeros, no state touched."""
        t = int(req.x.shape[1]) if req.x is not None and req.x.ndim >= 2 else 1
        return np.zeros((1, t, *self._out_shape), self._out_dtype)

    def _close(self, cid: int) -> None:
        self._seen.pop(cid, None)
        self.pool.close(cid)

    def _evict_idle(self) -> None:
        deadline = self._clock() - self.idle_s
        while self._seen:
            cid, seen = next(iter(self._seen.items()))
            if seen > deadline:
                break
            logger.info("sequence %d: idle for more than %g s, closed", cid, self.idle_s)
            self._close(cid)


def _nothing() -> None:
    return None


def _failed(req: SequenceRequest, e: Exception) -> Exception:
    """A user's error named for its sequence; anything else is our bug: logged with its traceback."""
    if isinstance(e, RnnxError):
        return _named(req, e)
    logger.error("sequence %d: internal error", req.corrid, exc_info=e)
    return e


def _named(req: SequenceRequest, e: RnnxError) -> RnnxError:
    """The error with the sequence's id in front (once), chained to the original."""
    msg = str(e).removeprefix(f"stream {req.corrid}: ")
    if msg.startswith(f"sequence {req.corrid}: "):
        return e
    named = type(e)(f"sequence {req.corrid}: {msg}")
    named.__cause__ = e
    return named


# ---------------------------------------------------------------------------- Triton's entry point


class TritonPythonModel:
    """The python backend's model: one :class:`TritonSequences` per instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open the version folder's rnnx file; read the batcher's options from the config."""
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        seq = config.get("sequence_batching", {})
        self.seqs = TritonSequences(
            folder / (params.get(PARAMETER_MODEL) or MODEL_FILE),
            max_batch=max(1, int(config.get("max_batch_size", 1))),
            idle_timeout_us=int(seq.get("max_sequence_idle_microseconds", 1_000_000)),
        )
        self.output_name = config["output"][0]["name"]
        logger.info("rnnx model %s: %s", args.get("model_name"), self.seqs.path)

    def execute(self, requests: list) -> list:
        """One response per request, in order; a bad request gets a TritonError."""
        import triton_python_backend_utils as pb_utils  # only inside the server

        parsed = [self._parse(pb_utils, r) for r in requests]
        out = []
        for res in self.seqs.execute(parsed):
            if isinstance(res, Exception):
                user = isinstance(res, RnnxError)  # a client's error (INVALID_ARG), or ours (INTERNAL)
                msg = str(res) if user else f"internal error: {type(res).__name__}: {res}"
                code = getattr(pb_utils.TritonError, "INVALID_ARG" if user else "INTERNAL", None)
                error = pb_utils.TritonError(msg) if code is None else pb_utils.TritonError(msg, code)
                out.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
            else:
                out.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, res)]))
        return out

    def finalize(self) -> None:
        """Close every sequence and the sessions."""
        self.seqs.close()

    def _parse(self, pb_utils: Any, request: Any) -> SequenceRequest:
        def flag(name: str, default: bool) -> bool:
            t = pb_utils.get_input_tensor_by_name(request, name)
            return default if t is None else bool(t.as_numpy().reshape(-1)[0])

        x = pb_utils.get_input_tensor_by_name(request, self.seqs.input_name)
        return SequenceRequest(
            corrid=int(request.correlation_id()),
            start=flag("START", False),
            ready=flag("READY", True),
            end=flag("END", False),
            x=None if x is None else x.as_numpy(),
        )


__all__ = ["MODEL_FILE", "PARAMETER_MODEL", "SequenceRequest", "TritonPythonModel", "TritonSequences"]
