"""A real ``tritonserver`` for the tests: started on 127.0.0.1 with free ports, stopped by its pid.

The server comes from the ``nvidia-pytriton`` wheel in its own venv (``make triton-venv``:
``.venv/triton``, numpy<2, rnnx without extras), or the venv named by ``RNNX_TRITON_VENV``.
When it is missing or the binary cannot start here (glibc, libpython), :func:`start` raises
:class:`Unavailable`; :func:`start_or_skip` turns that into a skip with the reason, or a
failure with ``RNNX_REQUIRE_TRITON=1`` (``make test``). benchmarks/bench_triton.py uses it too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("ort_standin")  # the test-only backend named "onnxruntime"
EXIT_TIMEOUT_S = 3  # open sequences hold the shutdown this long
START_TIMEOUT_S = 90.0


def server_venv() -> Path:
    return Path(os.environ.get("RNNX_TRITON_VENV") or ROOT / ".venv" / "triton")


class Unavailable(RuntimeError):
    """No tritonserver can run here (the reason says why)."""


def start_or_skip(repo: Path, **options: Any) -> Server:
    """:func:`start`, skipping the test (failing it under RNNX_REQUIRE_TRITON=1) when no server can run."""
    import pytest

    try:
        return start(repo, **options)
    except Unavailable as e:
        if os.environ.get("RNNX_REQUIRE_TRITON") == "1":
            pytest.fail(f"tritonserver is required here (RNNX_REQUIRE_TRITON=1): {e}")
        pytest.skip(str(e))


def _server_root(venv: Path) -> Path:
    version = sysconfig.get_python_version()
    return venv / "lib" / f"python{version}" / "site-packages" / "pytriton" / "tritonserver"


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Server:
    """A running tritonserver."""

    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    log: Path
    started_s: float = 0.0  # seconds from launch to ready
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = EXIT_TIMEOUT_S + 20) -> float:
        """SIGTERM, wait (bounded), SIGKILL if it hangs; returns the seconds it took to exit."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
        return time.monotonic() - t0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def start(repo: Path, *, explicit: bool = False, models: Iterable[str] = (), extra_args: Iterable[str] = ()) -> Server:
    """Start tritonserver on ``repo``; returns once it is ready.

    Args:
        repo: the model repository.
        explicit: ``--model-control-mode explicit``: load ``models`` now, others through the API.
        extra_args: more command-line options.

    Raises:
        Unavailable: no server venv, or the binary cannot start on this machine.
        RuntimeError: it exited or was not ready within START_TIMEOUT_S (the log's tail attached).
    """
    venv = server_venv()
    root = _server_root(venv)
    binary = root / "bin" / "tritonserver"
    stub = root / "backends" / "python" / "triton_python_backend_stub"
    if not binary.is_file() or not stub.is_file():
        raise Unavailable(f"no tritonserver with its python stub under {venv} (build it: make triton-venv)")
    tmp = tempfile.TemporaryDirectory(prefix="rnnx-triton-")
    backends = Path(tmp.name) / "backends"
    backends.mkdir()
    (backends / "python").symlink_to(root / "backends" / "python")
    (backends / "onnxruntime").symlink_to(STANDIN)
    log = Path(tmp.name) / "server.log"
    http, grpc = _free_ports(2)
    args = [
        str(binary),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        "--allow-metrics=false",
        "--model-load-thread-count=1",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        "--log-verbose=0",
        *extra_args,
    ]
    if explicit:
        args += ["--model-control-mode=explicit", *(f"--load-model={m}" for m in models)]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)  # the stub's python takes rnnx and numpy<2 from the server venv
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = Server(proc, http, grpc, log, _tmp=tmp)
    deadline = t0 + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            if any(s in tail for s in ("GLIBC_", "libpython", "error while loading shared libraries")):
                raise Unavailable(f"tritonserver cannot start here: {tail.strip().splitlines()[-1]}")
            raise RuntimeError(f"tritonserver exited with {proc.returncode} before it was ready:\n{tail}")
        if _ready(http):
            server.started_s = time.monotonic() - t0
            return server
        time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"tritonserver not ready after {START_TIMEOUT_S:g} s:\n{tail}")
