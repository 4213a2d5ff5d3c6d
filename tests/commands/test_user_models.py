"""``rnnx export file.py:make`` and ``rnnx check file.py:make``: a user's own model in the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import read_spec
from tests.commands import user_error

MODEL_FILE = '''
"""A user's model file, written as the tutorials write it."""
import torch
from torch import nn

import rnnx
from helpers import HIDDEN  # a sibling module: imports work as for `python my_model.py`


class Net(nn.Module):
    """Seq-first GRU regressor: forward(x, h0) -> (out, h_n)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, HIDDEN)
        self.fc = nn.Linear(HIDDEN, 2)

    def forward(self, x, h0):
        out, h = self.gru(x, h0)
        return self.fc(out), h


def make():
    torch.manual_seed(0)
    return rnnx.wrap(Net(), state=[(1, "batch", HIDDEN)], batch_first=False)


def make_unwrapped():
    return Net()


def make_cell():
    torch.manual_seed(0)
    return rnnx.wrap(nn.GRUCell(3, HIDDEN))


NOT_A_FACTORY = 3
'''


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("user")
    (root / "my_model.py").write_text(textwrap.dedent(MODEL_FILE))
    (root / "helpers.py").write_text("HIDDEN = 5\n")
    return root


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def trained(user_dir: Path) -> Path:
    """The user's trained weights: a plain state_dict of the unwrapped Net, saved with torch.save."""
    import sys

    sys.path.insert(0, str(user_dir))
    try:
        from my_model import Net  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(user_dir))
    torch.manual_seed(1)
    path = user_dir / "trained.pt"
    torch.save(Net().state_dict(), path)
    return path


def test_export_then_check_a_users_model_file(user_dir: Path, trained: Path, tmp_path: Path) -> None:
    ref = f"{user_dir / 'my_model.py'}:make"
    res = _cli("export", ref, "--weights", str(trained), "--example-shape", "2,5,3", "--out",
               str(tmp_path), "--format", "onnx", "--json", str(tmp_path / "export.json"))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].split()[-1] == "pass"
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["ok"] and report["files"][0]["strategy"] == "trace"
    assert read_spec(tmp_path / "model.onnx").config["wrapped"] == "Net"

    ok = _cli("check", ref, str(tmp_path / "model.onnx"), "--weights", str(trained))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip().splitlines()[-1].startswith("PASS")
    other = _cli("check", ref, str(tmp_path / "model.onnx"))  # other weights: the verdict is 1
    assert other.exit_code == 1 and "FAIL" in other.output


def test_a_cell_models_input_shape_is_read_off_the_module(user_dir: Path, tmp_path: Path) -> None:
    res = _cli("export", f"{user_dir / 'my_model.py'}:make_cell", "--out", str(tmp_path),
               "--format", "onnx")  # nn.GRUCell: input shape read off the module
    assert res.exit_code == 0, res.output
    assert read_spec(tmp_path / "model.onnx").exporter == "scan"


@pytest.mark.parametrize("args,message", [
    (["{d}/my_model.py:make_unwrapped", "--example-shape", "2,5,3"],
     r"Error: Net: expected an init_state\(batch_size\) method .* rnnx\.wrap\(model, "),
    (["{d}/my_model.py:nope"], r"Error: .*my_model.py:nope: module .* has no attribute 'nope'"),
    (["{d}/my_model.py:NOT_A_FACTORY"], r"Error: .*expected a callable returning an nn.Module, got int"),
    (["{d}/missing.py:make"], r"Error: .*missing.py: no such Python file"),
    (["no_such_pkg.mod:make"], r"Error: no_such_pkg.mod: no such module"),
    (["{d}/my_model.py:make"], r"Error: Wrapped has no example_input.*--example-shape 2,5,FEATURES"),
    (["{d}/my_model.py:make", "--example-shape", "2,x"], r"Error: --example-shape: expected positive integers"),
    (["{d}/my_model.py:make", "--example-shape", "2,5,3", "--weights", "{d}/helpers.py"],
     r"Error: .*helpers.py: not a state_dict torch.load\(weights_only=True\) can read"),
    (["{d}", "--weights", "{d}/trained.pt"], r"Error: --weights: only for a model given as file.py:factory"),
], ids=["not-wrapped", "no-attribute", "not-callable", "no-file", "no-module", "no-example-shape",
        "bad-shape", "weights-not-a-state-dict", "weights-for-a-checkpoint"])
def test_user_model_mistakes_are_one_line_errors(user_dir: Path, trained: Path, tmp_path: Path,
                                                 args: list[str], message: str) -> None:
    import re

    res = _cli("export", *[a.format(d=user_dir) for a in args], "--out", str(tmp_path), "--format", "onnx")
    assert re.match(message, user_error(res)), res.output


def test_help_says_that_a_reference_runs_the_users_code() -> None:
    for command in ("export", "check"):
        text = " ".join(_cli(command, "--help").output.split())
        assert "file.py:factory" in text and "RUNS THAT PYTHON CODE" in text
