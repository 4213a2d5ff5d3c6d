"""The TorchScript-free ONNX path: ``strategy="dynamo"`` (torch.export) for every model kind,
and ``auto`` on a torch without the TorchScript-based exporter."""

from __future__ import annotations

import re

import onnx
import pytest
import torch
from torch import nn

import rnnx
from rnnx.exporter import check_parity, export_onnx, read_spec
from rnnx.exporter.seq2seq_export import export_seq2seq
from rnnx.exporter.strategies import DYNAMO_ORDER, auto_order, legacy_onnx_exporter
from tests.programs import HandLSTMCell, example, hand_cell
from tests.zoo import _user_s2s, make_model

LEGACY = ("trace", "proj-native", "scan-legacy", "layer-scan")  # built on torch.onnx.export(dynamo=False)


def _wrapped(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "wrap-lstm":
        return rnnx.wrap(nn.LSTM(3, 5, num_layers=2, batch_first=True))
    if name == "wrap-grucell":
        return rnnx.wrap(nn.GRUCell(3, 5))
    return hand_cell()


CASES = {  # id -> the strategy that must build it (zoo ids, then wrapped torch modules)
    "lstm-2l": "dynamo",
    "gru-2l": "dynamo",
    "rnn-tanh": "scan",
    "lstm-2l-proj": "scan",
    "convlstm-k3": "scan",
    "tokens-lstm": "dynamo",
    "wrap-lstm": "dynamo",
    "wrap-grucell": "scan",
    "wrap-hand-cell": "scan",
}


def _example(model: nn.Module) -> torch.Tensor | None:
    return example(model, 2, 5) if isinstance(getattr(model, "module", None), HandLSTMCell) else None


@pytest.mark.parametrize("name", list(CASES))
def test_every_model_kind_exports_torchscript_free_with_parity(tmp_path, exported, capfd, name: str) -> None:
    expected = CASES[name]
    if name.startswith("wrap-"):
        model = _wrapped(name)
        capfd.readouterr()
        result = export_onnx(model, tmp_path / "m.onnx", strategy="dynamo", example_input=_example(model))
        # torch.export's own log ("W1206 12:00:00.000 ... torchvision is not installed") is DEBUG on rnnx
        assert not re.search(r"^[DIWE]\d{4} ", capfd.readouterr().err, re.M)
    else:  # the zoo's dynamo exports are shared with the other tests
        model, result = exported(name, "onnx", "dynamo")
    assert result.strategy == expected, [(a.strategy, a.reason[:200]) for a in result.attempts]
    assert all(a.strategy in DYNAMO_ORDER for a in result.attempts)
    assert read_spec(result.path).exporter == expected
    report = check_parity(model, result.path)  # batch 1 and 3, T 1, 7 and 32, streamed and whole
    assert report.ok, report.table()


def test_native_op_graph_declares_symbolic_batch_and_time(exported) -> None:
    """torch.export's translation of nn.LSTM declared y with the example's 5 steps; not any more."""
    _, result = exported("lstm-2l", "onnx", "dynamo")
    graph = onnx.load(result.path).graph
    assert {n.op_type for n in graph.node} >= {"LSTM"}
    y = next(o for o in graph.output if o.name == "y")
    assert [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == ["batch", "time", 3]
    assert not any(d.dim_value == 5 for v in graph.value_info for d in v.type.tensor_type.shape.dim[1:2])


def test_seq2seq_bundle_exports_through_dynamo(tmp_path) -> None:
    done = export_seq2seq(_user_s2s(), tmp_path, strategy="dynamo")
    assert done.report.ok, done.report.table()
    assert read_spec(done.encoder).exporter == read_spec(done.decoder).exporter == "dynamo"


def test_auto_uses_the_legacy_exporter_only_while_torch_has_it(tmp_path, monkeypatch) -> None:
    """A torch without ``torch.onnx.utils.export`` and ``torch._C._jit_onnx_log`` (the legacy exporter
    removed): auto goes TorchScript-free, and a legacy strategy asked by name says why it fails."""
    assert legacy_onnx_exporter() and auto_order()[0] == "trace"  # this torch still ships it
    monkeypatch.delattr(torch.onnx.utils, "export")
    monkeypatch.delattr(torch._C, "_jit_onnx_log")
    assert not legacy_onnx_exporter() and auto_order() == DYNAMO_ORDER
    model = make_model("gru-2l")
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result.strategy == "dynamo" and [a.strategy for a in result.attempts] == ["dynamo"]
    assert check_parity(model, result.path).ok
    with pytest.raises(rnnx.errors.ExportError, match=r"trace: torch .* has no TorchScript-based ONNX exporter"):
        export_onnx(model, tmp_path / "t.onnx", strategy="trace")
    assert not set(LEGACY) & {a.strategy for a in result.attempts}
