"""How a backend reports a graph's (or a step program's) inputs and outputs.

A leaf module, so that :mod:`rnnx.runtime.backend` and the engines it opens lazily
(:mod:`rnnx.runtime.program_backend`) share the type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as the backend reports it."""

    name: str
    shape: tuple[Dim, ...]  # ints where fixed, a name where symbolic, None where unknown
    dtype: str | None  # spec dtype name (rnnx.spec.DTYPES); None if not a supported tensor type
    type_str: str  # the backend's own type description, for error messages
