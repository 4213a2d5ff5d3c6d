"""Execution providers: turn ``"cpu" | "cuda" | "auto" | [names]`` into an onnxruntime list.

Never falls back silently: asking for CUDA where it is not installed raises
:class:`~rnnx.errors.ProviderError` saying which onnxruntime package is installed and
which providers it offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

import onnxruntime as ort

from rnnx.errors import ProviderError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
CHOICES = ("cpu", "cuda", "auto")
# "cuda"/"auto" compute in float32 as the exported graph says: onnxruntime's CUDA provider
# otherwise lets matmuls and convolutions use TF32 on Ampere and newer GPUs (about 1e-3
# relative error, measured on an H100), which parity with the eager model cannot pass.
# A provider list with your own options (e.g. {"use_tf32": "1"}) is taken as given.
CUDA_OPTIONS = {"use_tf32": "0"}

Providers = str | Sequence[str]


def installed_packages() -> list[str]:
    """Names and versions of the onnxruntime distributions installed here."""
    found = []
    for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found or [f"onnxruntime {ort.__version__} (unknown distribution)"]


def _missing(what: str, available: list[str]) -> ProviderError:
    return ProviderError(
        f"providers: {what} is not available; installed: {', '.join(installed_packages())}; "
        f"available providers: {available}. For CUDA install onnxruntime-gpu instead of "
        f"onnxruntime (pip install 'rnnx[gpu]'), or use providers='cpu' or 'auto'"
    )


def resolve_providers(providers: Providers) -> list[Any]:
    """Resolve the ``providers`` argument into onnxruntime provider names.

    Args:
        providers: "cpu", "cuda", "auto" (CUDA when present, else CPU) or a list of
            onnxruntime provider names.

    Returns:
        The provider list to hand to ``onnxruntime.InferenceSession``: names, and for
        "cuda"/"auto" a ``(name, options)`` pair that keeps CUDA in exact float32.

    Raises:
        ProviderError: a requested provider is not available, or the choice is unknown.
    """
    available = list(ort.get_available_providers())
    if isinstance(providers, str):
        choice = providers.lower()
        if choice == "cpu":
            return [CPU]
        if choice == "cuda":
            if CUDA not in available:
                raise _missing(CUDA, available)
            return [(CUDA, dict(CUDA_OPTIONS)), CPU]
        if choice == "auto":
            return [(CUDA, dict(CUDA_OPTIONS)), CPU] if CUDA in available else [CPU]
        raise ProviderError(
            f"providers: expected one of {', '.join(CHOICES)} or a list of "
            f"onnxruntime provider names, got {providers!r}"
        )
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    if not names:
        raise ProviderError(f"providers: expected at least one provider, got {list(providers)!r}")
    for name in names:
        if name not in available:
            raise _missing(str(name), available)
    return list(providers)


def check_session_providers(requested: Sequence[str], active: Sequence[str]) -> None:
    """Raise if onnxruntime dropped a requested provider while building the session.

    onnxruntime silently falls back to CPU when the CUDA libraries fail to load.

    Args:
        requested: the providers asked for (names, or ``(name, options)`` pairs).
        active: the session's providers (``get_providers()``).
    """
    active = list(active)
    for p in requested:
        name, opts = (p[0], p[1]) if isinstance(p, tuple) else (p, None)
        if name not in active:
            asked = f" with options {opts}" if opts else ""
            raise _missing(f"{name} (it failed to initialise{asked}; active: {active})", active)
