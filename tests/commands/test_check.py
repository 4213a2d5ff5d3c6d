"""``rnnx check``: exit 0 pass, 1 parity failure, 2 bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import export_onnx, export_torchscript
from rnnx.models import save
from tests.commands import user_error
from tests.zoo import TINY


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("check")
    model = TINY["gru-2l"]()
    altered = TINY["gru-2l"]()
    with torch.no_grad():
        altered.rnn.weight_hh_l1.add_(0.01)
    (root / "corrupt.onnx").write_bytes(b"\x08\x07 not an onnx model at all" * 5)
    return {
        "ckpt": save(model, root / "ok" / "model.safetensors"),
        "altered": save(altered, root / "altered" / "model.safetensors"),
        "other": save(TINY["lstm-1l"](), root / "other" / "model.safetensors"),
        "onnx": export_onnx(model, root / "model.onnx").path,
        "pt": export_torchscript(model, root / "model.pt").path,
        "corrupt": root / "corrupt.onnx",
    }


def _cli(*args: object):
    return CliRunner().invoke(main, ["check", *map(str, args)])


@pytest.mark.parametrize("fmt", ["onnx", "pt"])
def test_matching_model_passes_and_writes_json(files, tmp_path, fmt: str) -> None:
    res = _cli(files["ckpt"], files[fmt], "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1].startswith("PASS")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is True and report["rows"]


@pytest.mark.parametrize("fmt", ["onnx", "pt"])
def test_altered_weights_fail_with_exit_1(files, fmt: str) -> None:
    res = _cli(files["altered"], files[fmt])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "Error: parity failed:" in res.output
    assert "Traceback" not in res.output


def test_quiet_prints_the_verdict_line_only(files) -> None:
    res = _cli(files["ckpt"], files["onnx"], "-q")
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 1, res.stdout
    assert res.stdout.startswith("PASS")
    failed = _cli(files["altered"], files["onnx"], "-q")
    assert failed.exit_code == 1 and len(failed.stdout.strip().splitlines()) == 1, failed.stdout


def test_tolerance_options_are_used(files) -> None:
    res = _cli(files["altered"], files["onnx"], "--atol", "1", "--rtol", "0")
    assert res.exit_code == 0, res.output
    assert "tolerance user: atol 1, rtol 0" in res.output


@pytest.mark.parametrize(
    "ckpt,model,message",
    [
        ("ckpt", "missing", r"Error: model file not found: .*missing.onnx"),
        ("ckpt", "corrupt", r"Error: .*corrupt.onnx: not a valid ONNX or TorchScript model"),
        ("missing", "onnx", r"Error: .*no such checkpoint file"),
        ("other", "onnx", r"Error: state: the model has shape .* but the exported file declares"),
    ],
    ids=["missing-model", "corrupt-model", "missing-checkpoint", "mismatched-model"],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path, ckpt: str, model: str, message: str) -> None:
    paths = {**files, "missing": tmp_path / "missing.onnx"}
    res = _cli(paths[ckpt], paths[model])
    assert re.search(message, user_error(res)), res.output


def test_negative_tolerance_is_a_usage_error(files) -> None:
    res = _cli(files["ckpt"], files["onnx"], "--atol", "-1")
    assert res.exit_code == 2 and "Invalid value for '--atol'" in res.output
