"""contract: the ModelSpec read off a contract module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnx.errors import ExportError
from rnnx.exporter.contract import derive_spec, example_for
from tests.exporter.conftest import make_model


def test_zoo_lstm_spec() -> None:
    model = make_model("lstm-2l-proj")
    spec = derive_spec(model, model.example_input(2, 5), opset=17, exporter="scan")
    assert spec.input.shape == ("batch", "time", 5) and spec.output.shape == ("batch", "time", 3)
    assert [(s.name, s.input, s.output, s.shape) for s in spec.state] == [
        ("h", "h_in", "h_out", (2, "batch", 4)), ("c", "c_in", "c_out", (2, "batch", 8))]
    assert spec.kind == "lstm" and spec.config["num_layers"] == 2 and spec.streamable


def test_token_model_has_int64_input_without_features() -> None:
    model = make_model("tokens-rnn")
    spec = derive_spec(model, model.example_input(2, 5))
    assert spec.input.shape == ("batch", "time") and spec.input.dtype == "int64"
    assert spec.input.vocab_size == 20  # the size of its nn.Embedding: ids are range-checked at run time


def test_float_input_has_no_vocab_size() -> None:
    model = make_model("gru-1l")
    assert derive_spec(model, model.example_input(2, 5)).input.vocab_size is None


class _TwoBatchAxes(nn.Module):
    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, batch_size)]

    def forward(self, x, state):
        return x, state


def test_state_with_two_batch_axes_is_rejected() -> None:
    with pytest.raises(ExportError, match=r"state 0 must have exactly one batch axis; got shape \(2, 2\)"):
        derive_spec(_TwoBatchAxes(), torch.randn(2, 5, 3))


def test_example_input_must_be_batch_first_tensor() -> None:
    with pytest.raises(ExportError, match=r"example_input: expected a tensor \(batch, time, ...\), got"):
        example_for(make_model("gru-1l"), torch.randn(5))


def test_wrong_number_of_state_names_is_rejected() -> None:
    model = make_model("gru-1l")
    model.state_names = ["h", "c"]
    with pytest.raises(ExportError, match=r"state_names: expected 1 unique names .* got \['h', 'c'\]"):
        derive_spec(model, model.example_input(2, 5))
