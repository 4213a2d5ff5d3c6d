"""CSV tables without torch: read a header and rows, numeric columns, missing-value policies.

Training (``rnnx train --csv``) and serving (``rnnx run MODEL data.csv``) read a CSV the
same way: the same cells count as missing and the same ``--missing`` policy fills them.
Messages start with ``flag`` (``--csv`` or ``INPUT``) and the file name.
"""

from __future__ import annotations

import csv as _csv
from pathlib import Path

import numpy as np

from rnnx.errors import ConfigError


def read_columns(path: str, flag: str = "--csv") -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: empty file, no data rows or ragged rows.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, f"{flag}: no such file", str(p))
    with p.open(newline="") as f:
        rows = [r for r in _csv.reader(f) if r]
    if len(rows) < 2:
        raise ConfigError(f"{flag} {path}: expected a header row and data rows, got {len(rows)} row(s)")
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise ConfigError(f"{flag} {path}: line {i}: expected {len(header)} fields, got {len(r)}")
    return header, rows[1:]


MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})  # cells read as missing
MISSING_POLICIES = ("interpolate", "ffill", "drop", "error")


def numeric(header: list[str], rows: list[list[str]], name: str, path: str, flag: str = "--csv") -> np.ndarray | None:
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
        raise ConfigError(
            f"{flag} {path}: column {name!r}, line {bad}: expected a finite number, got {rows[bad - 2][j]!r}"
        )
    if np.isnan(values).all():
        return None
    return values


def fill_missing(
    values: np.ndarray, names: list[str], policy: str, path: str, flag: str = "--csv"
) -> tuple[np.ndarray, str]:
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
        raise ConfigError(
            f"{flag} {path}: missing values ({counts}; first on line {line}); "
            f"use --missing interpolate|ffill|drop to fill or skip them"
        )
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
