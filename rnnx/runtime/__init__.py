"""Streaming inference on onnxruntime: imports numpy, onnxruntime and rnnx.spec/errors only.

- :class:`StreamingSession`: one model, one set of streams stepped together.
- :class:`StreamPool`: many independent streams through one model, batched per call.
- :class:`ForecastSession`: an encoder–decoder (seq2seq) bundle: forecast from a window.
- :class:`RuntimeOptions`: providers, threads, check_finite, shared by all of them.

All run on a backend (:mod:`rnnx.runtime.backend`; onnxruntime today).
"""

from rnnx.runtime.contract import CONTEXT_KEY, ForeignModel
from rnnx.runtime.forecast import ForecastSession, ForecastStream
from rnnx.runtime.options import RuntimeOptions
from rnnx.runtime.pool import StreamPool
from rnnx.runtime.providers import resolve_providers
from rnnx.runtime.session import StreamingSession

__all__ = [
    "StreamingSession",
    "StreamPool",
    "ForecastSession",
    "ForecastStream",
    "RuntimeOptions",
    "resolve_providers",
    "CONTEXT_KEY",
    "ForeignModel",
]
