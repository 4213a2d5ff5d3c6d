"""Compare exported outputs against reference ones: the tolerance table and the parity report.

numpy only: used by the torch-level parity check (:mod:`rnnx.exporter.parity`) and by the
ONNX-level tools that compare two graphs (step graph, stateful, Triton). An element passes
when ``|got - ref| <= atol + rtol * |ref|``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rnnx.checks import check_number
from rnnx.errors import ParityError, SpecError
from rnnx.table import render


@dataclass(frozen=True)
class Tolerance:
    """Element-wise tolerance ``atol + rtol * |eager|``."""

    atol: float  # absolute part
    rtol: float  # relative part (matters for large outputs only)


# (family, precision) -> tolerance; "custom" covers user-written modules. Reduced precision is
# judged against the float eager model, so its entries hold the quantisation error measured on
# the zoo's families (tiny and H=64/256 models, T<=32, non-zero states) with a safety margin.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("rnn", "fp32"): Tolerance(1e-5, 1e-6),
    ("lstm", "fp32"): Tolerance(1e-5, 1e-6),
    ("gru", "fp32"): Tolerance(1e-5, 1e-6),
    ("convlstm", "fp32"): Tolerance(1e-5, 1e-5),  # convolutions sum many terms: more relative slack
    ("seq2seq", "fp32"): Tolerance(1e-5, 1e-5),  # generated sequences: outputs fed back, errors compound a little
    ("custom", "fp32"): Tolerance(1e-5, 1e-5),
    ("foreign", "fp32"): Tolerance(1e-5, 1e-4),  # third-party graphs made stateful: their own op choices
    ("rnn", "fp16"): Tolerance(1e-2, 1e-2),
    ("lstm", "fp16"): Tolerance(1e-2, 1e-2),
    ("gru", "fp16"): Tolerance(1e-2, 1e-2),
    ("convlstm", "fp16"): Tolerance(1e-2, 1e-2),
    ("custom", "fp16"): Tolerance(1e-2, 1e-2),
    ("rnn", "int8"): Tolerance(5e-2, 5e-2),
    ("lstm", "int8"): Tolerance(5e-2, 5e-2),
    ("gru", "int8"): Tolerance(5e-2, 5e-2),
    ("convlstm", "int8"): Tolerance(5e-2, 5e-2),
    ("custom", "int8"): Tolerance(5e-2, 5e-2),
}
REBUILT_ATOL = 1e-5  # a zoo module rebuilt from the user's layers (models.advice) vs the user's forward, in torch
BATCHED_FP32_ATOL = 1e-6  # a served float32 sequence vs the same graph run alone (batch mates, same runtime)
STREAM_CHUNK = 3  # chunk length of the "chunked" streaming case
PROBE_BATCHES = (3,)  # batch sizes of the export-time probe (the export example is batch 2)
PROBE_STEPS = (1, 7)  # sequence lengths of the probe (the example is 5 steps)


@dataclass(frozen=True)
class ParityRow:
    """One tensor compared in one case."""

    case: str  # "full", "step" or "chunk3"
    batch: int  # batch size
    steps: int  # sequence length
    tensor: str  # "y" or a state name
    max_abs: float  # max |exported - eager|
    max_rel: float  # max |exported - eager| / |eager| over elements with |eager| > atol
    atol: float  # tolerance used
    rtol: float
    score: float  # max |diff| / (atol + rtol |eager|); <= 1 passes
    ok: bool

    def label(self) -> str:
        return f"{self.case} b={self.batch} T={self.steps}"


@dataclass
class ParityReport:
    """All comparisons of one parity check.

    Attributes:
        path: the exported file.
        tolerance: the tolerance used, and ``tolerance_source`` says where it came from.
        rows: one row per tensor per case.
        notes: skipped cases and why.
    """

    path: str
    tolerance: Tolerance
    tolerance_source: str  # "table:lstm" or "user"
    rows: list[ParityRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def worst(self) -> ParityRow | None:
        """The row closest to (or furthest past) its tolerance."""
        return max(self.rows, key=lambda r: (r.score, r.max_abs), default=None)

    @property
    def max_abs(self) -> float:
        return max((r.max_abs for r in self.rows), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "path": self.path,
            "ok": self.ok,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "tolerance_source": self.tolerance_source,
            "max_abs": self.max_abs,
            "worst": asdict(worst) if worst else None,
            "rows": [asdict(r) for r in self.rows],
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """One aligned line per tensor per case, then the verdict."""
        head = ("case", "tensor", "max_abs", "max_rel", "atol", "rtol", "result")
        text = [
            render(
                head,
                [
                    (
                        r.label(),
                        r.tensor,
                        f"{r.max_abs:.3g}",
                        f"{r.max_rel:.3g}",
                        f"{r.atol:g}",
                        f"{r.rtol:g}",
                        "ok" if r.ok else "FAIL",
                    )
                    for r in self.rows
                ],
            )
        ]
        text += [f"note: {n}" for n in self.notes]
        worst = self.worst
        verdict = "PASS" if self.ok else "FAIL"
        text.append(
            f"{verdict}: {len(self.rows)} comparisons, worst {worst.tensor} in "
            f"{worst.label()}: max_abs {worst.max_abs:.3g} "
            f"(tolerance {self.tolerance_source}: atol {self.tolerance.atol:g}, "
            f"rtol {self.tolerance.rtol:g})"
            if worst
            else f"{verdict}: no comparisons"
        )
        return "\n".join(text)


def compare(
    case: str, batch: int, steps: int, tensor: str, got: np.ndarray, ref: np.ndarray, tol: Tolerance
) -> ParityRow:
    """Compare one exported tensor against the eager one."""
    if got.shape != ref.shape:
        inf = float("inf")
        return ParityRow(case, batch, steps, tensor, inf, inf, tol.atol, tol.rtol, inf, False)
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(got64 - ref64)
    diff[~np.isfinite(diff)] = np.inf
    mag = np.abs(ref64)
    bound = tol.atol + tol.rtol * mag
    big = mag > tol.atol
    max_rel = float((diff[big] / mag[big]).max()) if big.any() else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):  # atol = rtol = 0: exact match needed
        ratio = np.where(diff == 0, 0.0, diff / bound)
    score = float(ratio.max()) if diff.size else 0.0
    return ParityRow(case, batch, steps, tensor, max_abs, max_rel, tol.atol, tol.rtol, score, bool(score <= 1.0))


def check_close(what: str, got: np.ndarray, ref: np.ndarray, atol: float) -> float:
    """The max ``|got - ref|`` (:func:`compare` with ``atol`` alone), for a check that stops at the first miss.

    Raises:
        ParityError: ``"<what> by <max_abs> (atol <atol>)"`` past ``atol`` (a shape mismatch or
            a non-finite difference counts as infinitely far).
    """
    row = compare(what, 0, 0, what, got, ref, Tolerance(atol, 0.0))
    if not row.ok:
        raise ParityError(f"{what} by {row.max_abs:.3g} (atol {atol:g})")
    return row.max_abs


def resolve_tolerance(
    kind: str, atol: float | None, rtol: float | None, precision: str = "fp32"
) -> tuple[Tolerance, str]:
    """The (family, precision) table entry, with the user's overrides applied."""
    family = kind if (kind, precision) in TOLERANCES else "custom"
    if (family, precision) not in TOLERANCES:
        raise SpecError(
            f"precision: expected one of {', '.join(sorted({p for _, p in TOLERANCES}))}, got {precision!r}"
        )
    base = TOLERANCES[(family, precision)]
    source = f"table:{family}" + ("" if precision == "fp32" else f"/{precision}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None:
            check_number(name, value)
    if atol is not None or rtol is not None:
        source = "user" if atol is not None and rtol is not None else f"user+{source}"
    return Tolerance(base.atol if atol is None else float(atol), base.rtol if rtol is None else float(rtol)), source


__all__ = [
    "PROBE_BATCHES",
    "PROBE_STEPS",
    "STREAM_CHUNK",
    "TOLERANCES",
    "ParityReport",
    "ParityRow",
    "Tolerance",
    "check_close",
    "compare",
    "resolve_tolerance",
]
