"""The CSV pipeline: time-ordered split, train-only statistics, raw-unit ONNX streaming, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from rnnx.errors import ConfigError
from rnnx.training import TrainConfig, train
from rnnx.training.tasks.csv import load_series
from rnnx.training.tasks.series import boundaries, make_splits, statistics


def write_csv(path, rows: int = 900, seed: int = 0):
    """A noisy seasonal series in raw units (level ~500, swings ~100) plus a date and a driver column."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    load = 500 + 80 * np.sin(2 * math.pi * t / 24) + 30 * np.sin(2 * math.pi * t / 168) + rng.normal(0, 8, rows)
    temp = 15 + 5 * np.sin(2 * math.pi * (t - 3) / 24) + rng.normal(0, 1, rows)
    with open(path, "w") as f:
        f.write("date,load,temp\n")
        for i in range(rows):
            f.write(f"day{i},{load[i]:.3f},{temp[i]:.3f}\n")
    return path, load


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csv")
    path, load = write_csv(tmp / "series.csv")
    cfg = TrainConfig(
        csv=str(path), target="load", window=24, horizon=2, out=str(tmp / "run"), progress=False, epochs=25
    )
    return train(cfg), load


def test_split_is_time_ordered_and_stats_fit_on_train_only(tmp_path):
    path, load = write_csv(tmp_path / "s.csv", rows=400)
    spec = load_series(str(path), "load", None)
    assert spec.features == ["load", "temp"]  # the non-numeric date column is skipped
    train_s, val, test = make_splits(spec, window=10, horizon=2)
    v, t = boundaries(400)
    x = torch.tensor(spec.values, dtype=torch.float32)
    assert torch.equal(train_s.x[0], x[: v - 2])
    assert torch.equal(val.x[0], x[v - 10 : t - 2]) and val.warmup == 10
    assert torch.equal(test.x[0], x[t - 10 : 400 - 2]) and test.warmup == 10
    assert torch.equal(test.y[0, -1], torch.tensor(spec.target_values[-2:], dtype=torch.float32))
    in_mean, in_std, out_mean, out_std = statistics(spec, horizon=2)
    assert torch.allclose(in_mean, torch.tensor(spec.values[:v].mean(0), dtype=torch.float32))
    assert torch.allclose(out_std, torch.full((2,), float(np.std(load[:v], ddof=1))))
    assert not torch.allclose(out_mean, torch.full((2,), float(load.mean())))


def test_checkpoint_carries_train_statistics(csv_run):
    result, load = csv_run
    v, _ = boundaries(len(load))
    model = result.model
    assert model.residual == 0  # default for --csv: forecast the change from the current load
    one_step_changes = load[1 : v - 1] - load[: v - 2]  # horizon 2: rows whose whole forecast is in train
    assert float(model.out_mean[0]) == pytest.approx(one_step_changes.mean(), rel=1e-4, abs=1e-4)
    assert float(model.out_std[0]) == pytest.approx(one_step_changes.std(ddof=1), rel=1e-4)
    assert float(model.in_mean[0]) == pytest.approx(load[:v].mean(), rel=1e-5)
    assert result.metrics["mae"] < result.metrics["baseline_mae"]


def test_level_forecast_without_residual(tmp_path):
    path, load = write_csv(tmp_path / "s.csv", rows=400)
    result = train(
        TrainConfig(
            csv=str(path),
            target="load",
            window=12,
            horizon=1,
            residual=False,
            out=str(tmp_path / "run"),
            progress=False,
            epochs=2,
            plots=False,
        )
    )
    v, _ = boundaries(400)
    assert result.model.residual == -1
    assert float(result.model.out_mean[0]) == pytest.approx(load[:v].mean(), rel=1e-5)


def test_exported_onnx_streams_raw_units_and_beats_persistence(csv_run):
    pytest.importorskip("onnxruntime")
    from rnnx.exporter import export_onnx
    from rnnx.runtime import StreamingSession

    result, load = csv_run
    path = export_onnx(result.model, result.run_dir / "model.onnx").path
    test = result.data.test
    x, y = test.x[0].numpy(), test.y[0].numpy()  # raw units: (T, 2) rows, (T, 2) next loads
    sess = StreamingSession(path)
    out = np.stack([sess.step(row[None])[0] for row in x])[test.warmup :]  # (T - warmup, 2)
    truth, now = y[test.warmup :], x[test.warmup :, :1]
    mae, persistence = np.abs(out - truth).mean(), np.abs(now - truth).mean()
    assert 300 < out.mean() < 700  # raw units, not normalised ones
    assert mae < 0.8 * persistence
    assert mae == pytest.approx(result.metrics["mae"], rel=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"target": "nope"}, ConfigError, r"--target: unknown column 'nope'; the columns of .* are: date, load, temp"),
        ({"target": "load", "features": ("temp", "wind")}, ConfigError, r"--features: unknown column 'wind'"),
        ({"target": "date"}, ConfigError, r"column 'date' is not numeric; numeric columns: load, temp"),
        (
            {"target": "load", "window": 500},
            ConfigError,
            r"--window 500 \+ --horizon 1: too long for the series of 120 rows",
        ),
        ({"target": "load", "horizon": 40}, ConfigError, r"--horizon 40: too long"),
    ],
    ids=["unknown-target", "unknown-feature", "non-numeric", "window-too-long", "horizon-too-long"],
)
def test_csv_errors(kwargs, error, match, tmp_path):
    path, _ = write_csv(tmp_path / "s.csv", rows=120)
    with pytest.raises(error, match=match):
        train(TrainConfig(csv=str(path), out=str(tmp_path / "run"), progress=False, **kwargs))


def test_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="--csv: no such file"):
        train(TrainConfig(csv=str(tmp_path / "nope.csv"), target="x", out=str(tmp_path / "run")))


@pytest.mark.parametrize(
    "text, match",
    [
        ("date,load\n", r"expected a header row and data rows, got 1 row"),
        ("a,b\n1,2\n3\n", r"line 3: expected 2 fields, got 1"),
        ("a,b\n1,2\n3,inf\n", r"column 'b', line 3: expected a finite number, got 'inf'"),
        ("a,b\n1,\n3,\n", r"column 'b' is not numeric"),
    ],
    ids=["no-rows", "ragged", "inf", "all-missing"],
)
def test_malformed_csv(text, match, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        train(TrainConfig(csv=str(path), target="b" if "a,b" in text else "load", out=str(tmp_path / "run")))


def _gappy(tmp_path) -> str:
    path = tmp_path / "gaps.csv"
    path.write_text("t,v\n0,\n1,1.0\n2,NA\n3,\n4,4.0\n5,nan\n")
    return str(path)


@pytest.mark.parametrize(
    "policy, values, note",
    [
        ("interpolate", [1, 1, 2, 3, 4, 4], r"filled missing values by interpolate \(v: 4\)"),
        ("ffill", [1, 1, 1, 1, 4, 4], r"filled missing values by ffill \(v: 4\)"),
        ("drop", [1, 4], r"dropped 4 rows with missing values \(v: 4\)"),
    ],
    ids=["interpolate", "ffill", "drop"],
)
def test_missing_values_are_filled_as_asked(tmp_path, policy, values, note):
    spec = load_series(_gappy(tmp_path), "v", None, policy)
    np.testing.assert_array_equal(spec.target_values, values)
    np.testing.assert_array_equal(spec.values[:, spec.features.index("v")], values)
    assert re.fullmatch(note, spec.note)


def test_missing_values_error_policy_names_counts_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"missing values \(v: 4; first on line 2\); use --missing"):
        load_series(_gappy(tmp_path), "v", None, "error")


def test_complete_csv_has_no_note(tmp_path):
    path, _ = write_csv(tmp_path / "s.csv", rows=50)
    assert load_series(str(path), "load", None).note == ""
