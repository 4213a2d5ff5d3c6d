"""The per-call checks of rnnx.runtime.validate on plain arrays (the sessions' own tests run them on models)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.errors import InputValueError
from rnnx.runtime.validate import SMALL_TOKENS, check_token_ids, token_ids_in_range

DTYPES = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", ">i4", ">i8", ">u2"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [2, SMALL_TOKENS + 1], ids=["few", "many"])
def test_token_range_agrees_with_its_definition_for_every_integer_dtype(dtype: str, size: int) -> None:
    """Negative ids, the dtype's extremes and vocabularies beyond the dtype's range, in both the
    few-ids (Python) and the many-ids (one reduction over an unsigned view) paths."""
    info = np.iinfo(np.dtype(dtype))
    candidates = {0, 1, 19, 20, 126, 127, 128, 255, 256, info.max, info.min, -1, -128, -129}
    values = sorted(v for v in candidates if info.min <= v <= info.max)
    for vocab in (1, 20, 127, 128, 129, 256, 257, 1 << 40):
        for value in values:
            x = np.full(size, 3 % vocab, dtype)
            x[size // 2] = value
            want = 0 <= value < vocab
            assert token_ids_in_range(x, vocab) is want, (vocab, value)
            assert token_ids_in_range(x[::-1].reshape(-1, 1), vocab) is want, (vocab, value)  # a strided view


def test_check_token_ids_names_the_first_bad_id_and_its_index() -> None:
    x = np.zeros((3, 50), np.int32)
    x[2, 7], x[2, 9] = -5, 20
    with pytest.raises(InputValueError, match=r"^x: expected token ids in \[0, 20\) .*got -5 at index \(2, 7\)$"):
        check_token_ids("x", x, 20)
    check_token_ids("x", x, None)  # no vocabulary: nothing to check
    check_token_ids("x", x.astype(np.float32), 20)  # floats are the dtype check's business
    x[2, 7] = 19
    with pytest.raises(InputValueError, match=r"got 20 at index \(2, 9\)$"):
        check_token_ids("x", x, 20)
