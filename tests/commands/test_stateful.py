"""``rnnx stateful``: a plain torch.onnx.export file becomes streamable from the command line."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner

from rnnx.cli import main
from tests.commands import user_error
from tests.foreign import FEATURES, PlainRNN, export_plain


def _cli(*args: object):
    return CliRunner().invoke(main, ["stateful", *map(str, args)])


def test_stateful_then_run_equals_the_module(tmp_path) -> None:
    model = PlainRNN("gru", layers=2, batch_first=False)  # time-major, the torch default
    src = export_plain(model, (torch.zeros(5, 1, FEATURES),), tmp_path / "gru.onnx", dynamo=False)
    res = _cli(src, "--out", tmp_path / "s.onnx")
    assert res.exit_code == 0, res.output
    assert "h0_in -> h0_out  (1, batch, 4) float32" in res.output and "h1_in -> h1_out" in res.output
    assert "input:   input (batch, time, 3) float32" in res.output and "max abs err" in res.output
    x = np.random.default_rng(0).standard_normal((11, FEATURES)).astype(np.float32)  # (T, F)
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(
        main,
        ["run", str(tmp_path / "s.onnx"), str(tmp_path / "x.npy"), "--chunk", "4", "--out", str(tmp_path / "y.npy")],
    )
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        want = model(torch.from_numpy(x[:, None])).transpose(0, 1)  # (T, 1, OUT) -> (1, T, OUT)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want.numpy(), atol=1e-5)


def test_json_report(tmp_path) -> None:
    src = export_plain(PlainRNN("lstm"), (torch.zeros(2, 4, FEATURES),), tmp_path / "m.onnx", dynamo=False)
    res = _cli(src, "--out", tmp_path / "s.onnx", "--json", "-")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["command"] == "stateful" and info["max_abs_err"] < 1e-5
    assert [s["name"] for s in info["spec"]["state"]] == ["h0", "c0"]


def test_refusal_exits_2_and_failed_check_exits_1(tmp_path) -> None:
    bi = export_plain(
        PlainRNN("lstm", bidirectional=True), (torch.zeros(2, 4, FEATURES),), tmp_path / "bi.onnx", dynamo=False
    )
    assert "is bidirectional" in user_error(_cli(bi, "--out", tmp_path / "o.onnx"))

    class Centered(torch.nn.Module):  # subtracts the sequence mean: not causal, cannot stream
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.RNN(FEATURES, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x - x.mean(dim=1, keepdim=True))[0]

    nc = export_plain(Centered().eval(), (torch.zeros(2, 4, FEATURES),), tmp_path / "nc.onnx", dynamo=False)
    assert "does not equal the original" in user_error(_cli(nc, "--out", tmp_path / "o.onnx"), code=1)
    assert not (tmp_path / "o.onnx").exists()
