"""rnnx.onnx_tools.compare: the one tolerance table; an element passes when
``|got - ref| <= atol + rtol * |ref|`` (not a hair more); the report says whose tolerance it used;
check_close, the one max-abs check that stops an ONNX-level tool at the first miss."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.errors import ParityError, SpecError
from rnnx.onnx_tools.compare import TOLERANCES, Tolerance, check_close, compare, resolve_tolerance

TOL = Tolerance(1e-5, 1e-3)
REF = np.array([1000.0, 0.0, -2.0], np.float32)


def test_check_close_returns_the_max_abs_difference() -> None:
    ref = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    assert check_close("x", ref + np.float32(1e-6), ref, 1e-5) == pytest.approx(1e-6, rel=0.5)
    assert check_close("x", ref, ref, 0.0) == 0.0


@pytest.mark.parametrize(
    ("got", "message"),
    [
        (np.array([1.0, 2.5]), r"^run 3 differs by 0\.5 \(atol 0\.01\)$"),
        (np.array([1.0, np.nan]), r"^run 3 differs by inf \(atol 0\.01\)$"),
        (np.array([1.0, 2.0, 3.0]), r"^run 3 differs by inf \(atol 0\.01\)$"),
    ],
)
def test_check_close_names_what_differs_by_how_much(got: np.ndarray, message: str) -> None:
    with pytest.raises(ParityError, match=message):
        check_close("run 3 differs", got, np.array([1.0, 2.0]), 0.01)


def _row(got: np.ndarray, ref: np.ndarray = REF, tol: Tolerance = TOL):
    return compare("full", 1, 1, "y", got, ref, tol)


@pytest.mark.parametrize("scale, ok", [(0.99, True), (1.01, False)], ids=["just-under", "just-over"])
@pytest.mark.parametrize("where", [0, 1, 2], ids=["large-ref", "zero-ref", "small-ref"])
def test_an_element_passes_up_to_atol_plus_rtol_times_the_reference(where: int, scale: float, ok: bool) -> None:
    bound = TOL.atol + TOL.rtol * abs(float(REF[where]))
    got = REF.astype(np.float64)
    got[where] += scale * bound
    row = _row(got, REF.astype(np.float64))
    assert row.ok is ok and row.score == pytest.approx(scale, rel=1e-6)
    assert row.max_abs == pytest.approx(scale * bound, rel=1e-6)


def test_max_rel_counts_only_elements_larger_than_atol() -> None:
    row = _row(REF + np.array([0.5, 1e-6, 0.0], np.float32))
    assert row.max_rel == pytest.approx(0.5 / 1000.0, rel=1e-4)  # the zero reference is left out


@pytest.mark.parametrize(
    "got",
    [np.array([np.nan, 0.0, -2.0]), np.array([np.inf, 0.0, -2.0]), np.array([1000.0, 0.0])],
    ids=["nan", "inf", "shape"],
)
def test_a_non_finite_or_misshapen_output_is_infinitely_far(got: np.ndarray) -> None:
    row = _row(got)
    assert not row.ok and row.max_abs == float("inf") and row.score == float("inf")


@pytest.mark.parametrize(
    "kind, atol, rtol, precision, want, source",
    [
        ("lstm", None, None, "fp32", TOLERANCES[("lstm", "fp32")], "table:lstm"),
        ("convlstm", None, None, "fp32", TOLERANCES[("convlstm", "fp32")], "table:convlstm"),
        ("my-own-module", None, None, "fp32", TOLERANCES[("custom", "fp32")], "table:custom"),
        ("gru", None, None, "int8", TOLERANCES[("gru", "int8")], "table:gru/int8"),
        ("lstm", 1e-3, None, "fp32", Tolerance(1e-3, TOLERANCES[("lstm", "fp32")].rtol), "user+table:lstm"),
        ("lstm", None, 0.0, "fp16", Tolerance(TOLERANCES[("lstm", "fp16")].atol, 0.0), "user+table:lstm/fp16"),
        ("lstm", 0, 0, "fp32", Tolerance(0.0, 0.0), "user"),
    ],
    ids=["family", "convlstm", "unknown-family", "int8", "user-atol", "user-rtol-fp16", "user-both"],
)
def test_resolve_tolerance_names_whose_tolerance_it_is(
    kind: str, atol: float | None, rtol: float | None, precision: str, want: Tolerance, source: str
) -> None:
    assert resolve_tolerance(kind, atol, rtol, precision) == (want, source)


def test_an_unknown_precision_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"^precision: expected one of fp16, fp32, int8, got 'bf16'$"):
        resolve_tolerance("lstm", None, None, "bf16")
