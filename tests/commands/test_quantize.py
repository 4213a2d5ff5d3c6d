"""``rnnx quantize`` and the precision options of ``rnnx export`` / ``rnnx check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import export_onnx, read_spec
from rnnx.models import save
from tests.commands import user_error
from tests.zoo import TINY


@pytest.fixture(scope="module")
def lstm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint dir, float32 model.onnx) of a tiny LSTM."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("quantize")
    model = TINY["lstm-2l"]()
    ckpt = save(model, root / "ckpt" / "model.safetensors").parent
    return ckpt, export_onnx(model, root / "model.onnx").path


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantize_then_check_passes_at_the_precision(lstm, tmp_path, precision: str) -> None:
    ckpt, onnx_path = lstm
    out = tmp_path / f"m.{precision}.onnx"
    res = _cli("quantize", str(onnx_path), "--precision", precision, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"wrote {out} ({precision}): ")
    assert read_spec(out).precision == precision
    res = _cli("check", str(ckpt), str(out), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["tolerance_source"] == f"table:lstm/{precision}"
    assert report["task"] is None  # a plain checkpoint: no task to score


def test_quantize_json_lists_what_was_converted(lstm, tmp_path) -> None:
    _, onnx_path = lstm
    res = _cli("quantize", str(onnx_path), "--precision", "int8", "--out", str(tmp_path / "q.onnx"), "--json", "-")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "quantize" and doc["quantized"] == {"LSTM": 2, "MatMul": 1}
    assert doc["bytes"] == (tmp_path / "q.onnx").stat().st_size
    assert doc["step_graph"] is None  # a native-op LSTM graph has no time loop to leave out


def test_quantize_converts_a_scan_models_step_graph(tmp_path) -> None:
    """A ConvLSTM (Scan graph) has model.step.onnx: the int8 copy gets q.step.onnx, and `check` passes."""
    model = TINY["convlstm-k3"]()
    ckpt = save(model, tmp_path / "ckpt" / "model.safetensors").parent
    src = export_onnx(model, tmp_path / "model.onnx").path
    res = _cli("quantize", str(src), "--precision", "int8", "--out", str(tmp_path / "q.onnx"), "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["step_graph"] == str(tmp_path / "q.step.onnx")
    assert read_spec(tmp_path / "q.onnx").step_graph.file == "q.step.onnx"
    res = _cli("check", str(ckpt), str(tmp_path / "q.onnx"))  # streams one step at a time: the step graph too
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--precision", "int4"], r"Invalid value for '--precision': 'int4' is not one of 'fp16', 'int8'"),
        (["--precision", "int8", "--model", "TS"], r"Error: .*expected an ONNX file, got a torchscript file"),
        (["--precision", "int8", "--model", "REDUCED"], r"Error: .*expected a float32 \(fp32\) file"),
    ],
    ids=["bad-precision", "torchscript-source", "already-reduced"],
)
def test_bad_input_exits_2_with_one_line(lstm, tmp_path, args: list[str], message: str) -> None:
    import re

    ckpt, onnx_path = lstm
    model = str(onnx_path)
    if "--model" in args:
        i = args.index("--model")
        which, args = args[i + 1], args[:i] + args[i + 2 :]
        if which == "TS":
            from rnnx.exporter import export_torchscript

            model = str(export_torchscript(TINY["lstm-2l"](), tmp_path / "m.pt").path)
        else:
            model = str(tmp_path / "r.onnx")
            assert _cli("quantize", str(onnx_path), "--precision", "fp16", "--out", model).exit_code == 0
    res = _cli("quantize", model, *args, "--out", str(tmp_path / "out.onnx"))
    line = user_error(res)
    assert re.search(message, line), line
    assert not (tmp_path / "out.onnx").exists()


def test_export_precision_and_ort_format(lstm, tmp_path) -> None:
    ckpt, _ = lstm
    res = _cli(
        "export",
        str(ckpt),
        "--out",
        str(tmp_path),
        "--format",
        "ort",
        "--precision",
        "int8",
        "--json",
        str(tmp_path / "e.json"),
    )
    assert res.exit_code == 0, res.output
    (f,) = json.loads((tmp_path / "e.json").read_text())["files"]
    assert f["path"] == str(tmp_path / "model.int8.ort") and f["precision"] == "int8"
    assert f["parity"]["ok"] and f["parity"]["tolerance_source"] == "table:lstm/int8"
    res = _cli("inspect", str(tmp_path / "model.int8.ort"))
    assert res.exit_code == 0 and "(ort, " in res.stdout and "precision: int8" in res.stdout


def test_check_reports_the_task_metric_of_a_training_run(tmp_path) -> None:
    from rnnx.training import TrainConfig, train

    run = train(
        TrainConfig(
            task="sine",
            out=str(tmp_path / "run"),
            progress=False,
            plots=False,
            size=0.25,
            epochs=1,
            hidden_size=8,
            num_layers=1,
        )
    ).run_dir
    assert (
        _cli("export", str(run), "--out", str(tmp_path / "ex"), "--format", "onnx", "--precision", "int8").exit_code
        == 0
    )
    res = _cli("check", str(run), str(tmp_path / "ex" / "model.int8.onnx"), "--json", str(tmp_path / "c.json"))
    assert res.exit_code == 0, res.output
    assert "task sine: mae " in res.stdout
    task = json.loads((tmp_path / "c.json").read_text())["task"]
    assert task["task"] == "sine" and task["metric"] == "mae"
    assert abs(task["delta"]) < 0.05 and task["max_abs_output_diff"] < 0.05
