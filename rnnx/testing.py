"""Helpers for users' own test suites (pytest-friendly).

Example::

    from rnnx.testing import assert_parity
    def test_exported_model_matches(tmp_path):
        export_onnx(model, tmp_path / "m.onnx")
        assert_parity(model, tmp_path / "m.onnx")
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from rnnx.errors import ParityError


def assert_parity(model: nn.Module, path: str | os.PathLike, **kw: Any) -> Any:
    """Check parity between ``model`` and the exported file; raise if they disagree.

    Args:
        model: the eager contract module.
        path: the exported ``.onnx`` or TorchScript file.
        **kw: passed to :func:`rnnx.exporter.check_parity` (batch_sizes, steps, atol, rtol, ...).

    Returns:
        The passing :class:`rnnx.exporter.ParityReport`.

    Raises:
        ParityError: any output or state differs beyond tolerance; the message holds the
            full table and ``error.report`` the report.
    """
    from rnnx.exporter.parity import check_parity

    report = check_parity(model, path, **kw)
    if not report.ok:
        worst = report.worst
        head = (
            f"parity failed for {os.fspath(path)}: worst {worst.tensor} in {worst.label()} "
            f"differs by {worst.max_abs:.3g}"
            if worst
            else f"parity failed for {path}"
        )
        raise ParityError(f"{head}\n{report.table()}", report=report)
    return report
