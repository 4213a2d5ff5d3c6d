"""The package's layers hold: import-linter checks the contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    """Layers by dependency, the runtime and the ONNX tools free of torch, no import cycles."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout


def test_a_forbidden_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a copy of the package whose runtime imports torch is refused."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "rnnx", copy / "rnnx", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    bad = copy / "rnnx" / "runtime" / "engine.py"
    bad.write_text("import torch  # a leak\n" + bad.read_text())
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "The runtime ships alone" in proc.stdout and "BROKEN" in proc.stdout
