"""check_parity: report contents, verdicts, tolerances, mismatches."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rnnx.errors import ConfigError, SpecError
from rnnx.exporter import TOLERANCES, check_parity
from rnnx.onnx_tools.compare import Tolerance, compare, resolve_tolerance
from tests.zoo import make_model


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_altered_weights_fail_with_every_row_reported(exported, fmt: str) -> None:
    model, result = exported("lstm-2l", fmt)
    other = make_model("lstm-2l")
    with torch.no_grad():
        other.head.bias.add_(1e-3)  # only y changes; states stay equal
    report = check_parity(other, result.path, batch_sizes=(2,), steps=(4,))
    assert not report.ok
    by_tensor = {(r.case, r.tensor): r for r in report.rows}
    assert set(by_tensor) == {(c, t) for c in ("full", "step", "chunk3") for t in ("y", "h", "c")}
    assert not by_tensor[("full", "y")].ok and by_tensor[("full", "y")].max_abs == pytest.approx(1e-3, rel=1e-2)
    assert by_tensor[("full", "h")].ok and by_tensor[("full", "c")].ok
    assert report.worst.tensor == "y"
    assert "FAIL" in report.table()


def test_report_table_and_dict(exported) -> None:
    model, result = exported("gru-1l", "onnx")
    report = check_parity(model, result.path, batch_sizes=(1, 3), steps=(1, 7))
    lines = report.table().splitlines()
    assert lines[0].split() == ["case", "tensor", "max_abs", "max_rel", "atol", "rtol", "result"]
    assert len(lines) == 1 + len(report.rows) + 1 and lines[-1].startswith("PASS")
    # rows: b=1,T=1 full; b=1,T=7 full/step/chunk3; same for b=3 -> 8 cases x 1 tensor... x (y, h)
    assert len(report.rows) == 2 * (1 + 3) * 2
    d = json.loads(json.dumps(report.to_dict()))
    assert d["ok"] is True and d["tolerance_source"] == "table:gru" and d["atol"] == TOLERANCES[("gru", "fp32")].atol
    assert len(d["rows"]) == len(report.rows)


def test_not_streamable_models_skip_streaming_and_say_so(exported) -> None:
    model, result = exported("gru-bi", "onnx")
    report = check_parity(model, result.path, batch_sizes=(1,), steps=(7,))
    assert {r.case for r in report.rows} == {"full"}
    assert any("not streamable" in n for n in report.notes)
    assert "note: streaming cases skipped" in report.table()


def test_user_tolerance_is_used_and_reported(exported) -> None:
    model, result = exported("rnn-tanh", "onnx")
    report = check_parity(model, result.path, batch_sizes=(1,), steps=(3,), atol=0.0, rtol=0.0)
    assert report.tolerance == Tolerance(0.0, 0.0) and report.tolerance_source == "user"
    assert all(r.atol == 0.0 for r in report.rows)


@pytest.mark.parametrize("value", [-1, float("nan"), "1e-5"], ids=["negative", "nan", "text"])
def test_a_bad_tolerance_is_a_config_error(value) -> None:
    """NaN passed before (every comparison then failed, with the tolerance shown as nan)."""
    with pytest.raises(ConfigError, match=rf"atol: expected a number >= 0, got {value!r}"):
        resolve_tolerance("lstm", value, None)


def test_compare_uses_atol_plus_rtol_times_reference() -> None:
    tol = Tolerance(1e-5, 1e-3)
    ref = torch.tensor([1000.0, 0.0]).numpy()
    ok = compare("full", 1, 1, "y", ref + [0.5, 0.0], ref, tol)  # 0.5 <= 1e-5 + 1.0
    bad = compare("full", 1, 1, "y", ref + [0.0, 2e-5], ref, tol)  # 2e-5 > 1e-5 at ref 0
    shape = compare("full", 1, 1, "y", ref[:1], ref, tol)
    assert ok.ok and not bad.ok and not shape.ok and shape.max_abs == float("inf")


def test_model_of_another_shape_is_a_spec_error(exported) -> None:
    _, result = exported("lstm-1l", "onnx")
    with pytest.raises(SpecError, match=r"state: the model has shape .* but the exported file declares"):
        check_parity(make_model("lstm-2l"), result.path)


class _Memory(nn.Module):
    """y = x + h (a remembered offset); the state is kept: from zeros it stays zero."""

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, 3)]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return x + state[0][:, None, :], [state[0] * 1.0]  # (B, T, 3), [(B, 3)]


class _MemoryIgnoringState(_Memory):
    """The same contract, but its y ignores the incoming state: an export bug zeros cannot show."""

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return x * 1.0, [state[0] * 1.0]


def test_parity_starts_from_random_non_zero_states(tmp_path) -> None:
    """README: parity runs "from random non-zero states". Mutation caught: ``run_cases``
    starting every case from ``init_state`` (zeros) instead of ``random_state``: the file
    below agrees with the model from zero states in every case, streamed ones included."""
    from rnnx.exporter import export_onnx

    path = export_onnx(_MemoryIgnoringState(), tmp_path / "m.onnx", example_input=torch.randn(2, 5, 3)).path
    report = check_parity(_Memory(), path)
    assert not report.ok
    assert {r.tensor for r in report.rows if not r.ok} == {"y"}
