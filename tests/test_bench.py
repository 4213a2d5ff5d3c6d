"""rnnx.bench: the measurements close every session and pool they open."""

from __future__ import annotations

import gc
import warnings

import numpy as np

from rnnx.bench import bare_ort_case, example_step, run_all
from rnnx.exporter import export_onnx
from rnnx.runtime import StreamingSession
from tests.runtime.conftest import write_step_graph
from tests.zoo import TINY


def test_run_all_closes_what_it_opens(tmp_path):
    path = tmp_path / "bench-closes-gru.onnx"  # a name no other test's sessions carry
    export_onnx(TINY["gru-1l"](), path)
    gc.collect()  # other tests' unclosed sessions in this worker warn now, not below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        rows, checks = run_all(str(path), streams=2, steps=20)
        gc.collect()
    assert rows and checks
    unclosed = [
        str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and path.name in str(w.message)
    ]
    assert not unclosed, unclosed


def test_bare_loop_runs_the_graph_step_runs(tmp_path):
    """With a step graph, session.step is compared with a bare loop on that same graph, not the Scan graph."""
    main = export_onnx(TINY["lstm-1l"](), tmp_path / "main.onnx", strategy="scan", step_graph=False).path
    path = write_step_graph(main, tmp_path / "with-step")  # its step graph returns y + 1
    with StreamingSession(path) as sess:
        assert sess.step_graph is not None
        x = example_step(sess.contract, 1)
        _, bare_step, _, _ = bare_ort_case(sess, 1)
        y_bare = bare_step()[0]
        y_session = sess.step(x)
    with StreamingSession(path, step_graph=False) as plain:
        y_main = plain.step(x)
    np.testing.assert_allclose(y_bare.reshape(y_session.shape), y_session, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y_session, y_main + 1.0, rtol=1e-5, atol=1e-5)
