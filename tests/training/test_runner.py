"""train(): every task beats its baseline when streamed; run dir; determinism; Ctrl-C."""

from __future__ import annotations

import json

import pytest

from rnnx.models import load, load_extra
from rnnx.training import TrainConfig, train

# reduced sizes/epochs so the suite stays fast; each must still beat its baseline
FAST = {
    "sine": {"size": 0.25, "epochs": 25},
    "chars": {"epochs": 120},
    "forecast": {"size": 0.5, "epochs": 15},
    "blobs": {"size": 0.5, "epochs": 12},
}


def _train(task: str, tmp_path, **kw):
    return train(TrainConfig(task=task, out=str(tmp_path / task), progress=False, **{**FAST[task], **kw}))


@pytest.mark.parametrize("task", ["sine", "forecast", "blobs"], ids=lambda t: t)
def test_regression_tasks_beat_baseline_streamed(task, tmp_path):
    m = _train(task, tmp_path).metrics
    assert m["task"] == task
    assert m["mae"] < 0.8 * m["baseline_mae"], m
    assert m["evaluation"].startswith("streamed")
    assert m["interrupted"] is False


def test_chars_reaches_accuracy_one(tmp_path):
    m = _train("chars", tmp_path).metrics
    assert m["accuracy"] == 1.0
    assert m["baseline_accuracy"] < 1.0


def test_sine_reports_closed_loop(tmp_path):
    m = _train("sine", tmp_path).metrics
    assert 0 < m["closed_loop_mae"] < 1.0
    assert m["closed_loop_steps"] == 41


def test_run_dir_contents(tmp_path):
    result = _train("sine", tmp_path, epochs=2)
    run = result.run_dir
    assert {p.name for p in run.iterdir()} >= {
        "model.safetensors",
        "config.json",
        "metrics.json",
        "loss.png",
        "predictions.png",
    }
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"task", "val_loss", "mae", "baseline_mae"} <= set(metrics)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["task"] == "sine" and config["model"]["kind"] == "lstm"
    assert load_extra(run)["task"] == "sine"
    model = load(run)
    x = model.example_input(1, 5)
    assert model(x, model.init_state(1))[0].shape == result.model(x, result.model.init_state(1))[0].shape
    for png in ("loss.png", "predictions.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("task", ["chars", "forecast"], ids=lambda t: t)
def test_same_seed_same_metrics(task, tmp_path):
    def metrics(sub: str, seed: int) -> dict:
        m = train(
            TrainConfig(task=task, out=str(tmp_path / sub), progress=False, seed=seed, plots=False, epochs=4, size=0.5)
        ).metrics
        return {k: v for k, v in m.items() if k != "wall_seconds"}

    first, again, other = metrics("a", 3), metrics("b", 3), metrics("c", 4)
    assert first == again
    assert first["val_loss"] != other["val_loss"]


def test_ctrl_c_keeps_best_checkpoint(tmp_path):
    def interrupt(row: dict) -> None:
        if row["epoch"] == 3:
            raise KeyboardInterrupt

    result = train(
        TrainConfig(task="sine", out=str(tmp_path / "run"), progress=False, size=0.25, epochs=50), on_epoch=interrupt
    )
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert metrics["epochs_run"] == 3
    assert 1 <= metrics["best_epoch"] <= 3
    assert load(result.run_dir).kind == "lstm"


def test_model_options_reach_the_model(tmp_path):
    result = _train("sine", tmp_path, epochs=1, model="gru", hidden_size=8, num_layers=2, dropout=0.1)
    cfg = result.model.config
    assert (cfg.kind, cfg.hidden_size, cfg.num_layers, cfg.dropout) == ("gru", 8, 2, 0.1)


def test_lstm_proj_size(tmp_path):
    result = _train("forecast", tmp_path, epochs=1, hidden_size=16, proj_size=4)
    assert result.model.config.proj_size == 4
