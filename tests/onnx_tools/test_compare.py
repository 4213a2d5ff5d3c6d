"""check_close: the one max-abs check that stops an ONNX-level tool at the first miss."""

import numpy as np
import pytest

from rnnx.errors import ParityError
from rnnx.onnx_tools.compare import check_close


def test_check_close_returns_the_max_abs_difference() -> None:
    ref = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    assert check_close("x", ref + np.float32(1e-6), ref, 1e-5) == pytest.approx(1e-6, rel=0.5)
    assert check_close("x", ref, ref, 0.0) == 0.0


@pytest.mark.parametrize(
    ("got", "message"),
    [
        (np.array([1.0, 2.5]), r"^run 3 differs by 0\.5 \(atol 0\.01\)$"),
        (np.array([1.0, np.nan]), r"^run 3 differs by inf \(atol 0\.01\)$"),
        (np.array([1.0, 2.0, 3.0]), r"^run 3 differs by inf \(atol 0\.01\)$"),
    ],
)
def test_check_close_names_what_differs_by_how_much(got: np.ndarray, message: str) -> None:
    with pytest.raises(ParityError, match=message):
        check_close("run 3 differs", got, np.array([1.0, 2.0]), 0.01)
