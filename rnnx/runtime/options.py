"""RuntimeOptions: the options StreamingSession and StreamPool share, in one frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rnnx.checks import check_choice, check_int
from rnnx.errors import ConfigError
from rnnx.runtime.providers import Providers

CHECK_FINITE = ("off", "warn", "raise")
OPTIMIZATION = ("off", "basic", "extended", "all")  # onnxruntime's graph optimisation levels
MAX_THREADS = 1024  # onnxruntime crashes on absurd thread counts (100000 segfaults it)
LOG_LEVELS = ("verbose", "info", "warning", "error", "fatal")  # onnxruntime's log severities


@dataclass(frozen=True)
class RuntimeOptions:
    """How a model runs, independent of which model it is.

    Example:
        >>> opts = RuntimeOptions(providers="cpu", threads=1, check_finite="raise")
        >>> StreamingSession("model.onnx", options=opts)  # doctest: +SKIP

    Attributes:
        providers: "cpu", "cuda", "auto" or onnxruntime provider names (tuples with
            provider options allowed, e.g. ``[("CUDAExecutionProvider", {"device_id": 1})]``).
        threads: onnxruntime intra-op threads; None keeps onnxruntime's default.
        check_finite: what a NaN or inf in an input or output does: "off" (nothing; the
            fastest), "warn" (a RuntimeWarning) or "raise" (NonFiniteError, state unchanged).
        step_graph: run single steps on the model's step graph when its contract names one
            (a loop-free graph beside the file, see :mod:`rnnx.runtime.step_graph`); False
            runs every call on the main graph and opens only that one.
        optimization: onnxruntime's graph optimisation level, one of ``OPTIMIZATION``; a
            file's precision may lower it (fp16 graphs load at "extended" at most).
        log_level: the lowest severity onnxruntime itself logs, one of ``LOG_LEVELS``.
        session_config: extra onnxruntime session config entries (key, value) as strings,
            e.g. ``(("session.intra_op.allow_spinning", "0"),)``.
    """

    providers: Providers = "cpu"  # execution providers, resolved by rnnx.runtime.providers
    threads: int | None = None  # intra-op threads; None: onnxruntime's default
    check_finite: str = "off"  # "off" | "warn" | "raise" on NaN/inf in inputs and outputs
    step_graph: bool = True  # run single steps on the file's step graph when it has one
    optimization: str = "all"  # onnxruntime graph optimisation level (OPTIMIZATION)
    log_level: str = "warning"  # onnxruntime's own log severity (LOG_LEVELS)
    session_config: tuple[tuple[str, str], ...] = ()  # extra onnxruntime session config entries

    def __post_init__(self) -> None:
        check_choice("check_finite", self.check_finite, CHECK_FINITE)
        if not isinstance(self.step_graph, bool):
            raise ConfigError(f"step_graph: expected True or False, got {self.step_graph!r}")
        check_choice("optimization", self.optimization, OPTIMIZATION)
        check_choice("log_level", self.log_level, LOG_LEVELS)
        check_int("threads", self.threads, minimum=0, maximum=MAX_THREADS, optional=True)
        entries = self.session_config
        if not isinstance(entries, tuple) or not all(
            isinstance(e, tuple) and len(e) == 2 and all(isinstance(v, str) for v in e) for e in entries
        ):
            raise ConfigError(f"session_config: expected a tuple of (key, value) string pairs, got {entries!r}")


def merge_options(options: RuntimeOptions | None, **overrides: Any) -> RuntimeOptions:
    """``options`` (default: RuntimeOptions()) with the keyword shortcuts that are not None."""
    base = options if options is not None else RuntimeOptions()
    if not isinstance(base, RuntimeOptions):
        raise ConfigError(f"options: expected a RuntimeOptions, got {type(base).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given) if given else base
