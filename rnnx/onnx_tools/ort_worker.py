"""Run an ONNX graph in a child process, so a graph that crashes onnxruntime cannot kill us.

``export_onnx(strategy="auto")`` probes candidate graphs it has just built; some of them
(a Python loop traced at one length and run at another) make onnxruntime abort or
raise SIGFPE, which no ``try`` can catch. The probe therefore runs each candidate in a
child Python that imports only numpy, onnxruntime and rnnx's runtime backend (where every
session's options are decided; 0.2 to 1 s to start) and talks
to it over pipes (a JSON line per array, then its raw bytes: no pickle either way).

One child serves the whole process (started on first use, replaced after a crash), so
the start-up is paid once. The parent side is :func:`isolated_runner`; this file is
also the child's script (run by path with the package on its path: it imports
:mod:`rnnx.runtime.backend`, never torch or onnx).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rnnx.runtime.backend import OrtBackend


class WorkerDied(RuntimeError):
    """The child process running onnxruntime exited (crashed) in the middle of a request."""


def _write(stream: IO[bytes], arrays: list[np.ndarray]) -> None:
    """Each array as one JSON line ``{"dtype", "shape"}`` followed by its raw bytes."""
    for a in arrays:
        a = np.ascontiguousarray(a)
        stream.write(json.dumps({"dtype": a.dtype.str, "shape": list(a.shape)}).encode() + b"\n")
        stream.write(a.tobytes())
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"stream ended {left} bytes short of {size}")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read(stream: IO[bytes], count: int) -> list[np.ndarray]:
    arrays = []
    for _ in range(count):
        line = stream.readline()
        if not line:
            raise EOFError("stream ended")
        head = json.loads(line)
        dtype = np.dtype(head["dtype"])
        if dtype.hasobject:  # plain numbers only: nothing that could need pickle
            raise ValueError(f"dtype: expected a numeric dtype, got {dtype}")
        shape = tuple(int(d) for d in head["shape"])
        data = _read_exact(stream, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape))
    return arrays


class OrtWorker:
    """A child Python serving onnxruntime sessions over pipes; one graph loaded at a time.

    Raises (from a call):
        WorkerDied: the child crashed; the worker is dead and :func:`isolated_runner`
            starts a fresh one next time.
        RuntimeError: onnxruntime raised an ordinary error in the child (it keeps serving).
    """

    def __init__(self) -> None:
        debug = os.environ.get("RNNX_WORKER_DEBUG")  # let the child's stderr through
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
        )
        if self._proc.stdin is None or self._proc.stdout is None:  # never: both were asked as pipes
            self._proc.kill()
            raise RuntimeError("onnxruntime worker: the child was started without its pipes")
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout
        self.dead = ""  # why it died; "" while alive
        self._outputs = 0

    def _request(self, head: dict[str, Any], arrays: list[np.ndarray], replies: int) -> list[np.ndarray]:
        if self.dead:
            raise WorkerDied(self.dead)
        try:
            self._stdin.write(json.dumps(head).encode() + b"\n")
            _write(self._stdin, arrays)
            line = self._stdout.readline()
            if not line:
                raise EOFError("no reply")
            reply = json.loads(line)
            if not reply["ok"]:
                raise RuntimeError(reply["error"])
            return _read(self._stdout, replies)
        except (BrokenPipeError, EOFError, OSError, ValueError) as e:
            self._died()
            raise AssertionError("unreachable") from e  # _died raises

    def _died(self) -> None:
        if self._proc.poll() is None:  # alive but talking nonsense: end it
            self._proc.kill()
        code = self._proc.wait()
        self.close()  # release the pipes
        how = (
            f"signal {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"exit code {code}"
        )
        self.dead = f"onnxruntime crashed ({how}) while running the graph"
        raise WorkerDied(self.dead)

    def load(self, model: bytes, inputs: list[str], outputs: list[str], precision: str = "fp32") -> None:
        """Create the session for ``model`` (replacing the previous one), with the session
        options the runtime uses for a graph of this ``precision`` (see rnnx.runtime.precision)."""
        self._outputs = len(outputs)
        self._request(
            {"op": "load", "inputs": list(inputs), "outputs": list(outputs), "precision": precision},
            [np.frombuffer(model, dtype=np.uint8)],
            0,
        )

    def __call__(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run the loaded graph: the contract's ``(x, state) -> (y, state)``."""
        y, *new = self._request({"op": "run"}, [x, *state], self._outputs)
        return y, new

    def close(self) -> None:
        """End the child (it exits when its stdin closes)."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                stream.close()


_shared: OrtWorker | None = None  # one child per process, started on first use
_lock = threading.Lock()


@contextlib.contextmanager
def isolated_runner(
    model: bytes, inputs: list[str], outputs: list[str], precision: str = "fp32"
) -> Iterator[OrtWorker]:
    """The shared worker with ``model`` loaded, as a runner; a crashed worker is replaced.

    Args:
        model: the serialized ONNX graph.
        inputs: graph input names in call order (``x``, then the state inputs).
        outputs: graph output names in call order (``y``, then the state outputs).
        precision: the graph's precision: fp16 graphs load with the optimisation level the
            runtime caps them at (onnxruntime's default level crashes on some).
    """
    global _shared
    with _lock:  # one graph at a time in the child
        if _shared is None or _shared.dead:
            if _shared is None:
                atexit.register(_close_shared)
            _shared = OrtWorker()
        _shared.load(model, inputs, outputs, precision)
        try:
            yield _shared
        finally:
            if not _shared.dead:
                _shared.load(b"", [], [])  # free the graph, keep the child


def _close_shared() -> None:
    if _shared is not None:
        _shared.close()


def _serve() -> None:  # pragma: no cover - runs in the child process
    from rnnx.runtime.backend import open_graph  # the child imports the runtime's backend, never torch

    inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr (devnull), never into our replies
    sess: OrtBackend | None = None  # the loaded graph's session (None: none loaded, or an empty model)
    names: dict[str, Any] = {"inputs": [], "outputs": []}
    while True:
        line = inp.readline()
        if not line:  # stdin closed: the parent is done
            return
        head = json.loads(line)
        try:
            if head["op"] == "load":
                (model,) = _read(inp, 1)
                sess, names = None, head
                if model.size:  # with the options the runtime gives a graph of this precision
                    sess = open_graph(model.tobytes(), head.get("precision", "fp32"))
                result: list[np.ndarray] = []
            else:
                if sess is None:
                    raise RuntimeError("run: no graph is loaded")
                feed = dict(zip(names["inputs"], _read(inp, len(names["inputs"]))))
                result = sess.run(names["outputs"], feed)
        except Exception as e:  # an ordinary onnxruntime error: report it, keep serving
            out.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
            out.flush()
            continue
        out.write(b'{"ok": true}\n')
        _write(out, result)


if __name__ == "__main__":  # pragma: no cover
    # the package root replaces this script's folder on the path: its modules (graph, triton...)
    # must not shadow top-level packages, and the child imports the same rnnx as its parent
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _serve()
