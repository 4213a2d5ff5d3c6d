"""``rnnx inspect``: a model file's inputs, outputs and state contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import export_onnx, export_torchscript
from tests.commands import user_error
from tests.foreign import PlainRNN, export_lstm_with_state, export_plain
from tests.zoo import TINY


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("inspect")
    lstm, bi = TINY["lstm-2l-proj"](), TINY["gru-bi"]()
    (root / "junk.pt").write_bytes(b"PK\x03\x04 truncated zip")
    return {
        "onnx": export_onnx(lstm, root / "m.onnx").path,
        "pt": export_torchscript(lstm, root / "m.pt").path,
        "bi": export_onnx(bi, root / "bi.onnx").path,
        "junk": root / "junk.pt",
    }


def _cli(*args: object):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


@pytest.mark.parametrize("fmt,exporter", [("onnx", "proj-native"), ("pt", "script")])
def test_text_lists_io_state_and_provenance(files, fmt: str, exporter: str) -> None:
    res = _cli(files[fmt])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "x            (batch, time, 5)" in out and "y            (batch, time, 3)" in out
    assert "h      h_in -> h_out  (2, batch, 4) float32" in out
    assert "c      c_in -> c_out  (2, batch, 8) float32" in out
    assert f"exporter:    {exporter}" in out and "streamable:  yes" in out and "kind:        lstm" in out


def test_json_for_a_bidirectional_model(files) -> None:
    res = _cli(files["bi"], "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)  # --json with no value: only JSON, on stdout
    assert info["command"] == "inspect" and info["rnnx"]
    assert info["streamable"] is False and info["opset"] == 17 and info["exporter"] == "trace"
    assert [i["name"] for i in info["inputs"]] == ["x", "h_in"]
    assert info["outputs"][0] == {"name": "y", "shape": ["batch", "time", 3], "dtype": "float32"}
    assert info["size_bytes"] > 0 and info["config"]["bidirectional"] is True


@pytest.mark.parametrize(
    "which,message",
    [
        ("missing", r"Error: model file not found"),
        ("junk", r"Error: .*junk.pt: corrupt TorchScript model"),
    ],
    ids=["missing", "corrupt"],
)
def test_bad_file_exits_2_with_one_line(files, tmp_path, which: str, message: str) -> None:
    res = _cli({**files, "missing": tmp_path / "nope.onnx"}[which])
    assert re.search(message, user_error(res)), res.output


def test_foreign_onnx_is_described_not_refused(tmp_path) -> None:
    path = export_lstm_with_state(tmp_path / "ls.onnx")
    res = _cli(path)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "no rnnx.spec: not exported by rnnx" in out and "opset: " in out and "LSTM 1" in out
    assert "frames       (batch, time, 3)" in out
    assert "h: initial h0 (graph input h0)  final hn -> graph output hn" in out
    assert "--state-map h0=hn --state-map c0=cn" in out
    info = json.loads(_cli(path, "--json", "-").output)
    assert info["recurrent"][0]["op"] == "LSTM" and len(info["state_guess"]) == 2


def test_foreign_onnx_with_inner_state_points_to_stateful(tmp_path) -> None:
    path = export_plain(PlainRNN("lstm"), (torch.zeros(1, 4, 3),), tmp_path / "p.onnx", dynamo=False)
    res = _cli(path)
    assert res.exit_code == 0, res.output
    assert "(zeros)" in res.output and "-> unused" in res.output and "rnnx stateful MODEL" in res.output


def test_step_graph_line_says_whether_the_file_is_there_and_intact(files, tmp_path) -> None:
    path = export_onnx(TINY["gru-1l"](), tmp_path / "m.onnx", strategy="scan-legacy").path
    assert "step graph:  m.step.onnx (present, SHA-256 matches)" in _cli(path).output
    step = tmp_path / "m.step.onnx"
    step.write_bytes(step.read_bytes() + b"\0")
    assert "SHA-256 does NOT match the spec" in _cli(path).output
    step.unlink()
    res = _cli(path, "--json", "-")
    assert res.exit_code == 0 and json.loads(res.stdout)["step_graph"]["present"] is False
    assert "MISSING" in _cli(path).output and "step graph:" not in _cli(files["onnx"]).output


def _with_spec(src: Path, dst: Path, edit) -> Path:
    import onnx

    from rnnx.spec import METADATA_KEY

    model = onnx.load(str(src))
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    d = json.loads(prop.value)
    edit(d)
    prop.value = json.dumps(d)
    onnx.save(model, str(dst))
    return dst


def test_a_long_contract_is_printed_truncated(files, tmp_path) -> None:
    path = _with_spec(files["onnx"], tmp_path / "long.onnx", lambda d: d["config"].update(pad="x" * 100_000))
    res = _cli(path)
    assert res.exit_code == 0, res.output
    config = next(line for line in res.output.splitlines() if line.startswith("config:"))
    assert len(config) < 400 and "more characters (--json shows all)" in config
    assert max(len(line) for line in res.output.splitlines()) < 400


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(config=[1, 2]), r"rnnx\.spec\.config: expected an object, got list"),
        (lambda d: d.update(extra="x"), r"rnnx\.spec\.extra: expected an object, got str"),
        (lambda d: d["extra"].update(pad="x" * (5 << 20)), r"rnnx\.spec: expected at most \d+ bytes"),
    ],
    ids=["config-list", "extra-str", "5MiB"],
)
def test_a_malformed_contract_is_one_line_exit_2(files, tmp_path, edit, match) -> None:
    """These were a TypeError / ValueError traceback (exit 1), or printed 100 MB."""
    res = _cli(_with_spec(files["onnx"], tmp_path / "bad.onnx", edit))
    assert re.search(match, user_error(res))
