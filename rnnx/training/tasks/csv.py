"""``--csv FILE --target COL``: forecast the user's own series.

The file needs a header row; each later row is one time step, in time order. Inputs
are the ``--features`` columns (default: every numeric column, the target included);
the model forecasts the next ``--horizon`` values of ``--target`` at every step. See
:mod:`rnnx.training.tasks.series` for the time-ordered split, the train-only
normalisation statistics and the streaming semantics.
"""

from __future__ import annotations

import csv as _csv
from pathlib import Path

import numpy as np
import torch

from rnnx.errors import ConfigError
from rnnx.training.config import TrainConfig
from rnnx.training.tasks.series import SeriesSpec, SeriesTask


def read_columns(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: empty file, no data rows or ragged rows.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "--csv: no such file", str(p))
    with p.open(newline="") as f:
        rows = [r for r in _csv.reader(f) if r]
    if len(rows) < 2:
        raise ConfigError(f"--csv {path}: expected a header row and data rows, got {len(rows)} row(s)")
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise ConfigError(f"--csv {path}: line {i}: expected {len(header)} fields, got {len(r)}")
    return header, rows[1:]


def numeric(header: list[str], rows: list[list[str]], name: str, path: str) -> np.ndarray | None:
    """Column ``name`` as float64, or None when some value is not a number."""
    j = header.index(name)
    try:
        values = np.array([float(r[j]) for r in rows], dtype=np.float64)
    except ValueError:
        return None
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0]) + 2
        raise ConfigError(f"--csv {path}: column {name!r}, line {bad}: expected a finite number, got {rows[bad - 2][j]!r}")
    return values


def load_series(path: str, target: str, features: list[str] | None) -> SeriesSpec:
    """The CSV as a :class:`SeriesSpec`.

    Raises:
        ConfigError: unknown or non-numeric columns (the columns are listed).
    """
    header, rows = read_columns(path)
    wanted = [target] + list(features or [])
    unknown = [c for c in wanted if c not in header]
    if unknown:
        flag = "--target" if unknown[0] == target else "--features"
        raise ConfigError(f"{flag}: unknown column {unknown[0]!r}; the columns of {path} are: {', '.join(header)}")
    cols = {c: numeric(header, rows, c, path) for c in (features or header)}
    cols[target] = numeric(header, rows, target, path)
    bad = [c for c in ([target] + list(features or [])) if cols[c] is None]
    if bad:
        raise ConfigError(f"--csv {path}: column {bad[0]!r} is not numeric; numeric columns: "
                          + ", ".join(c for c in header if cols.get(c) is not None))
    names = list(features) if features else [c for c in header if cols[c] is not None]
    values = np.stack([cols[c] for c in names], axis=1)  # (N, F)
    return SeriesSpec(values=values, features=names, target=target, target_values=cols[target])


class CsvTask(SeriesTask):
    """The user's CSV series."""

    name = "csv"
    defaults = {"model": "lstm", "hidden_size": 32, "num_layers": 1, "epochs": 60, "lr": 0.01,
                "batch_size": 16, "patience": 15, "window": 16, "horizon": 1}

    def series(self, cfg: TrainConfig, gen: torch.Generator) -> SeriesSpec:
        spec = load_series(str(cfg.csv), str(cfg.target), list(cfg.features) if cfg.features else None)
        return spec

    def prepare(self, cfg: TrainConfig, gen: torch.Generator):  # type: ignore[override]
        data = super().prepare(cfg, gen)
        data.info["csv"] = str(cfg.csv)
        return data
