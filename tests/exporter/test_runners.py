"""Runners: check_parity on an ONNX file runs through the deployed runtime (StreamingSession)."""

from __future__ import annotations

import json

import numpy as np
import onnx

from rnnx.exporter import check_parity, export_onnx
from rnnx.exporter.runners import session_runner
from rnnx.onnx_tools.spec_io import read_spec
from tests.zoo import TINY, example_input


def test_session_runner_carries_given_state_like_the_graph(tmp_path):
    model = TINY["lstm-2l"]()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, example_input=example_input(model, 2, 5))
    spec = read_spec(path)
    run = session_runner(str(path), spec)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    state = [rng.standard_normal(s.concrete_shape(3)).astype(np.float32) for s in spec.state]
    y_all, s_all = run(x, state)
    y1, s1 = run(x[:, :2], state)
    y2, s2 = run(x[:, 2:], s1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_all, atol=1e-5)
    for a, b in zip(s2, s_all):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_check_parity_checks_the_file_like_the_runtime_does(tmp_path):
    """A file whose rnnx.spec names an output the graph lacks fails parity with the runtime's
    SpecError (contract checked against the graph), not with a raw onnxruntime error."""
    model = TINY["gru-1l"]()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, example_input=example_input(model, 2, 5))
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "rnnx.spec":
            spec = json.loads(prop.value)
            spec["state"][0]["output"] = "h_typo"
            prop.value = json.dumps(spec)
    onnx.save(proto, str(path))
    report = check_parity(model, path, batch_sizes=(1,), steps=(2,))
    assert not report.ok
    assert any("SpecError" in n and "graph has no output 'h_typo'" in n for n in report.notes), report.notes
