"""The default train/export/check/run paths emit no FutureWarning or DeprecationWarning.

TorchScript (``torch.jit.save``/``load``) and torch's TorchScript-based ONNX exporter are
deprecated (FutureWarning on torch >= 2.14): the default paths must not touch them. Each
command runs in a fresh interpreter started with ``-W error::FutureWarning -W
error::DeprecationWarning`` (pytest's own warning filters would hide them here), once per
zoo kind; a warning becomes an exception and fails the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rnnx.models import save
from tests.zoo import TINY, _s2s

STRICT = ("-W", "error::FutureWarning", "-W", "error::DeprecationWarning")
ZOO = {
    "rnn": TINY["rnn-tanh"],
    "lstm": TINY["lstm-2l"],
    "gru": TINY["gru-2l"],
    "convlstm": TINY["convlstm-k3"],
    "seq2seq": _s2s(),
}  # one model of every zoo kind

# Runs the commands in order inside one strict interpreter (one torch import for all of them).
DRIVER = """
import json, sys
from rnnx.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise SystemExit(f"{args[0]} exited {e.code}")
"""


def _strict(commands: list[list[str]]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, *STRICT, "-c", DRIVER, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def test_default_paths_of_every_zoo_kind_warn_nothing(tmp_path) -> None:
    commands = [
        [
            "train",
            "--task",
            "sine",
            "--epochs",
            "1",
            "--size",
            "0.1",
            "--no-progress",
            "-q",
            "--out",
            str(tmp_path / "run"),
        ],
        ["export", str(tmp_path / "run"), "--out", str(tmp_path / "run-exported")],
    ]
    for kind, make in ZOO.items():
        ckpt = save(make(), tmp_path / kind / "model.safetensors")
        exported = tmp_path / f"{kind}-exported"
        commands.append(["export", str(ckpt), "--out", str(exported)])
        if kind == "seq2seq":  # a bundle: checked by its export, streamed by the forecaster
            continue
        model_file = str(exported / "model.onnx")
        commands.append(["check", str(ckpt), model_file])
        x = make().example_input(1, 6)[0].numpy()  # (T, ...) one stream
        np.save(tmp_path / f"{kind}-x.npy", x)
        commands.append(["run", model_file, str(tmp_path / f"{kind}-x.npy"), "--out", str(tmp_path / f"{kind}-y.npy")])
    res = _strict(commands)
    assert res.returncode == 0, res.stderr[-4000:]
    for kind in ZOO:
        assert (tmp_path / f"{kind}-exported").is_dir(), kind
        assert not (tmp_path / f"{kind}-exported" / "model.pt").exists(), "TorchScript is opt-in"
        assert kind == "seq2seq" or (tmp_path / f"{kind}-y.npy").is_file(), kind


def test_the_strict_interpreter_does_fail_on_a_deprecation(tmp_path) -> None:
    """The harness catches what it looks for: a FutureWarning raised by a command fails it."""
    res = subprocess.run(
        [sys.executable, *STRICT, "-c", "import warnings; warnings.warn('x', FutureWarning)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "FutureWarning: x" in res.stderr
