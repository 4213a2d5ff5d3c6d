"""How a backend reports a graph's (or a step program's) inputs and outputs.

A leaf module, so that :mod:`rnnx.runtime.backend` and the engines it opens lazily
(:mod:`rnnx.runtime.program_backend`) share the type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnx.spec import DTYPE_TABLE, TensorSpec

Dim = int | str | None
UNKNOWN_DIM = "?"  # how a dim the graph leaves unknown is written in descriptions (rnnx inspect)


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as the backend reports it: a report, not the contract.

    Kept apart from :class:`rnnx.spec.TensorSpec` (the contract's tensor) because a graph
    says less than a contract and more loosely: a dim may be unknown (None) or carry any
    symbolic name, the dtype may be one rnnx does not handle (None, with the backend's own
    ``type_str``), and there is no batch or time role. :mod:`rnnx.runtime.contract` checks
    the contract's tensors against these reports.
    """

    name: str
    shape: tuple[Dim, ...]  # ints where fixed, a name where symbolic, None where unknown
    dtype: str | None  # spec dtype name (rnnx.spec.DTYPES); None if not a supported tensor type
    type_str: str  # the backend's own type description, for error messages

    @classmethod
    def of(cls, tensor: TensorSpec, name: str | None = None) -> TensorInfo:
        """The report of a graph tensor declared by the contract (``name``: its graph name, e.g. a state's input)."""
        return cls(name or tensor.name, tuple(tensor.shape), tensor.dtype, DTYPE_TABLE[tensor.dtype][1])

    def to_dict(self) -> dict[str, Any]:
        """``{name, shape, dtype}`` for descriptions: unknown dims as ``"?"``, an unsupported dtype as ``type_str``."""
        shape = [UNKNOWN_DIM if d is None else d for d in self.shape]
        return {"name": self.name, "shape": shape, "dtype": self.dtype or self.type_str}
