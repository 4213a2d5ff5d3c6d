"""The package's layers hold: import-linter checks the contracts in pyproject.toml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("runtime/engine.py", "import torch  # a leak\n", "The runtime ships alone"),
        ("runtime/engine.py", "import onnx  # a leak\n", "The runtime ships alone"),
        ("onnx_tools/quantize.py", "import torch  # a leak\n", "The ONNX tools (and the commands that run them)"),
        ("commands/inspect.py", "import rnnx.exporter  # a leak\n", "The ONNX tools (and the commands that run them)"),
        ("runtime/engine.py", "import rnnx.onnx_tools  # upwards\n", "Layers by dependency"),
        (
            "onnx_tools/graph.py",
            "def _later():\n    from rnnx.onnx_tools import quantize  # a cycle hidden in a deferred import\n\n\n",
            "No import cycles",
        ),
    ],
    ids=["runtime-torch", "runtime-onnx", "onnx-tools-torch", "inspect-exporter", "layer-upwards", "deferred-cycle"],
)
def test_a_broken_rule_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """The check can fail: a copy of the package with one rule broken is refused, naming the rule."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "rnnx", copy / "rnnx", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    bad = copy / "rnnx" / module
    text = bad.read_text()
    end = text.index("\n", text.index("from __future__")) + 1  # after the docstring and the future import
    bad.write_text(text[:end] + line + text[end:])
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    summary = re.sub(r" \n", " ", proc.stdout).splitlines()  # import-linter wraps long names after a space
    assert any(s.startswith(contract) and s.endswith(" BROKEN") for s in summary), proc.stdout[-3000:]
