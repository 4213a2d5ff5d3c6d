"""``rnnx run``'s side of the data contract (``rnnx.spec`` field ``data``): read the training
CSV as training read it, encode/decode text for token models, name the output columns."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rnnx.errors import InputFileError, InputValueError
from rnnx.spec import DataSpec
from rnnx.tabular import fill_missing, numeric, read_columns

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES = 64 << 20  # a .txt INPUT larger than this is refused (64 MiB)


def read_features(path: Path, data: DataSpec) -> np.ndarray:
    """The feature columns of a CSV with a header, in the model's order, missing cells filled
    by the policy used in training (``data.missing``, default interpolate).

    Returns:
        ``(T, F)`` float32 rows.

    Raises:
        InputFileError: a feature column is absent or not numeric (the columns are listed).
        ConfigError: missing cells under the "error" policy, ragged rows.
    """
    header, rows = read_columns(str(path), flag="INPUT")
    absent = [c for c in data.features if c not in header]
    if absent:
        raise InputFileError(
            f"INPUT {path}: the model needs columns {', '.join(data.features)} "
            f"(its training features, in order); missing {', '.join(absent)}; "
            f"the file has {', '.join(header)}"
        )
    cols = []
    for name in data.features:
        values = numeric(header, rows, name, str(path), flag="INPUT")
        if values is None:
            raise InputFileError(f"INPUT {path}: column {name!r}: expected numbers, got text")
        cols.append(values)
    table, note = fill_missing(
        np.stack(cols, axis=1), list(data.features), data.missing or "interpolate", str(path), flag="INPUT"
    )
    if note:
        logger.warning("INPUT %s: %s (the policy used in training)", path, note)
    return table.astype(np.float32)


def encode_text(path: Path, vocab: str) -> np.ndarray:
    """A text file as token ids ``(T,)`` int64 (id ``i`` is ``vocab[i]``); one trailing newline is dropped.

    Raises:
        InputValueError: a character outside the vocabulary.
        InputFileError: not UTF-8, or larger than :data:`MAX_TEXT_BYTES`.
    """
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise InputFileError(
            f"INPUT {path}: expected at most {MAX_TEXT_BYTES} bytes of text, got {path.stat().st_size}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(f"INPUT {path}: expected UTF-8 text ({e})") from e
    text = text[:-1] if text.endswith("\n") else text
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        raise InputValueError(f"INPUT {path}: characters {unknown!r} are not in the model's vocabulary {vocab!r}")
    return np.array([index[c] for c in text], dtype=np.int64)


def decode(y: np.ndarray, vocab: str, batch_axis: int = 0, time_axis: int = 1) -> list[str]:
    """Logits ``(B, T, V)`` -> one string per sequence (the most likely token at every step)."""
    ids = np.moveaxis(np.asarray(y), (batch_axis, time_axis), (0, 1)).argmax(-1)  # (B, T)
    return ["".join(vocab[i] for i in row) for row in ids]


def output_columns(data: DataSpec | None, y: np.ndarray) -> list[str] | None:
    """The output's column names when the contract names every value of a step, else None."""
    if data is None or not data.outputs or y.ndim != 3 or y.shape[-1] != len(data.outputs):
        return None
    return list(data.outputs)
