"""Provider resolution: cpu/cuda/auto/lists, never a silent fallback."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from rnnx.errors import ProviderError
from rnnx.runtime import StreamingSession, resolve_providers
from rnnx.runtime.providers import installed_packages

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_and_auto_resolve_to_available_providers():
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here; the missing-CUDA error cannot occur")
def test_cuda_without_cuda_names_the_install():
    with pytest.raises(
        ProviderError,
        match=r"CUDAExecutionProvider is not available; installed: onnxruntime "
        r".*available providers: .*CPUExecutionProvider",
    ):
        resolve_providers("cuda")


@pytest.mark.parametrize(
    "value, match",
    [
        ("gpu", r"expected one of cpu, cuda, auto .* got 'gpu'"),
        (["CoreMLExecutionProvider"], "CoreMLExecutionProvider is not available"),  # never on Linux
        ([], "expected at least one provider"),
    ],
    ids=["unknown-choice", "unavailable-name", "empty-list"],
)
def test_bad_provider_choices(value, match):
    with pytest.raises(ProviderError, match=match):
        resolve_providers(value)


def test_installed_packages_lists_onnxruntime():
    assert any(p.startswith("onnxruntime") for p in installed_packages())


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here; onnxruntime does not drop it")
def test_provider_onnxruntime_silently_dropped_is_detected(onnx_file):
    """Mutation caught: ``OrtBackend.__init__`` without its ``check_session_providers`` call.

    Asked for CUDA where it cannot load, onnxruntime only warns and builds a CPU session;
    the backend must refuse that session instead of running on the CPU unnoticed.
    """
    from rnnx.runtime.backend import OrtBackend

    path, _ = onnx_file("gru-1l")
    requested = [("CUDAExecutionProvider", {"device_id": 3}), "CPUExecutionProvider"]
    so = ort.SessionOptions()
    so.log_severity_level = 4
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        session = ort.InferenceSession(str(path), so, providers=requested)
    assert session.get_providers() == ["CPUExecutionProvider"]  # onnxruntime dropped it silently
    with pytest.raises(
        ProviderError,
        match=r"CUDAExecutionProvider \(it failed to initialise with options \{'device_id': 3\}; "
        r"active: \['CPUExecutionProvider'\]\)",
    ):
        OrtBackend(session, requested)


def test_cpu_backend_reports_device_and_keeps_state_on_host(onnx_file):
    path, model = onnx_file("gru-1l")
    with StreamingSession(path, providers="cpu") as sess:
        assert sess.device == "cpu" and sess.backend.device_id == 0
        assert sess.state_device == "cpu"
