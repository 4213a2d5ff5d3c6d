"""``--csv FILE --target COL``: forecast the user's own series.

The file needs a header row; each later row is one time step, in time order. Inputs
are the ``--features`` columns (default: every numeric column, the target included);
the model forecasts the next ``--horizon`` values of ``--target`` at every step. See
:mod:`rnnx.training.tasks.series` for the time-ordered split, the train-only
normalisation statistics and the streaming semantics.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rnnx.errors import ConfigError
from rnnx.tabular import fill_missing, numeric, read_columns
from rnnx.training.config import TrainConfig
from rnnx.training.tasks.base import TaskData
from rnnx.training.tasks.series import SeriesSpec, SeriesTask

logger = logging.getLogger(__name__)


def load_series(path: str, target: str, features: list[str] | None, missing: str = "interpolate") -> SeriesSpec:
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
        raise ConfigError(
            f"--csv {path}: column {bad[0]!r} is not numeric; numeric columns: "
            + ", ".join(c for c in header if cols.get(c) is not None)
        )
    names = list(features) if features else [c for c in header if cols[c] is not None]
    if target not in names:
        names_all = names + [target]
    else:
        names_all = names
    present = {c: v for c, v in cols.items() if v is not None}  # every name in names_all (checked above)
    table, note = fill_missing(np.stack([present[c] for c in names_all], axis=1), names_all, missing, path)
    values = table[:, [names_all.index(c) for c in names]]  # (N, F)
    return SeriesSpec(
        values=values, features=names, target=target, target_values=table[:, names_all.index(target)], note=note
    )


class CsvTask(SeriesTask):
    """The user's CSV series."""

    name = "csv"
    defaults = {
        "model": "lstm",
        "hidden_size": 32,
        "num_layers": 1,
        "epochs": 60,
        "lr": 0.01,
        "batch_size": 16,
        "patience": 15,
        "window": 16,
        "horizon": 1,
        "residual": True,
    }

    def series(self, cfg: TrainConfig, gen: torch.Generator) -> SeriesSpec:
        spec = load_series(str(cfg.csv), str(cfg.target), list(cfg.features) if cfg.features else None, cfg.missing)
        if spec.note:
            logger.warning("--csv %s: %s", cfg.csv, spec.note)
        return spec

    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        data = super().prepare(cfg, gen)
        data.info["csv"] = str(cfg.csv)
        return data
