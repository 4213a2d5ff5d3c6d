"""proj-native strategy: LSTMs with proj_size as plain native LSTM ops, projection folded in."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from rnnx.exporter import check_parity, export_onnx, quantize
from rnnx.exporter.strategies.proj_native import MAX_COND, NativeProjLSTM, fold_projections
from rnnx.models import LSTMLayers, decompose
from tests.zoo import make_model

PROJ = ["lstm-1l-proj", "lstm-2l-proj", "lstm-1l-proj-bi", "lstm-2l-proj-nobias-bi"]


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize(
    "layers,bi,batch_first", [(1, False, True), (2, False, False), (2, True, True)], ids=["1l", "2l-seq-first", "2l-bi"]
)
def test_rewritten_layer_equals_the_projected_lstm(layers: int, bi: bool, batch_first: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 8, num_layers=layers, proj_size=3, bidirectional=bi, batch_first=batch_first).eval()
    native = NativeProjLSTM(lstm)
    rows = layers * (2 if bi else 1)
    for steps in (1, 6):
        x = torch.randn((2, steps, 5) if batch_first else (steps, 2, 5))
        hx = (0.5 * torch.randn(rows, 2, 3), 0.5 * torch.randn(rows, 2, 8))
        with torch.no_grad():
            want, (h, c) = lstm(x, hx)
            got, (h2, c2) = native(x, hx)
        for a, b in ((got, want), (h2, h), (c2, c)):
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
    with torch.no_grad():  # no state, and unbatched input, as nn.LSTM takes them
        torch.testing.assert_close(native(x)[0], lstm(x)[0], atol=2e-6, rtol=0)
        torch.testing.assert_close(native(x[0])[0], lstm(x[0])[0], atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", PROJ)
def test_export_matches_eager_with_native_lstm_ops_and_no_scan(tmp_path, name: str) -> None:
    model = make_model(name)
    result = export_onnx(model, tmp_path / "m.onnx", strategy="proj-native")
    ops = _ops(result.path)
    assert "LSTM" in ops and "Scan" not in ops and "Loop" not in ops, ops
    # the contract is the scan export's: h (L*D, B, P), c (L*D, B, H)
    assert [s.shape for s in result.spec.state] == [s.shape for s in model_spec(model)]
    report = check_parity(model, result.path, batch_sizes=(1, 3), steps=(1, 7, 32))
    assert report.ok and report.worst.max_abs <= 1e-5, report.table()


def model_spec(model: nn.Module):
    from rnnx.exporter.contract import derive_spec

    return derive_spec(model, model.example_input(2, 5), opset=17).state


def test_auto_picks_it_for_a_projected_lstm_right_after_trace(exported) -> None:
    _, result = exported("lstm-2l-proj", "onnx")
    assert result.strategy == "proj-native"
    assert [a.strategy for a in result.attempts] == ["trace", "proj-native"]
    assert "projections" in result.attempts[0].reason


def test_rnnx_layers_and_user_modules_are_rewritten(tmp_path) -> None:
    model = make_model("lstm-2l-proj")
    ours = decompose(model)  # nn.LSTM -> rnnx LSTMLayers, inside the zoo model
    assert isinstance(ours.rnn, LSTMLayers)
    result = export_onnx(ours, tmp_path / "m.onnx", strategy="proj-native")
    assert "LSTM" in _ops(result.path)
    assert check_parity(ours, result.path, batch_sizes=(2,), steps=(5,)).ok
    assert fold_projections(make_model("lstm-2l")) == 0  # nothing projected: nothing to fold


def test_a_model_without_projected_lstm_is_refused(tmp_path) -> None:
    from rnnx.errors import ExportError

    with pytest.raises(ExportError, match=r"proj-native: no nn.LSTM/LSTMLayers with proj_size"):
        export_onnx(make_model("gru-1l"), tmp_path / "m.onnx", strategy="proj-native")


def _degrade(model: nn.Module, cond: float | None) -> nn.Module:
    """Give layer 0's projection the condition number ``cond`` (None: rank-deficient)."""
    w = model.rnn.weight_hr_l0  # (P, H)
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    s = s.clone()
    s[-1] = 0.0 if cond is None else s[0] / cond
    with torch.no_grad():
        w.copy_((u * s) @ vh)
    return model


def test_rank_deficient_projection_is_refused_and_auto_falls_back_to_scan(tmp_path) -> None:
    model = _degrade(make_model("lstm-2l-proj"), None)
    with pytest.raises(
        ValueError,
        match=r"rnn.weight_hr_l0: expected a projection of full rank 4 with "
        r"condition number <= 1000 .*, got condition number (inf|\d)",
    ):
        fold_projections(model)
    result = export_onnx(model, tmp_path / "m.onnx")
    assert [a.strategy for a in result.attempts] == ["trace", "proj-native", "scan"]
    assert "full rank" in result.attempts[1].reason and result.strategy == "scan"


def test_condition_threshold() -> None:
    fold_projections(_degrade(make_model("lstm-1l-proj"), MAX_COND / 2))  # accepted
    with pytest.raises(ValueError, match=r"got condition number 2e\+03"):
        fold_projections(_degrade(make_model("lstm-1l-proj"), MAX_COND * 2))


def test_int8_copy_passes_parity_at_int8_tolerance(exported, tmp_path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    model, result = exported("lstm-2l-proj", "onnx")
    assert result.strategy == "proj-native"
    q = quantize(result.path, tmp_path / "m.int8.onnx", precision="int8")
    assert "DynamicQuantizeLSTM" in _ops(q.path)
    report = check_parity(model, q.path, batch_sizes=(1, 2), steps=(1, 7))
    assert report.ok and report.tolerance_source.endswith("/int8"), report.table()
