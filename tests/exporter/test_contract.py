"""contract: the ModelSpec read off a contract module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnx.errors import ExportError
from rnnx.exporter.contract import derive_spec, example_for
from tests.zoo import make_model


def test_zoo_lstm_spec() -> None:
    model = make_model("lstm-2l-proj")
    spec = derive_spec(model, model.example_input(2, 5), opset=17, exporter="scan")
    assert spec.input.shape == ("batch", "time", 5) and spec.output.shape == ("batch", "time", 3)
    assert [(s.name, s.input, s.output, s.shape) for s in spec.state] == [
        ("h", "h_in", "h_out", (2, "batch", 4)),
        ("c", "c_in", "c_out", (2, "batch", 8)),
    ]
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


# ------------------------------------------------ near misses: an error that shows the rnnx.wrap call
class _GRUModel(nn.Module):
    """Follows the contract except where a subclass says otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def init_state(self, batch_size: int):
        return [torch.zeros(1, batch_size, 4)]

    def forward(self, x, state):
        y, h = self.gru(x, state[0])
        return y, [h]


class _BareStateReturned(_GRUModel):
    def forward(self, x, state):
        return self.gru(x, state[0])  # (y, h): h not in a list


class _TensorInitState(_GRUModel):
    def init_state(self, batch_size: int):
        return torch.zeros(1, batch_size, 4)


class _TensorStateTaken(_GRUModel):
    def forward(self, x, h):  # takes the state as a tensor
        y, h = self.gru(x, h)
        return y, [h]


class _SeqFirst(_GRUModel):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4)  # time-major


NEAR_MISSES = [
    (
        nn.LSTM(3, 4),
        r"LSTM: expected an init_state\(batch_size\) method .*found none; .*to use the module "
        r"as written: rnnx\.wrap\(model\)$",
    ),
    (nn.GRUCell(3, 4), r"GRUCell: expected an init_state.*rnnx\.wrap\(model\)$"),
    (
        _BareStateReturned(),
        r"_BareStateReturned\.forward: expected the new state as a list of tensors, got a "
        r"bare Tensor of shape \(1, 2, 4\); return \(y, \[h\]\), or use the module as written: "
        r"rnnx\.wrap\(model, state=\[\(1, \"batch\", 4\)\], state_as='tuple'\)",
    ),
    (
        _TensorInitState(),
        r"_TensorInitState\.init_state: expected a list of state tensors, got a Tensor of "
        r"shape \(1, 2, 4\); return \[h\] instead of h",
    ),
    (
        _TensorStateTaken(),
        r"_TensorStateTaken\.forward\(x, state\) raised \w+: .* rnnx calls it with "
        r"batch-first x \(2, 5, 3\) .* state as a list \[\(1, 2, 4\)\]; to use the module "
        r"as written: rnnx\.wrap\(model, state=\[\(1, \"batch\", 4\)\]\)",
    ),
    (_SeqFirst(), r"_SeqFirst\.forward\(x, state\) raised RuntimeError: .*add batch_first=False"),
]


@pytest.mark.parametrize(
    "module,match",
    NEAR_MISSES,
    ids=["nn.LSTM", "nn.GRUCell", "bare-state-returned", "tensor-init-state", "tensor-state-taken", "seq-first"],
)
def test_a_near_miss_gets_the_mismatch_and_the_wrap_call_never_a_raw_torch_error(module, match) -> None:
    from rnnx.errors import ContractError

    with pytest.raises(ContractError, match=match) as info:
        derive_spec(module.eval(), torch.randn(2, 5, 3))
    assert isinstance(info.value, ExportError)  # callers catching ExportError keep working


def test_the_suggested_wrap_call_works() -> None:
    import rnnx

    model = rnnx.wrap(_TensorStateTaken(), state=[(1, "batch", 4)])
    spec = derive_spec(model, torch.randn(2, 5, 3))
    assert [s.shape for s in spec.state] == [(1, "batch", 4)]
    model = rnnx.wrap(_BareStateReturned(), state=[(1, "batch", 4)], state_as="tuple")
    assert derive_spec(model, torch.randn(2, 5, 3)).output.shape == ("batch", "time", 4)


class _LongError(nn.Module):
    """Its forward fails with a long message whose useful part comes last (as TorchScript's do)."""

    def init_state(self, batch_size: int):
        return [torch.zeros(batch_size, 4)]

    def forward(self, x, state):
        raise RuntimeError("context " * 80 + "THE-REAL-REASON")


def test_an_underlying_error_is_not_cut_short() -> None:
    from rnnx.errors import ContractError

    with pytest.raises(ContractError, match=r"THE-REAL-REASON") as info:
        derive_spec(_LongError(), torch.randn(2, 5, 3))
    assert "context " * 60 in str(info.value)
