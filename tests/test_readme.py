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


INCLUDE = re.compile(r"<!-- readme-include: (\S+) -->\s*```\w*\n(.*?)```", re.S)


def _code(path: Path) -> str:
    """A file's code without its module docstring."""
    text = path.read_text()
    if text.startswith('"""'):
        text = text[text.index('"""', 3) + 3:]
    return text.strip() + "\n"


def test_included_blocks_are_their_files_code():
    """A block marked ``readme-include: FILE`` shows FILE's code (the file is the source: it is
    the one the tests run); edit the file, then paste its code below its docstring into the README."""
    includes = INCLUDE.findall(README.read_text())
    assert includes, "no readme-include block"
    for name, block in includes:
        assert block == _code(README.parent / name), f"README block for {name} differs from the file"
