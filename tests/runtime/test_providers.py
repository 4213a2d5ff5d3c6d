"""Provider resolution: cpu/cuda/auto/lists, never a silent fallback."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tests.runtime.conftest import reference, sequence
from rnnx.errors import ProviderError
from rnnx.runtime import StreamingSession, resolve_providers
from rnnx.runtime.providers import installed_packages

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider not available (needs onnxruntime-gpu and a GPU)")


def test_cpu_and_auto_resolve_to_available_providers():
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here; the missing-CUDA error cannot occur")
def test_cuda_without_cuda_names_the_install():
    with pytest.raises(ProviderError, match=r"CUDAExecutionProvider is not available; installed: onnxruntime .*available providers: .*CPUExecutionProvider"):
        resolve_providers("cuda")


@pytest.mark.parametrize("value, match", [
    ("gpu", r"expected one of cpu, cuda, auto .* got 'gpu'"),
    (["TensorrtExecutionProvider"], "TensorrtExecutionProvider is not available"),
    ([], "expected at least one provider"),
], ids=["unknown-choice", "unavailable-name", "empty-list"])
def test_bad_provider_choices(value, match):
    with pytest.raises(ProviderError, match=match):
        resolve_providers(value)


def test_installed_packages_lists_onnxruntime():
    assert any(p.startswith("onnxruntime") for p in installed_packages())


@pytest.mark.gpu
@gpu
def test_cuda_session_keeps_state_on_device_and_matches_eager(exported):
    path, model = exported("lstm-2l")
    x = sequence(model, 2, 6)
    sess = StreamingSession(path, providers=[("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"],
                            batch_size=2)
    assert sess.device == "cuda" and sess.backend.device_id == 0
    assert all(v.device_name().lower() == "cuda" for v in sess._engine.vals[0])
    ys = np.stack([sess.step(x[:, t]) for t in range(3)], axis=1)
    ys = np.concatenate([ys, sess.feed(x[:, 3:])], axis=1)
    np.testing.assert_allclose(ys, reference(model, x), atol=1e-4)
    sess.set_state(sess.get_state())
    sess.reset()
    assert not sess.get_state()["h"].any()


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here; onnxruntime does not drop it")
def test_provider_onnxruntime_silently_dropped_is_detected(exported):
    """Mutation caught: ``OrtBackend.__init__`` without its ``check_session_providers`` call.

    Asked for CUDA where it cannot load, onnxruntime only warns and builds a CPU session;
    the backend must refuse that session instead of running on the CPU unnoticed.
    """
    from rnnx.runtime.backend import OrtBackend

    path, _ = exported("gru-1l")
    requested = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    so = ort.SessionOptions()
    so.log_severity_level = 4
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        session = ort.InferenceSession(str(path), so, providers=requested)
    assert session.get_providers() == ["CPUExecutionProvider"]  # onnxruntime dropped it silently
    with pytest.raises(ProviderError, match=r"CUDAExecutionProvider \(it failed to initialise; active: \['CPUExecutionProvider'\]\)"):
        OrtBackend(session, requested)


def test_cpu_backend_reports_device_and_keeps_state_on_host(exported):
    path, model = exported("gru-1l")
    with StreamingSession(path, providers="cpu") as sess:
        assert sess.device == "cpu" and sess.backend.device_id == 0
        assert all(isinstance(v, np.ndarray) for v in sess._engine.vals[0])
