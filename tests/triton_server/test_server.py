"""The harness itself: a server that cannot run here is reported with the reason, never hangs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.triton_server import server as triton


def test_a_missing_server_venv_is_unavailable_with_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RNNX_TRITON_VENV", str(tmp_path / "nowhere"))
    with pytest.raises(triton.Unavailable, match=r"no tritonserver with its python stub under .*nowhere"):
        triton.start(tmp_path)


def test_a_binary_that_cannot_load_its_libraries_is_unavailable(tmp_path: Path, monkeypatch) -> None:
    """What a machine without glibc >= 2.35 or libpython shows: the loader's line becomes the reason."""
    venv = tmp_path / "venv"
    root = triton._server_root(venv)
    (root / "bin").mkdir(parents=True)
    (root / "backends" / "python").mkdir(parents=True)
    (root / "backends" / "python" / "triton_python_backend_stub").write_text("")
    binary = root / "bin" / "tritonserver"
    binary.write_text(
        '#!/bin/sh\necho "tritonserver: /lib/x86_64-linux-gnu/libc.so.6: version '
        "'GLIBC_2.35' not found (required by tritonserver)\" >&2\nexit 1\n"
    )
    binary.chmod(0o755)
    monkeypatch.setenv("RNNX_TRITON_VENV", str(venv))
    with pytest.raises(triton.Unavailable, match="cannot start here: .*GLIBC_2.35"):
        triton.start(tmp_path)
