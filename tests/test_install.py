"""rnnx as a user installs it: the built wheel (not the source tree) in a fresh virtualenv.

``python -m build`` makes the wheel and the sdist; the wheel goes into a new venv (no
system site-packages, no ``--no-deps``: pip resolves every dependency as for a user, from
its cache and local wheels where it has them), and the installed ``rnnx`` command runs
from a folder outside the checkout, so a missing package, a missing data file or an
import from the tree fails here. 1 to 2 minutes on 2 cores, most of it installing torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.install

MODEL_PY = textwrap.dedent("""
    from torch import nn

    import rnnx


    def make():
        return rnnx.wrap(nn.GRU(3, 8))
    """)


def _env() -> dict[str, str]:
    """The caller's environment without anything pointing back at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist ``python -m build`` makes from the checkout."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    return out


def _fresh_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(where)
    return where / "bin"


def _package_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in (root / "rnnx").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_build_makes_a_wheel_and_an_sdist_holding_every_package_file(dist: Path) -> None:
    wheels, sdists = list(dist.glob("rnnx-*.whl")), list(dist.glob("rnnx-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    with zipfile.ZipFile(wheels[0]) as z:
        shipped = {n for n in z.namelist() if n.startswith("rnnx/")}
    missing = _package_files(ROOT) - shipped
    assert not missing, f"files of the package missing from the wheel: {sorted(missing)}"


def test_the_cpu_extra_alone_inspects_grafts_state_onto_and_quantizes_without_torch(dist: Path, tmp_path: Path) -> None:
    from tests.foreign import PlainRNN, export_plain

    plain = export_plain(
        PlainRNN("lstm"),
        (torch.randn(2, 5, 3),),
        tmp_path / "plain.onnx",
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}},
    )
    bin_ = _fresh_venv(tmp_path / "v")
    _run([str(bin_ / "python"), "-m", "pip", "install", "-q", f"{next(dist.glob('rnnx-*.whl'))}[cpu]"], cwd=tmp_path)
    no_torch = subprocess.run(
        [str(bin_ / "python"), "-c", "import torch"], env=_env(), cwd=tmp_path, capture_output=True
    )
    assert no_torch.returncode != 0, "rnnx[cpu] installed torch"

    rnnx = str(bin_ / "rnnx")
    shown = _run([rnnx, "inspect", plain.name], cwd=tmp_path)
    assert "LSTM" in shown.stdout and "rnnx stateful" in shown.stdout, shown.stdout
    _run([rnnx, "stateful", plain.name, "--out", "stream.onnx"], cwd=tmp_path)
    for precision in ("int8", "fp16"):
        _run([rnnx, "quantize", "stream.onnx", "--precision", precision, "--out", f"q.{precision}.onnx"], cwd=tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((9, 3)).astype(np.float32))
    _run([rnnx, "run", "q.int8.onnx", "x.npy", "--out", "y.npy"], cwd=tmp_path)
    assert np.load(tmp_path / "y.npy").shape == (1, 9, 2)


def test_the_wheel_installed_in_a_fresh_venv_exports_and_runs(dist: Path, tmp_path: Path) -> None:
    wheel = next(dist.glob("rnnx-*.whl"))
    bin_ = _fresh_venv(tmp_path / "v")
    start = time.perf_counter()
    # torch pinned to the build these tests run with (as `make test` pins it): PyPI's default
    # Linux torch brings its CUDA libraries, over 5 GiB (docs/guides/install.md)
    _run(
        [str(bin_ / "python"), "-m", "pip", "install", "-q", f"{wheel}[cpu,export]", f"torch=={torch.__version__}"],
        cwd=tmp_path,
    )
    seconds = time.perf_counter() - start
    print(f"pip install rnnx[cpu,export] from the wheel into a fresh venv: {seconds:.1f} s")

    where = _run([str(bin_ / "python"), "-c", "import rnnx; print(rnnx.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "v"), where.stdout  # not the checkout

    version = _run([str(bin_ / "rnnx"), "--version"], cwd=tmp_path)
    assert version.stdout.startswith("rnnx 0."), version.stdout
    assert "onnxruntime" in version.stdout and "not installed" not in version.stdout, version.stdout

    (tmp_path / "model.py").write_text(MODEL_PY)
    _run([str(bin_ / "rnnx"), "export", "model.py:make", "--format", "onnx", "--out", "exported"], cwd=tmp_path)
    assert (tmp_path / "exported" / "model.onnx").is_file()

    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32))
    _run([str(bin_ / "rnnx"), "run", "exported/model.onnx", "x.npy", "--out", "y.npy"], cwd=tmp_path)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (1, 12, 8) and np.isfinite(y).all()  # (batch, time, hidden)
