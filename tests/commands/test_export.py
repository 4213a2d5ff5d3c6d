"""``rnnx export``: checkpoint -> model.onnx / model.pt with a parity summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import read_spec
from rnnx.models import save
from tests.commands import user_error
from tests.zoo import TINY

KINDS = ["rnn-tanh", "lstm-2l-proj", "gru-bi", "convlstm-k3", "tokens-lstm"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ckpt")
    return {name: save(TINY[name](), root / name / "model.safetensors").parent for name in KINDS}


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("name", KINDS)
def test_export_writes_both_formats_and_passes(checkpoints, tmp_path, name: str) -> None:
    res = _cli("export", str(checkpoints[name]), "--out", str(tmp_path / "out"), "--format", "all")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["file", "strategy", "size", "parity", "worst", "|err|", "result"]
    assert [line.split()[-1] for line in lines[1:]] == ["pass", "pass"]
    assert read_spec(tmp_path / "out" / "model.onnx").kind == name.split("-")[0].replace("tokens", "lstm")
    assert read_spec(tmp_path / "out" / "model.pt").exporter == "script"
    spec = read_spec(tmp_path / "out" / "model.onnx")
    step = tmp_path / "out" / "model.step.onnx"  # Scan graphs (the ConvLSTM's) get a step graph
    assert step.is_file() == ("scan" in spec.exporter) == (spec.step_graph is not None)


def test_export_default_is_onnx_only(checkpoints, tmp_path) -> None:
    """No TorchScript unless asked: torch deprecates it (torch.jit.save/load warn on torch >= 2.14)."""
    res = _cli("export", str(checkpoints["lstm-2l-proj"]), "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert [line.split()[-1] for line in res.stdout.splitlines()[1:]] == ["pass"]
    assert (tmp_path / "model.onnx").is_file() and not (tmp_path / "model.pt").exists()


def test_export_one_format_without_check(checkpoints, tmp_path) -> None:
    res = _cli(
        "export",
        str(checkpoints["rnn-tanh"]),
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
        "--no-check",
        "--opset",
        "18",
    )
    assert res.exit_code == 0, res.output
    assert "unchecked" in res.output and not (tmp_path / "model.pt").exists()
    assert read_spec(tmp_path / "model.onnx").opset == 18


def test_parity_failure_exits_1_with_the_table(checkpoints, tmp_path) -> None:
    res = _cli(
        "export",
        str(checkpoints["lstm-2l-proj"]),
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
        "--atol",
        "0",
        "--rtol",
        "0",
    )
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "Error: parity check failed for" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing"], r"Error: .*missing: no such checkpoint file"),
        (["CORRUPT"], r"Error: .*not a readable safetensors file"),
        (
            ["CKPT", "--format", "tflite"],
            r"Invalid value for '--format': 'tflite' is not one of 'onnx', 'torchscript', 'all'",
        ),
        (["CKPT", "--opset", "3"], r"Invalid value for '--opset'"),
    ],
    ids=["missing-checkpoint", "corrupt-checkpoint", "bad-format", "bad-opset"],
)
def test_bad_input_exits_2_with_one_line(checkpoints, tmp_path, args: list[str], message: str) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"garbage" * 10)
    subst = {
        "missing": str(tmp_path / "missing"),
        "CORRUPT": str(tmp_path / "bad.safetensors"),
        "CKPT": str(checkpoints["rnn-tanh"]),
    }
    res = _cli("export", *[subst.get(a, a) for a in args], "--out", str(tmp_path / "o"))
    assert re.search(message, user_error(res)), res.output


def test_export_format_triton_writes_a_repository(checkpoints, tmp_path) -> None:
    res = _cli(
        "export",
        str(checkpoints["lstm-2l-proj"]),
        "--out",
        str(tmp_path / "repo"),
        "--format",
        "triton",
        "--triton-name",
        "lstm",
        "--max-batch-size",
        "16",
        "--sequence-strategy",
        "direct",
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].split()[-1] == "pass"
    config = (tmp_path / "repo" / "lstm" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 16" in config and "direct {" in config
    spec = read_spec(tmp_path / "repo" / "lstm" / "1" / "model.onnx")
    assert [s.batch_axis for s in spec.state] == [0, 0] and spec.extra["state_layout"] == "batch_first"


def test_export_format_triton_backend_python_writes_model_py_beside_the_export(checkpoints, tmp_path) -> None:
    res = _cli(
        "export",
        str(checkpoints["lstm-2l-proj"]),
        "--out",
        str(tmp_path / "repo"),
        "--format",
        "triton",
        "--triton-name",
        "lstm",
        "--triton-backend",
        "python",
    )
    assert res.exit_code == 0, res.output
    folder = tmp_path / "repo" / "lstm"
    config = (folder / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "CONTROL_SEQUENCE_END" in config and "state" not in config
    assert "TritonPythonModel" in (folder / "1" / "model.py").read_text()
    spec = read_spec(folder / "1" / "model.onnx")  # the export as is: states keep their own batch axis
    assert "state_layout" not in spec.extra


def test_export_format_triton_refuses_a_bidirectional_model(checkpoints, tmp_path) -> None:
    res = _cli("export", str(checkpoints["gru-bi"]), "--out", str(tmp_path / "repo"), "--format", "triton")
    assert "not streamable" in user_error(res)
    assert not (tmp_path / "repo").exists()


def test_export_says_what_it_does_and_v_shows_each_rejected_paths_traceback(checkpoints, tmp_path) -> None:
    args = ("export", str(checkpoints["lstm-2l-proj"]), "--out", str(tmp_path), "--format", "onnx", "--no-check")
    plain, verbose, quiet = _cli(*args), _cli(*args, "-v"), _cli(*args, "-q")
    assert plain.exit_code == verbose.exit_code == quiet.exit_code == 0, verbose.output
    assert "trying the trace path" in plain.stderr and "trace path rejected after" in plain.stderr
    assert "Traceback" not in plain.stderr and "Traceback (most recent call last)" in verbose.stderr
    assert "debug: torch: Torch IR graph at exception" in verbose.stderr
    assert quiet.stderr == "" and quiet.stdout.startswith("file")


def test_export_json_lists_files_attempts_and_parity(checkpoints, tmp_path) -> None:
    import json

    res = _cli("export", str(checkpoints["rnn-tanh"]), "--out", str(tmp_path / "o"), "--format", "onnx", "--json", "-")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "export" and doc["ok"] is True
    (f,) = doc["files"]
    assert f["format"] == "onnx" and f["strategy"] == "trace" and f["parity"]["ok"] is True
    assert f["attempts"][0]["strategy"] == "trace" and f["size_bytes"] > 0


def test_export_into_a_file_fails_before_exporting(checkpoints, tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    res = _cli("export", str(checkpoints["rnn-tanh"]), "--out", str(tmp_path / "afile"), "--no-check")
    assert user_error(res).startswith("Error: File exists:") and "trying the" not in res.stderr


def test_export_into_a_folder_of_another_model_removes_its_files(checkpoints, tmp_path) -> None:
    """Exporting only ONNX over a folder with another model's model.pt left a mixed folder."""
    assert (
        _cli("export", str(checkpoints["gru-bi"]), "--out", str(tmp_path), "--format", "all", "--no-check").exit_code
        == 0
    )
    (tmp_path / "notes.txt").write_text("mine")
    res = _cli("export", str(checkpoints["rnn-tanh"]), "--out", str(tmp_path), "--format", "onnx", "--no-check")
    assert res.exit_code == 0, res.output
    assert "removed model.pt" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "notes.txt"]
    assert read_spec(tmp_path / "model.onnx").kind == "rnn"


def test_no_step_graph_writes_none_and_removes_an_old_one(checkpoints, tmp_path) -> None:
    import json

    res = _cli(
        "export",
        str(checkpoints["convlstm-k3"]),
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
        "--no-check",
        "--json",
        "-",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["files"][0]["step_graph"] == str(tmp_path / "model.step.onnx")
    assert read_spec(tmp_path / "model.onnx").step_graph.file == "model.step.onnx"
    res = _cli(
        "export",
        str(checkpoints["convlstm-k3"]),
        "--out",
        str(tmp_path),
        "--format",
        "onnx",
        "--no-check",
        "--no-step-graph",
    )
    assert res.exit_code == 0, res.output
    assert "removed model.step.onnx" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert read_spec(tmp_path / "model.onnx").step_graph is None


def test_a_quantized_export_carries_its_own_step_graph(checkpoints, tmp_path) -> None:
    res = _cli(
        "export", str(checkpoints["convlstm-k3"]), "--out", str(tmp_path), "--format", "onnx", "--precision", "int8"
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx", "model.int8.step.onnx"]
    spec = read_spec(tmp_path / "model.int8.onnx")
    assert spec.precision == "int8" and spec.step_graph.file == "model.int8.step.onnx"


def test_export_pt2_and_the_torchscript_free_strategy(checkpoints, tmp_path) -> None:
    """--format pt2 writes the step (and chunk) programs; --strategy dynamo builds ONNX without TorchScript."""
    res = _cli("export", str(checkpoints["lstm-2l-proj"]), "--out", str(tmp_path / "p"), "--format", "pt2")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "model.pt2").is_file() and read_spec(
        tmp_path / "p" / "model.pt2"
    ).exporter == "torch.export"
    res = _cli("export", str(checkpoints["rnn-tanh"]), "--out", str(tmp_path / "d"), "--strategy", "dynamo")
    assert res.exit_code == 0, res.output
    assert read_spec(tmp_path / "d" / "model.onnx").exporter in ("dynamo", "scan")


def test_the_triton_options_offer_what_the_config_accepts() -> None:
    """rnnx export spells out the Triton choices (importing rnnx.onnx_tools.triton for --help
    would load onnx and onnxruntime): they must stay those TritonConfig accepts."""
    import click

    from rnnx.commands.export import export
    from rnnx.onnx_tools.triton import BACKENDS, INSTANCE_KINDS, STRATEGIES

    choices = {p.name: tuple(p.type.choices) for p in export.params if isinstance(p.type, click.Choice)}
    assert choices["sequence_strategy"] == STRATEGIES
    assert choices["instance_kind"] == tuple(INSTANCE_KINDS)
    assert choices["triton_backend"] == BACKENDS
