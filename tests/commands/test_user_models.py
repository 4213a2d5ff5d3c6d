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


class Blind(nn.Module):
    """A cell whose input no layer shows: forward(x, h) -> h."""

    def forward(self, x, h):
        return torch.tanh(x.sum(-1, keepdim=True) + h)


def make_blind():
    return rnnx.wrap(Blind(), state=[("batch", 1)], step=True)


def make_with_args(hidden, layers=1, *, bias):
    return Net()


class Hidden(nn.Module):
    """The sine tutorial: out, _ = self.lstm(x); no state in or out."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, HIDDEN, batch_first=True)
        self.fc = nn.Linear(HIDDEN, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out)


def make_hidden():
    torch.manual_seed(0)
    return Hidden()


class Chars(nn.Module):
    """Embedding first; input_size is the one-hot size, not what forward takes."""

    def __init__(self):
        super().__init__()
        self.input_size = 9
        self.emb = nn.Embedding(9, 4)
        self.gru = nn.GRU(4, HIDDEN, batch_first=True)

    def forward(self, x, h):
        return self.gru(self.emb(x), h)


def make_chars():
    return rnnx.wrap(Chars(), state=[(1, "batch", HIDDEN)])


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
    res = _cli(
        "export",
        ref,
        "--weights",
        str(trained),
        "--example-shape",
        "2,5,3",
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
        "--json",
        str(tmp_path / "export.json"),
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].split()[-1] == "pass"
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["ok"] and report["files"][0]["strategy"] == "trace"
    assert read_spec(tmp_path / "model.onnx").config["wrapped"] == "Net"

    ok = _cli("check", ref, str(tmp_path / "model.onnx"), "--weights", str(trained))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip().splitlines()[-1].startswith("PASS")
    assert "warning" not in ok.stderr, ok.stderr
    other = _cli("check", ref, str(tmp_path / "model.onnx"))  # other weights: the verdict is 1
    assert other.exit_code == 1 and "FAIL" in other.output
    warnings = [line for line in other.stderr.splitlines() if line.startswith("warning:")]
    assert "no --weights: Net's weights are whatever make() made" in warnings[0]
    assert "was exported from other weights (make() with --weights trained.pt, sha256 " in warnings[1]
    assert "than CKPT's (make() with no --weights, sha256 " in warnings[1]


def test_no_silent_substitutes_random_weights_and_another_model(user_dir: Path, tmp_path: Path) -> None:
    chars = f"{user_dir / 'my_model.py'}:make_chars"
    res = _cli("export", chars, "--out", str(tmp_path), "--format", "onnx")
    assert res.exit_code == 0, res.output
    assert "warning: no --weights: Chars's weights are whatever make_chars() made (random" in res.stderr
    source = read_spec(tmp_path / "model.onnx").extra["weights"]
    assert source["model"] == "Chars" and source["source"] == {"factory": "make_chars", "weights": None}

    again = _cli("check", chars, str(tmp_path / "model.onnx"))  # the factory draws new random weights
    assert again.exit_code == 1
    assert "model.onnx was exported from make_chars() without --weights" in again.stderr

    other = _cli("check", f"{user_dir / 'my_model.py'}:make_cell", str(tmp_path / "model.onnx"))
    assert "model.onnx was exported from a Chars model, CKPT is a GRUCell: expect FAIL rows" in other.stderr


def test_a_cell_models_input_shape_is_read_off_the_module(user_dir: Path, tmp_path: Path) -> None:
    res = _cli(
        "export", f"{user_dir / 'my_model.py'}:make_cell", "--out", str(tmp_path), "--format", "onnx"
    )  # nn.GRUCell: input shape read off the module
    assert res.exit_code == 0, res.output
    assert read_spec(tmp_path / "model.onnx").exporter == "scan"


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["{d}/my_model.py:make_unwrapped", "--example-shape", "2,5,3"],
            r"Error: .*make_unwrapped: Net does not follow the rnnx contract .* make make_unwrapped\(\) return "
            r"rnnx\.wrap\(model, state=\[\(1, \"batch\", 5\)\], batch_first=False\)$",
        ),
        (["{d}/my_model.py:nope"], r"Error: .*my_model.py:nope: module .* has no attribute 'nope'"),
        (["{d}/my_model.py:NOT_A_FACTORY"], r"Error: .*expected a callable returning an nn.Module, got int"),
        (["{d}/missing.py:make"], r"Error: .*missing.py: no such Python file"),
        (["no_such_pkg.mod:make"], r"Error: no_such_pkg.mod: no such module"),
        (
            ["{d}/my_model.py:make_blind"],
            r"Error: Blind: cannot read its input shape off the module .*"
            r"--example-shape 2,5,FEATURES",
        ),
        (
            ["{d}/my_model.py:make_with_args"],
            r"Error: .*make_with_args: expected a factory taking no arguments, "
            r"got one that needs hidden, bias; .* def make\(\): return make_with_args\(hidden=..., bias=...\)",
        ),
        (["{d}/my_model.py:make", "--example-shape", "2,x"], r"Error: --example-shape: expected positive integers"),
        (
            ["{d}/my_model.py:make", "--example-shape", "2,5,3", "--weights", "{d}/helpers.py"],
            r"Error: .*helpers.py: not a state_dict torch.load\(weights_only=True\) can read",
        ),
        (["{d}", "--weights", "{d}/trained.pt"], r"Error: --weights: only for a model given as file.py:factory"),
    ],
    ids=[
        "not-wrapped",
        "no-attribute",
        "not-callable",
        "no-file",
        "no-module",
        "no-example-shape",
        "factory-needs-args",
        "bad-shape",
        "weights-not-a-state-dict",
        "weights-for-a-checkpoint",
    ],
)
def test_user_model_mistakes_are_one_line_errors(
    user_dir: Path, trained: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    import re

    res = _cli("export", *[a.format(d=user_dir) for a in args], "--out", str(tmp_path), "--format", "onnx")
    assert re.match(message, user_error(res)), res.output


def test_help_says_that_a_reference_runs_the_users_code() -> None:
    for command in ("export", "check"):
        text = " ".join(_cli(command, "--help").output.split())
        assert "file.py:factory" in text and "RUNS THAT PYTHON CODE" in text


def test_a_module_hiding_its_state_is_exported_streamable_and_says_how(user_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    from rnnx.runtime import StreamingSession

    ref = f"{user_dir / 'my_model.py'}:make_hidden"
    res = _cli("export", ref, "--out", str(tmp_path), "--format", "onnx")  # no --example-shape
    assert res.exit_code == 0, res.output
    assert "warning: Hidden hides its state" in res.stderr
    assert "rnnx.models.from_torch(model.lstm, head=model.fc)" in res.stderr
    assert _cli("check", ref, str(tmp_path / "model.onnx")).exit_code == 0

    module = _load(user_dir, "make_hidden")
    x = torch.randn(1, 8, 2)
    with torch.no_grad():
        whole = module(x).numpy()  # the user's forward on the whole sequence, from zero state
    session = StreamingSession(tmp_path / "model.onnx")
    streamed = np.stack([session.step(x[:, t].numpy()) for t in range(8)], 1)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_token_ids_are_read_off_the_embedding(user_dir: Path, tmp_path: Path) -> None:
    res = _cli("export", f"{user_dir / 'my_model.py'}:make_chars", "--out", str(tmp_path), "--format", "onnx")
    assert res.exit_code == 0, res.output
    spec = read_spec(tmp_path / "model.onnx")
    assert (spec.input.dtype, spec.input.feature_shape, spec.input.vocab_size) == ("int64", (), 9)


def test_example_shape_and_dtype_win_over_what_is_read_off_the_module(user_dir: Path, tmp_path: Path) -> None:
    res = _cli(
        "export",
        f"{user_dir / 'my_model.py'}:make_blind",
        "--example-shape",
        "3,4,6",
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
    )
    assert res.exit_code == 0, res.output
    assert read_spec(tmp_path / "model.onnx").input.feature_shape == (6,)
    res = _cli(
        "export",
        f"{user_dir / 'my_model.py'}:make_chars",
        "--example-shape",
        "2,3",
        "--example-dtype",
        "int64",
        "--out",
        str(tmp_path / "c"),
        "--format",
        "onnx",
    )
    assert res.exit_code == 0, res.output
    assert read_spec(tmp_path / "c" / "model.onnx").input.dtype == "int64"


def test_example_shape_keeps_its_batch_and_time(user_dir: Path) -> None:
    from rnnx.exporter.contract import example_for
    from rnnx.models.user import load_model

    model = load_model(f"{user_dir / 'my_model.py'}:make_chars", example_shape="3,7", example_dtype="int64")
    x = example_for(model)
    assert (tuple(x.shape), x.dtype) == ((3, 7), torch.int64) and int(x.max()) < 9


def _load(user_dir: Path, factory: str):
    import sys

    sys.path.insert(0, str(user_dir))
    try:
        import my_model  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(user_dir))
    return getattr(my_model, factory)().eval()


SCRIPT_FAILS = '''
import torch
from torch import nn


class NoScript(nn.Module):
    """Follows the contract; TorchScript can neither compile (*extra) nor trace it (the ONNX export can)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def init_state(self, batch_size: int):
        return [torch.zeros(1, batch_size, 4)]

    def example_input(self, batch_size: int = 2, steps: int = 5):
        return torch.randn(batch_size, steps, 3)

    def forward(self, x, state, *extra):
        y, h = self.gru(x, state[0])
        if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            h = h * 0.5  # what TorchScript's trace records differs from eager: its parity probe refuses it
        return y, [h]


def make():
    return NoScript()
'''


def test_a_failing_optional_format_is_named_and_never_hides_the_good_onnx(tmp_path: Path) -> None:
    (tmp_path / "noscript.py").write_text(SCRIPT_FAILS)
    ref, out = f"{tmp_path / 'noscript.py'}:make", tmp_path / "out"
    res = _cli("export", ref, "--out", str(out), "--format", "all", "--json", "-")
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)  # --json -: the document, even though a format failed
    assert doc["ok"] is False and [f["format"] for f in doc["files"]] == ["onnx"]
    assert doc["files"][0]["parity"]["ok"] is True and (out / "model.onnx").is_file()
    assert [f["format"] for f in doc["failed"]] == ["torchscript"] and doc["failed"][0]["reason"]
    assert not (out / "model.pt").exists()
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: torchscript not written (") and "written and checked: " in last
    text = _cli("export", ref, "--out", str(out), "--format", "all")
    assert "model.pt: NOT WRITTEN (torchscript): " in text.stdout


def test_json_dash_prints_a_document_on_a_user_error(user_dir: Path, tmp_path: Path) -> None:
    res = _cli("export", f"{user_dir / 'my_model.py'}:make_unwrapped", "--out", str(tmp_path), "--json", "-")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["command"] == "export" and "does not follow the rnnx contract" in doc["error"]
