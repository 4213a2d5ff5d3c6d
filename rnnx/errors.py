"""Every exception rnnx raises on purpose.

Each subclasses the builtin that fits (ValueError, TypeError, KeyError, ...) so callers
can catch them naturally, and :class:`RnnxError` so they can catch all of rnnx at once.
Messages name the input, the expected and the received value.
"""

from __future__ import annotations


class RnnxError(Exception):
    """Base class of every rnnx error."""


class ConfigError(RnnxError, ValueError):
    """A model or training configuration is invalid (unknown kind, bad option value)."""


class CheckpointError(RnnxError, ValueError):
    """A checkpoint is missing, corrupt or not an rnnx checkpoint."""


class ModelFileError(RnnxError, ValueError):
    """An exported model file is missing, corrupt, not ONNX/TorchScript, or lacks a usable contract."""


class SpecError(RnnxError, ValueError):
    """The ``rnnx.spec`` state contract is malformed or inconsistent with the graph."""


class ShapeError(RnnxError, ValueError):
    """An array has the wrong rank or size for the input it is given as."""


class DTypeError(RnnxError, TypeError):
    """An array has a dtype that cannot be used for the input it is given as."""


class StateError(RnnxError, ValueError):
    """A state dictionary or state file does not match the model's state contract."""


class NotStreamableError(RnnxError, ValueError):
    """Step-by-step use of a model that only runs on whole sequences (bidirectional)."""


class ProviderError(RnnxError, RuntimeError):
    """An execution provider was requested that is not available in this install."""


class UnknownStreamError(RnnxError, KeyError):
    """A stream id that is not open in a pool."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class StreamExistsError(RnnxError, ValueError):
    """Opening a stream id that is already open."""


class DuplicateStreamError(RnnxError, ValueError):
    """The same stream id given twice for one batched step."""


class ExportError(RnnxError, RuntimeError):
    """No export path produced a graph that passes the structural and parity checks."""


class ContractError(ExportError, TypeError):
    """A module almost follows the rnnx contract; the message shows the ``rnnx.wrap`` call that fits."""


class ParityError(RnnxError, AssertionError):
    """An exported model disagrees with the eager model beyond tolerance.

    Attributes:
        report: the full :class:`rnnx.onnx_tools.compare.ParityReport`.
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class NonFiniteError(RnnxError, ValueError):
    """A NaN or inf in an input or output, with ``check_finite="raise"``."""


class ClosedError(RnnxError, RuntimeError):
    """A session or pool used after ``close()`` (a pool also once its batcher failed, or in a
    ``fork()``ed child)."""


class ConcurrentUseError(RnnxError, RuntimeError):
    """One StreamingSession called from two threads at once (it serves one thread at a time)."""


class PoolFullError(RnnxError, RuntimeError):
    """A StreamPool limit was reached (``max_streams`` open streams, ``max_pending`` queued steps)."""


class InputValueError(RnnxError, ValueError):
    """An input whose values the model cannot take: a token id outside the vocabulary, or a
    step the graph rejected at run time."""


class StatefulError(RnnxError, ValueError):
    """An ONNX file whose recurrent state cannot be exposed as graph inputs/outputs (make_stateful)."""


class InputFileError(RnnxError, ValueError):
    """A data file given to the CLI (``.npy``, ``.csv``, ``.txt``) is unreadable or does not fit the model."""


class UnsupportedVersionError(RnnxError, ImportError):
    """An installed dependency (torch) is older than the version rnnx needs."""


class WriteTargetError(RnnxError, ValueError):
    """A path rnnx was asked to write is not a regular file (a device, FIFO, folder, dangling link)."""


CAUSE_LIMIT = 4000  # characters of an underlying error kept in ours (bounded, but never the useful part cut)


def cause_text(e: BaseException) -> str:
    """An underlying exception as one line for our own message: whitespace folded, at most
    :data:`CAUSE_LIMIT` characters (its head and its tail, where long tracebacks say what failed)."""
    text = " ".join(str(e).split()) or type(e).__name__
    if len(text) <= CAUSE_LIMIT:
        return text
    half = CAUSE_LIMIT // 2
    return f"{text[:half]} [... {len(text) - CAUSE_LIMIT} characters ...] {text[-half:]}"
