"""RuntimeOptions: the options StreamingSession and StreamPool share, in one frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import onnxruntime as ort

from rnnx.errors import ConfigError
from rnnx.runtime.providers import Providers

CHECK_FINITE = ("off", "warn", "raise")
MAX_THREADS = 1024  # most intra-op threads (far above any core count; 100 000 crashed onnxruntime)


@dataclass(frozen=True)
class RuntimeOptions:
    """How a model runs, independent of which model it is.

    Example:
        >>> opts = RuntimeOptions(providers="cpu", threads=1, check_finite="raise")
        >>> StreamingSession("model.onnx", options=opts)  # doctest: +SKIP

    Attributes:
        providers: "cpu", "cuda", "auto" or onnxruntime provider names (tuples with
            provider options allowed, e.g. ``[("CUDAExecutionProvider", {"device_id": 1})]``).
        threads: onnxruntime intra-op threads (0 to :data:`MAX_THREADS`); None keeps
            onnxruntime's default.
        session_options: an ``onnxruntime.SessionOptions``; not combined with ``threads``.
        check_finite: what a NaN or inf in an input or output does: "off" (nothing; the
            fastest), "warn" (a RuntimeWarning) or "raise" (NonFiniteError, state unchanged).
        step_graph: run single steps on the model's step graph when its contract names one
            (a loop-free graph beside the file, see :mod:`rnnx.runtime.step_graph`); False
            runs every call on the main graph and opens only that one.
    """

    providers: Providers = "cpu"  # execution providers, resolved by rnnx.runtime.providers
    threads: Optional[int] = None  # intra-op threads; None: onnxruntime's default
    session_options: Optional[ort.SessionOptions] = None  # full control over onnxruntime
    check_finite: str = "off"  # "off" | "warn" | "raise" on NaN/inf in inputs and outputs
    step_graph: bool = True  # run single steps on the file's step graph when it has one

    def __post_init__(self) -> None:
        if self.check_finite not in CHECK_FINITE:
            raise ConfigError(f"check_finite: expected one of {', '.join(CHECK_FINITE)}, "
                              f"got {self.check_finite!r}")
        if not isinstance(self.step_graph, bool):
            raise ConfigError(f"step_graph: expected True or False, got {self.step_graph!r}")
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_THREADS):
            raise ConfigError(f"threads: expected an int from 0 to {MAX_THREADS} or None, got {t!r}")
        if t is not None and self.session_options is not None:
            raise ConfigError("threads: set intra_op_num_threads on session_options instead "
                              "(got both threads and session_options)")

    def ort_session_options(self) -> ort.SessionOptions:
        """The ``onnxruntime.SessionOptions`` to open a session with (a new one unless given)."""
        if self.session_options is not None:
            return self.session_options
        so = ort.SessionOptions()
        if self.threads is not None:
            so.intra_op_num_threads = self.threads
        return so


def merge_options(options: Optional[RuntimeOptions], **overrides: Any) -> RuntimeOptions:
    """``options`` (default: RuntimeOptions()) with the keyword shortcuts that are not None."""
    base = options if options is not None else RuntimeOptions()
    if not isinstance(base, RuntimeOptions):
        raise ConfigError(f"options: expected a RuntimeOptions, got {type(base).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given) if given else base
