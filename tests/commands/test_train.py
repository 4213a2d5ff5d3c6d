"""``rnnx train`` on the command line: a run, and every user error as one line + exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rnnx.cli import main
from tests.commands import user_error


def invoke(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def test_train_writes_a_run_dir_ready_for_export(tmp_path):
    out = tmp_path / "run"
    res = invoke("--task", "chars", "--epochs", "120", "--no-progress", "--seed", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "accuracy 1.0000" in res.output
    assert f"rnnx export {out}" in res.output
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == 1.0


def test_model_options_and_features(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("a,b,c\n" + "".join(f"{i % 7},{i % 5},{(i * 3) % 11}\n" for i in range(200)))
    res = invoke(
        "--csv",
        str(csv),
        "--target",
        "a",
        "--features",
        "a, b",
        "--window",
        "8",
        "--horizon",
        "2",
        "--model",
        "gru",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "r"),
    )
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["task"]["features"] == ["a", "b"] and config["model"]["output_size"] == 2
    assert config["model"]["kind"] == "gru" and config["model"]["hidden_size"] == 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nope"], "Error: --task: expected one of sine, chars, forecast, blobs, got 'nope'"),
        (["--csv", "missing.csv", "--target", "x"], "Error: --csv: no such file: missing.csv"),
        (["--csv", "{csv}"], "Error: --csv: needs --target COLUMN (the column to forecast)"),
        (["--csv", "{csv}", "--target", "z"], "Error: --target: unknown column 'z'; the columns of {csv} are: a, b"),
        (
            ["--csv", "{csv}", "--target", "a", "--window", "100"],
            "Error: --window 100 + --horizon 1: too long for the series of 50 rows",
        ),
        (["--task", "sine", "--model", "transformer"], "Error: kind: expected one of rnn, lstm, gru, convlstm"),
        (["--task", "sine", "--device", "tpu"], "Error: --device: expected one of cpu, cuda, got 'tpu'"),
        ([], "Error: expected exactly one of --task NAME or --csv FILE, got neither"),
    ],
    ids=[
        "unknown-task",
        "missing-csv",
        "csv-without-target",
        "unknown-column",
        "window-too-long",
        "unknown-model",
        "bad-device",
        "no-task",
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "s.csv"
    csv.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(50)))
    args = [a.replace("{csv}", str(csv)) for a in args]
    res = invoke(*args, "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run"))
    assert user_error(res).startswith(message.replace("{csv}", str(csv))), res.output


def test_out_is_required():
    res = invoke("--task", "sine")
    assert res.exit_code == 2 and "Missing option '--out'" in res.output


def test_every_listed_task_is_built_and_help_lists_them():
    """One list (rnnx.task_names, torch-free) drives --help and the registry."""
    from rnnx.task_names import TASKS
    from rnnx.training.tasks import get_task

    assert [get_task(name).name for name in TASKS] == list(TASKS)
    assert "Built-in task: sine, chars, forecast, blobs." in " ".join(invoke("--help").output.split())


def test_negative_threads_is_a_usage_error(tmp_path):
    res = invoke("--task", "sine", "--threads", "-1", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "Invalid value for '--threads'" in res.output and "Traceback" not in res.output


def test_out_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = user_error(invoke("--task", "sine", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "afile")))
    assert "--out: expected a directory, got the existing file" in line
