"""rnnx.bench: the measurements close every session and pool they open."""

from __future__ import annotations

import gc
import warnings

from rnnx.bench import run_all
from rnnx.exporter import export_onnx
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
    unclosed = [str(w.message) for w in caught
                if issubclass(w.category, ResourceWarning) and path.name in str(w.message)]
    assert not unclosed, unclosed
