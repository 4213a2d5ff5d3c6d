"""Batch-first state layout: the rewritten graph computes exactly what the original does."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from rnnx.onnx_tools.spec_io import load_onnx
from rnnx.onnx_tools.state_layout import batch_first_shape, to_batch_first
from rnnx.spec import StateSpec


def test_batch_first_shape_moves_only_the_batch_axis() -> None:
    assert batch_first_shape(StateSpec("h", (2, "batch", 8), input="h_in", output="h_out")) == ("batch", 2, 8)
    conv = StateSpec("c", (1, "batch", 3, 4, 5), input="c_in", output="c_out")
    assert batch_first_shape(conv) == ("batch", 1, 3, 4, 5)
    assert batch_first_shape(StateSpec("s", ("batch", 6), input="s_in", output="s_out")) == ("batch", 6)


@pytest.mark.parametrize("name", ["lstm-2l", "convlstm-k3", "custom-peephole"])
def test_rewritten_graph_equals_the_original_with_states_transposed(exported, name: str) -> None:
    _, result = exported(name, "onnx")
    proto, spec = load_onnx(result.path), result.spec
    new_proto, new_spec = to_batch_first(proto, spec)
    assert new_spec.extra["state_layout"] == "batch_first"
    old = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(new_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, *spec.input.feature_shape)).astype(np.float32)
    states = [rng.standard_normal(s.concrete_shape(3)).astype(np.float32) for s in spec.state]
    names = [spec.output.name] + [s.output for s in spec.state]
    ref = old.run(names, {"x": x, **{s.input: v for s, v in zip(spec.state, states)}})
    moved = [np.moveaxis(v, s.batch_axis, 0) for s, v in zip(spec.state, states)]
    got = new.run(names, {"x": x, **{s.input: v for s, v in zip(new_spec.state, moved)}})
    np.testing.assert_array_equal(got[0], ref[0])
    for s, g, r in zip(spec.state, got[1:], ref[1:]):
        np.testing.assert_array_equal(g, np.moveaxis(r, s.batch_axis, 0))
