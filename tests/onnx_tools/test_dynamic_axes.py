"""dynamic_axes: which Reshape shape entries froze the export's batch or time size."""

from __future__ import annotations

import pytest

from rnnx.onnx_tools.dynamic_axes import _shape_pieces

FROZEN = {"batch": 2, "time": 7}  # the sizes of the export's example input


@pytest.mark.parametrize(
    "target,in_dims,frozen,want",
    [
        ([7, 2, 4], ["time", "batch", 1, 4], FROZEN, [("dim", 0), ("dim", 1), 4]),  # (T, B, 1, H) -> (T, B, H)
        ([2, 7, 4], ["time", "batch", 4], FROZEN, [("dim", 1), ("dim", 0), 4]),  # moved axes are followed
        ([7, 1, 4], ["time", "batch", 1, 4], {"batch": 1, "time": 7}, [("dim", 0), ("dim", 1), 4]),  # batch 1
        ([14, 4], ["time", "batch", 4], FROZEN, [-1, 4]),  # merged (T*B, H): -1 takes both
        ([7, 2, 4], [7, 2, 1, 4], FROZEN, None),  # no symbolic axis reaches the Reshape: left as is
        ([3, 4], ["time", "batch", 4], {}, None),  # nothing was frozen
    ],
    ids=["same-order", "swapped", "batch-1", "merged", "unknown-input", "nothing-frozen"],
)
def test_shape_pieces(target, in_dims, frozen, want) -> None:
    assert _shape_pieces(target, in_dims, frozen) == want
