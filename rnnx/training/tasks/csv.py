"""``--csv FILE --target COL``: forecast the user's own series.

The file needs a header row; each later row is one time step, in time order. Inputs
are the ``--features`` columns (default: every numeric column, the target included);
the model forecasts the next ``--horizon`` values of ``--target`` at every step. See
:mod:`rnnx.training.tasks.series` for the time-ordered split, the train-only
normalisation statistics and the streaming semantics.
"""

from __future__ import annotations

import csv as _csv
import logging
from pathlib import Path

import numpy as np
import torch

from rnnx.errors import ConfigError
from rnnx.training.config import TrainConfig
from rnnx.training.tasks.series import SeriesSpec, SeriesTask

logger = logging.getLogger(__name__)


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


MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})  # cells read as missing
MISSING_POLICIES = ("interpolate", "ffill", "drop", "error")


def numeric(header: list[str], rows: list[list[str]], name: str, path: str) -> np.ndarray | None:
    """Column ``name`` as float64 with NaN for missing cells, or None when a cell is not a number."""
    j = header.index(name)
    values = np.empty(len(rows), dtype=np.float64)
    for i, r in enumerate(rows):
        cell = r[j].strip()
        if cell.lower() in MISSING_TOKENS:
            values[i] = np.nan
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            return None
    if np.isinf(values).any():
        bad = int(np.flatnonzero(np.isinf(values))[0]) + 2
        raise ConfigError(f"--csv {path}: column {name!r}, line {bad}: expected a finite number, got {rows[bad - 2][j]!r}")
    if np.isnan(values).all():
        return None
    return values


def fill_missing(values: np.ndarray, names: list[str], policy: str, path: str) -> tuple[np.ndarray, str]:
    """Apply the ``--missing`` policy to the NaNs of ``values`` (N, F).

    Returns:
        The filled (or row-dropped) values and a one-line note ("" when nothing was missing).

    Raises:
        ConfigError: missing cells with policy "error", or an unknown policy.
    """
    if policy not in MISSING_POLICIES:
        raise ConfigError(f"--missing: expected one of {', '.join(MISSING_POLICIES)}, got {policy!r}")
    gaps = np.isnan(values)
    if not gaps.any():
        return values, ""
    counts = ", ".join(f"{n}: {int(c)}" for n, c in zip(names, gaps.sum(axis=0)) if c)
    if policy == "error":
        line = int(np.flatnonzero(gaps.any(axis=1))[0]) + 2
        raise ConfigError(f"--csv {path}: missing values ({counts}; first on line {line}); "
                          f"use --missing interpolate|ffill|drop to fill or skip them")
    if policy == "drop":
        keep = ~gaps.any(axis=1)
        return values[keep], f"dropped {int((~keep).sum())} rows with missing values ({counts})"
    out = values.copy()
    steps = np.arange(len(out))
    for j in range(out.shape[1]):
        ok = ~gaps[:, j]
        if policy == "interpolate":  # linear inside gaps, nearest value at the ends
            out[:, j] = np.interp(steps, steps[ok], out[ok, j])
        else:  # ffill: carry the last value forward; a leading gap takes the first value
            idx = np.maximum.accumulate(np.where(ok, steps, -1))
            idx[idx < 0] = int(np.flatnonzero(ok)[0])
            out[:, j] = out[idx, j]
    return out, f"filled missing values by {policy} ({counts})"


def load_series(path: str, target: str, features: list[str] | None,
                missing: str = "interpolate") -> SeriesSpec:
    """The CSV as a :class:`SeriesSpec`.

    Raises:
        ConfigError: unknown or non-numeric columns (the columns are listed), missing values
            under ``missing="error"``.
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
    if target not in names:
        names_all = names + [target]
    else:
        names_all = names
    table, note = fill_missing(np.stack([cols[c] for c in names_all], axis=1), names_all, missing, path)
    values = table[:, [names_all.index(c) for c in names]]  # (N, F)
    return SeriesSpec(values=values, features=names, target=target,
                      target_values=table[:, names_all.index(target)], note=note)


class CsvTask(SeriesTask):
    """The user's CSV series."""

    name = "csv"
    defaults = {"model": "lstm", "hidden_size": 32, "num_layers": 1, "epochs": 60, "lr": 0.01,
                "batch_size": 16, "patience": 15, "window": 16, "horizon": 1,
                "residual": True}

    def series(self, cfg: TrainConfig, gen: torch.Generator) -> SeriesSpec:
        spec = load_series(str(cfg.csv), str(cfg.target), list(cfg.features) if cfg.features else None,
                           cfg.missing)
        if spec.note:
            logger.warning("--csv %s: %s", cfg.csv, spec.note)
        return spec

    def prepare(self, cfg: TrainConfig, gen: torch.Generator):  # type: ignore[override]
        data = super().prepare(cfg, gen)
        data.info["csv"] = str(cfg.csv)
        return data
