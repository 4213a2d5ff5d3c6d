"""OpenVINO streams an rnnx export statefully, its state pairs taken from the spec.

Optional: skipped with the reason when openvino is not installed. The spec's
``{state}_in -> {state}_out`` pairs are exactly what OpenVINO's MakeStateful transformation
needs; the stateful model is then fed one step per call and must match the eager model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnx.exporter import read_spec

ov = pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
make_stateful = pytest.importorskip(
    "openvino._offline_transformations", reason="this openvino has no MakeStateful transformation"
).apply_make_stateful_transformation

STEPS = 6


@pytest.mark.parametrize("name", ["lstm-2l", "lstm-2l-proj", "rnn-relu"])
def test_openvino_stateful_streaming_matches_eager(exported, name: str) -> None:
    model, result = exported(name, "onnx")
    spec = read_spec(result.path)
    core = ov.Core()
    net = core.read_model(str(result.path))
    shapes = {spec.input.name: [1 if d == "batch" else 1 if d == "time" else d for d in spec.input.shape]}
    shapes.update({s.input: [1 if d == "batch" else d for d in s.shape] for s in spec.state})
    net.reshape(shapes)  # batch 1, one step per call
    make_stateful(net, {s.input: s.output for s in spec.state})
    config = {"INFERENCE_PRECISION_HINT": "f32"}  # CPUs with bf16 units default to bf16
    request = core.compile_model(net, "CPU", config).create_infer_request()
    x = model.example_input(1, STEPS)
    with torch.no_grad():
        want, _ = model(x, model.init_state(1))  # (1, T, O) from zero state
    got = [request.infer({spec.input.name: x[:, t : t + 1].numpy()})[spec.output.name] for t in range(STEPS)]
    np.testing.assert_allclose(np.concatenate(got, 1), want.numpy(), atol=1e-5, rtol=1e-5)
    request.reset_state()  # a fresh stream starts from zeros again
    again = request.infer({spec.input.name: x[:, :1].numpy()})[spec.output.name]
    np.testing.assert_allclose(again, got[0], atol=1e-6)
