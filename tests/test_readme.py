"""The README's and the docs' code works as written: every block marked ``readme-test`` (in
README.md) or ``docs-test`` (in docs/**/*.md) runs, README first, then the docs pages in
path order, all in one folder (the docs blocks may use what the README's quickstart made)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BLOCK = re.compile(r"<!-- (?:readme|docs)-test: (python|bash) -->\s*```(?:python|bash)\n(.*?)```", re.S)
INCLUDE = re.compile(r"<!-- readme-include: (\S+) -->\s*```\w*\n(.*?)```", re.S)


def pages() -> list[Path]:
    """README.md, then every docs page in path order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(path.read_text())


def test_readme_has_tested_blocks():
    kinds = [kind for kind, _ in blocks(README)]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 1


def test_docs_have_tested_blocks():
    """The guides' examples run too (exporting, streaming, foreign ONNX, precision, ...)."""
    tested = {p.relative_to(ROOT).as_posix() for p in pages()[1:] if blocks(p)}
    assert {
        "docs/guides/exporting.md",
        "docs/guides/streaming.md",
        "docs/guides/foreign-onnx.md",
        "docs/guides/precision.md",
    } <= tested


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path, monkeypatch):
    """Python blocks run as ``python -c`` would run them in that folder (a fresh ``__main__``
    namespace, the folder first on ``sys.path``), in this process: the suite already paid for
    the imports. Shell blocks run in bash, with this venv's ``rnnx`` and ``python`` on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for page in pages():
        for i, (kind, code) in enumerate(blocks(page)):
            where = f"{page.name} block {i} ({kind})"
            if kind == "python":
                exec(compile(code, where, "exec"), {"__name__": "__main__"})
                continue
            cmd = ["bash", "-euo", "pipefail", "-c", code]
            done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{where} failed:\n{code}\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "exported" / "model.onnx").exists()
    assert (tmp_path / "y.npy").exists() and (tmp_path / "stream.npz").exists()
    assert (tmp_path / "forecaster.onnx").exists()


def _code(path: Path) -> str:
    """A file's code without its module docstring."""
    text = path.read_text()
    if text.startswith('"""'):
        text = text[text.index('"""', 3) + 3 :]
    return text.strip() + "\n"


def test_included_blocks_are_their_files_code():
    """A block marked ``readme-include: FILE`` (README or docs) shows FILE's code (the file is
    the source: it is the one the tests run); edit the file, then paste its code below its
    docstring into the page."""
    includes = [(page, name, block) for page in pages() for name, block in INCLUDE.findall(page.read_text())]
    assert includes, "no readme-include block"
    for page, name, block in includes:
        assert block == _code(ROOT / name), f"{page.name}: block for {name} differs from the file"
