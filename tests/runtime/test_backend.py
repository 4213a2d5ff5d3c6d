"""The onnxruntime backend: close() lets the native session go, even while the wrapper lives on."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from rnnx.runtime import StreamingSession, StreamPool
from rnnx.runtime.backend import OrtBackend
from rnnx.runtime.options import RuntimeOptions


def _native(backend: OrtBackend) -> weakref.ref:
    return weakref.ref(backend.session._sess)  # onnxruntime's C++ session object


def test_a_closed_backend_releases_its_native_session_and_refuses_bound_runs(onnx_file):
    path, _ = onnx_file("lstm-1l")
    backend = OrtBackend.open(path, RuntimeOptions())
    native = _native(backend)
    backend.close()
    gc.collect()
    assert native() is None  # run_bound no longer holds it
    with pytest.raises(RuntimeError, match="backend is closed"):
        backend.run_bound(None)


@pytest.mark.parametrize("kind", ["pool", "session"])
def test_close_releases_the_native_session_of_a_pool_or_session_still_referenced(onnx_file, kind):
    path, model = onnx_file("lstm-1l")
    x = np.zeros((1, model.example_input(1, 1).shape[-1]), np.float32)
    if kind == "pool":
        obj = StreamPool(path)
        obj.open("a")
        obj.step_many({"a": x[0]})  # bindings made and run
    else:
        obj = StreamingSession(path)
        obj.step(x)
    native = _native(obj.backend)
    obj.close()
    gc.collect()
    assert native() is None
