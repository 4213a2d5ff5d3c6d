"""rnnx.models.advice: the route each tutorial-style module gets is run, and it works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import rnnx
from rnnx.exporter import export_onnx
from rnnx.models.advice import candidates, rebuild_hidden, route_for
from rnnx.runtime import StreamingSession
from rnnx.testing import assert_parity


class SineStateful(nn.Module):
    """batch_first LSTM regressor taking and returning its (h, c)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 1)

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor]):
        out, hidden = self.lstm(x, hidden)
        return self.fc(out), hidden


class SeqFirstNet(nn.Module):
    """Time-major LSTM, state as separate arguments: forward(x, h, c) -> (y, h, c)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(7, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: Tensor, h: Tensor, c: Tensor):
        y, (h, c) = self.lstm(x, (h, c))
        return self.head(y), h, c


class CharRNN(nn.Module):
    """Embedding + GRU; keeps an unrelated ``input_size`` (the one-hot size) as tutorials do."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.input_size = vocab
        self.emb = nn.Embedding(vocab, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.out = nn.Linear(6, vocab)

    def forward(self, x: Tensor, h: Tensor):
        o, h = self.rnn(self.emb(x), h)
        return self.out(o), h


class MyGRUCell(nn.Module):
    """A hand-written GRU cell: forward(x, h) -> h."""

    def __init__(self, features: int = 5, hidden_size: int = 6) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(features, 3 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        xr, xz, xn = self.x2h(x).chunk(3, 1)
        hr, hz, hn = self.h2h(h).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return (1 - z) * torch.tanh(xn + r * hn) + z * h


class WithTorchCell(nn.Module):
    """A torch LSTMCell inside: forward(x, h, c) -> (h, c)."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(3, 5)

    def forward(self, x: Tensor, h: Tensor, c: Tensor):
        return self.cell(x, (h, c))


class HiddenState(nn.Module):
    """The sine tutorial: ``out, _ = self.lstm(x)``, no state in or out."""

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 8, batch_first=batch_first)
        self.fc = nn.Linear(8, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return self.fc(out)


class HiddenMore(HiddenState):
    """Hides its state and does more than head(layer(x)): no exact rebuild."""

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return torch.relu(self.fc(out)) * 2


class Forecaster(nn.Module):
    """An encoder–decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.GRU(3, 8, batch_first=True)
        self.decoder = nn.GRUCell(1, 8)


ROUTES = {  # module -> (route kind, the call the error shows)
    "lstm-state-tuple": (SineStateful, "layer", 'rnnx.wrap(model, state=[(2, "batch", 8), (2, "batch", 8)])'),
    "seq-first-h-c": (
        SeqFirstNet,
        "layer",
        'rnnx.wrap(model, state=[(1, "batch", 6), (1, "batch", 6)], batch_first=False)',
    ),
    "char-rnn": (CharRNN, "layer", 'rnnx.wrap(model, state=[(1, "batch", 6)])'),
    "hand-gru-cell": (MyGRUCell, "cell", 'rnnx.wrap(model, state=[("batch", 6)], step=True)'),
    "torch-cell-inside": (WithTorchCell, "cell", 'rnnx.wrap(model, state=[("batch", 5), ("batch", 5)], step=True)'),
    "torch-layer": (lambda: nn.GRU(3, 4, num_layers=2), "torch", "rnnx.wrap(model)"),
}


@pytest.mark.parametrize("name", list(ROUTES))
def test_the_suggested_call_runs_exports_and_matches_the_users_module(name: str, tmp_path: Path) -> None:
    make, kind, call = ROUTES[name]
    torch.manual_seed(0)
    model = make()
    route = route_for(model)
    assert (route.kind, route.call) == (kind, call)
    wrapped = eval(route.call, {"rnnx": rnnx, "model": model})  # the suggestion, as the user types it
    export_onnx(wrapped, tmp_path / "m.onnx")  # no example_input: the input is read off the module
    assert_parity(wrapped, tmp_path / "m.onnx")


def test_token_input_is_read_off_the_embedding_not_an_input_size_attribute() -> None:
    model = rnnx.wrap(CharRNN(), state=[(1, "batch", 6)])
    x = model.example_input(3, 4)
    assert x.dtype == torch.int64 and tuple(x.shape) == (3, 4) and int(x.max()) < 11
    assert candidates(CharRNN())[-1].source == "CharRNN.input_size=11"  # the attribute comes last


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_a_module_hiding_its_state_is_rebuilt_exactly_and_streams_like_it(batch_first: bool, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = HiddenState(batch_first).eval()
    rebuilt = rebuild_hidden(module)
    assert rebuilt is not None and rebuilt.call == "rnnx.models.from_torch(model.lstm, head=model.fc)"
    export_onnx(rebuilt.model, tmp_path / "m.onnx")
    x = torch.randn(2, 9, 1)  # (B, T, F)
    with torch.no_grad():
        whole = module(x if batch_first else x.transpose(0, 1))
    whole = whole if batch_first else whole.transpose(0, 1)
    session = StreamingSession(tmp_path / "m.onnx", batch_size=2)
    steps = [session.step(x[:, t].numpy()) for t in range(9)]
    np.testing.assert_allclose(np.stack(steps, 1), whole.numpy(), atol=1e-5)


def test_a_module_hiding_its_state_and_doing_more_is_not_rebuilt() -> None:
    assert route_for(HiddenMore()).kind == "hidden"
    assert rebuild_hidden(HiddenMore()) is None


def test_an_encoder_decoder_is_sent_to_the_seq2seq_bundle() -> None:
    route = route_for(Forecaster())
    assert route.kind == "seq2seq" and "Seq2Seq.from_modules(model.encoder" in route.call
    assert "export_seq2seq" in route.call
