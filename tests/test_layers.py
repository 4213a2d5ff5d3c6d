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


RUNTIME_RUN = """
import sys
import numpy as np
from rnnx.runtime import StreamingSession, StreamPool
with StreamingSession(sys.argv[1]) as sess:
    features = sess.spec.input.shape[-1]
    sess.feed(np.zeros((1, 3, features), np.float32))
with StreamPool(sys.argv[1]) as pool:
    pool.open("a")
    pool.step_many({"a": np.zeros((features,), np.float32)})
print("imported:", sorted(m for m in ("torch", "onnx", "onnxscript") if m in sys.modules))
"""
TOOLS_RUN = """
import sys, tempfile
from pathlib import Path
from rnnx.commands.inspect import inspect
from rnnx.onnx_tools import quantize
inspect.main([sys.argv[1]], standalone_mode=False)  # rnnx inspect FILE
quantize(sys.argv[1], Path(tempfile.mkdtemp()) / "q.onnx", precision="int8")
print("imported:", sorted(m for m in ("torch", "onnxscript") if m in sys.modules))
"""


@pytest.mark.parametrize("code", [RUNTIME_RUN, TOOLS_RUN], ids=["runtime", "onnx-tools"])
def test_what_is_imported_while_it_runs_holds_the_contracts_too(onnx_file, code: str) -> None:
    """import-linter reads import statements; this runs a session and a pool (the runtime) and
    inspect + quantize (the ONNX tools) and looks at sys.modules: an import made by name at run
    time (importlib, __import__) of torch, or of onnx by the runtime, shows up here."""
    path, _ = onnx_file("gru-1l")
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "imported: []", done.stdout[-2000:]
