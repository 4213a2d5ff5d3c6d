"""The README's quickstart works as written: every block marked ``readme-test`` runs, in order."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (python|bash) -->\s*```(?:python|bash)\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_readme_has_tested_blocks():
    kinds = [kind for kind, _ in readme_blocks()]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 1


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for i, (kind, code) in enumerate(readme_blocks()):
        cmd = [sys.executable, "-c", code] if kind == "python" else ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README block {i} ({kind}) failed:\n{code}\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "exported" / "model.onnx").exists()
    assert (tmp_path / "y.npy").exists() and (tmp_path / "stream.npz").exists()
    assert (tmp_path / "forecaster.onnx").exists()
