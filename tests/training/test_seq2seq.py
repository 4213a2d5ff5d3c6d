"""``--model seq2seq`` on the series tasks: the run completes, its checkpoint exports to a
bundle whose forecasts equal the trained model, ``rnnx check`` passes; other tasks refuse it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.errors import ConfigError
from rnnx.models import Seq2Seq, load
from rnnx.runtime import ForecastSession
from rnnx.training import TrainConfig, train
from rnnx.training.tasks.forecast import FEATURES, weather

TINY_RUN = dict(model="seq2seq", hidden_size=8, epochs=2, progress=False, plots=False)


def test_forecast_task_trains_exports_and_checks(tmp_path):
    result = train(TrainConfig(task="forecast", out=str(tmp_path / "run"), size=0.1, **TINY_RUN))
    m, model = result.metrics, result.model
    assert isinstance(model, Seq2Seq) and m["model"] == "seq2seq"
    assert (model.window, model.horizon, model.input_size, model.output_size) == (10, 3, 7, 1)
    assert np.isfinite(m["mae"]) and np.isfinite(m["baseline_mae"])

    runner = CliRunner()
    out = tmp_path / "exported"
    res = runner.invoke(main, ["export", str(tmp_path / "run"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "encoder.onnx" in res.output and "decoder.onnx" in res.output and "pass" in res.output
    res = runner.invoke(main, ["check", str(tmp_path / "run"), str(out)])
    assert res.exit_code == 0 and "PASS" in res.output, res.output

    x = result.data.test.x[:, :12].numpy()  # 12 days of the 7 variables, raw units
    with torch.no_grad():
        ref = load(tmp_path / "run").forecast(torch.from_numpy(x), 5).numpy()
    np.testing.assert_allclose(ForecastSession(out).forecast(x, steps=5), ref, rtol=1e-5, atol=1e-4)


def test_csv_trains_with_seq2seq(tmp_path):
    values = weather(240, torch.Generator().manual_seed(0))
    path = tmp_path / "days.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FEATURES)
        w.writerows(values.round(4).tolist())
    result = train(
        TrainConfig(
            csv=str(path),
            target="temp",
            out=str(tmp_path / "run"),
            window=6,
            horizon=2,
            cell="gru",
            attention=True,
            **TINY_RUN,
        )
    )
    model = result.model
    assert (model.window, model.horizon, model.residual) == (6, 2, 0)  # --csv: residual on the target
    assert (model.config.cell, model.attention) == ("gru", True)
    assert np.isfinite(result.metrics["mae"])


def test_seq2seq_is_refused_for_non_series_tasks(tmp_path):
    with pytest.raises(ConfigError, match=r"--model seq2seq: only for the series tasks .* not for --task sine"):
        train(TrainConfig(task="sine", out=str(tmp_path / "run"), **TINY_RUN))


def test_seq2seq_options_need_the_seq2seq_model(tmp_path):
    res = CliRunner().invoke(main, ["train", "--task", "forecast", "--attention", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "--cell/--attention: only with --model seq2seq, got --model lstm" in res.output
