"""Repository-wide pytest setup: doctests in ``rnnx/`` run in a fresh temporary directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temp_dir(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> None:
    """Docstring examples write files (``m.onnx``, ``runs/...``): keep them out of the checkout."""
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
