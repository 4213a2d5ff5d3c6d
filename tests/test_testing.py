"""rnnx.testing.assert_parity: a pytest-friendly parity assertion for users' CI."""

from __future__ import annotations

import pytest
import torch

from rnnx.errors import ParityError
from rnnx.exporter import export_onnx
from rnnx.testing import assert_parity
from tests.zoo import TINY


def test_assert_parity_passes_and_raises_with_the_full_table(tmp_path) -> None:
    model = TINY["gru-1l"]()
    path = export_onnx(model, tmp_path / "m.onnx").path
    assert assert_parity(model, path, steps=(1, 5)).ok
    with torch.no_grad():
        model.head.weight.mul_(1.01)
    with pytest.raises(ParityError, match=r"parity failed for .*m.onnx: worst y in .* differs by") as info:
        assert_parity(model, path, steps=(1, 5))
    assert "case" in str(info.value) and "FAIL" in str(info.value)
    assert info.value.report is not None and not info.value.report.ok
