"""from_torch / from_conv_cells: zoo models holding the weights of layers a user trained."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.exporter import export_onnx
from rnnx.models import ConvLSTM, RecurrentModel, from_conv_cells, from_torch, reorder_gates
from rnnx.testing import assert_parity
from tests.models.test_wrap import TutorialConvLSTMCell

torch.set_num_threads(1)

LAYERS = {
    "lstm-2l-seq-first": lambda: nn.LSTM(3, 6, num_layers=2),
    "lstm-proj-bi": lambda: nn.LSTM(3, 6, proj_size=2, bidirectional=True, batch_first=True),
    "gru-nobias": lambda: nn.GRU(3, 6, bias=False),
    "rnn-relu-2l": lambda: nn.RNN(3, 6, num_layers=2, nonlinearity="relu", batch_first=True),
}


def _seeded(factory):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory()


@pytest.mark.parametrize("with_head", [False, True], ids=["no-head", "head"])
@pytest.mark.parametrize("name", list(LAYERS), ids=list(LAYERS))
def test_zoo_model_equals_the_layer_and_head(name: str, with_head: bool) -> None:
    layer = _seeded(LAYERS[name]).eval()
    width = layer.proj_size or layer.hidden_size if isinstance(layer, nn.LSTM) else layer.hidden_size
    width *= 2 if layer.bidirectional else 1
    head = _seeded(lambda: nn.Linear(width, 2)) if with_head else None
    model = from_torch(layer, head)
    assert isinstance(model, RecurrentModel) and not model.training
    x = torch.randn(2, 5, 3)  # batch-first, whatever the layer's batch_first
    state = [torch.randn(s.shape) for s in model.init_state(2)]
    y, new = model(x, state)
    with torch.no_grad():
        hx = tuple(state) if isinstance(layer, nn.LSTM) else state[0]
        ref, ref_state = layer(x if layer.batch_first else x.transpose(0, 1), hx)
        ref = ref if layer.batch_first else ref.transpose(0, 1)
        ref = head(ref) if head is not None else ref
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(new, list(ref_state) if isinstance(layer, nn.LSTM) else [ref_state])


def test_from_torch_exports_and_passes_parity(tmp_path) -> None:
    model = from_torch(_seeded(lambda: nn.LSTM(3, 6, num_layers=2)), _seeded(lambda: nn.Linear(6, 1)))
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result.strategy == "trace"
    assert_parity(model, result.path, batch_sizes=(1, 3), steps=(1, 7))


@pytest.mark.parametrize(
    "layer,head,match",
    [
        (nn.LSTMCell(3, 4), None, r"layer: expected torch's nn.LSTM, nn.GRU or nn.RNN, got LSTMCell"),
        (nn.GRU(3, 4), nn.Linear(5, 1), r"head: expected Linear with in_features=4 .*got Linear\(in_features=5\)"),
        (nn.GRU(3, 4, bidirectional=True), nn.Linear(4, 1), r"in_features=8"),
    ],
    ids=["cell", "head-width", "bidirectional-head-width"],
)
def test_layers_that_do_not_fit_are_refused(layer, head, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_torch(layer, head)


def test_tutorial_convlstm_cells_in_ifog_order_load_into_the_zoo_convlstm() -> None:
    cell = _seeded(TutorialConvLSTMCell).eval()  # splits i, f, o, g; 2 -> 3 channels, k=3
    model = from_conv_cells([cell], image_size=(4, 4), gate_order="ifog")
    assert isinstance(model, ConvLSTM)
    x = torch.randn(2, 5, 2, 4, 4)
    h = c = torch.zeros(2, 3, 4, 4)
    ys = []
    with torch.no_grad():
        for t in range(5):
            h, c = cell(x[:, t], (h, c))
            ys.append(h)
        y, (hn, cn) = model(x, model.init_state(2))
    torch.testing.assert_close(y, torch.stack(ys, 1))
    torch.testing.assert_close(hn[0], h)
    wrong = from_conv_cells([cell], image_size=(4, 4), gate_order="ifgo")  # the order matters
    assert not torch.allclose(wrong(x, wrong.init_state(2))[0], y)


def test_reorder_gates_moves_blocks_and_refuses_bad_orders() -> None:
    t = torch.arange(8.0)  # blocks i=[0,1] f=[2,3] o=[4,5] g=[6,7]
    assert reorder_gates(t, "ifog").tolist() == [0, 1, 2, 3, 6, 7, 4, 5]
    with pytest.raises(ConfigError, match=r"gate_order: expected a permutation of 'ifgo'"):
        reorder_gates(t, "iffo")
    with pytest.raises(ConfigError, match=r"cells: expected one or more ConvLSTM cells"):
        from_conv_cells([nn.Linear(2, 2)], image_size=(4, 4))


class _UserConvLSTMCell(nn.Module):
    """A user's ConvLSTM cell (gates i, f, o, g), its conv with or without a bias."""

    def __init__(self, in_ch: int, hidden: int, bias: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_ch + hidden, 4 * hidden, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), self.hidden, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _user_stack(biases: tuple[bool, ...]) -> list[_UserConvLSTMCell]:
    """Cells 2 -> 3 -> 3 channels, every bias nonzero (a bias left at its init would show)."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        cells = [_UserConvLSTMCell(2 if i == 0 else 3, 3, bias).eval() for i, bias in enumerate(biases)]
        for cell in cells:
            if cell.conv.bias is not None:
                nn.init.uniform_(cell.conv.bias, 0.5, 1.5)
    return cells


def _run_cells(cells: list[_UserConvLSTMCell], x: torch.Tensor) -> torch.Tensor:
    """The user's stack over x (B, T, C, H, W) from zero state: the last layer's h per step."""
    states = [(torch.zeros(x.shape[0], 3, *x.shape[-2:]),) * 2 for _ in cells]
    ys = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            inp = x[:, t]
            for k, cell in enumerate(cells):
                states[k] = cell(inp, states[k])
                inp = states[k][0]
            ys.append(inp)
    return torch.stack(ys, 1)


@pytest.mark.parametrize(
    "biases", [(True, False), (False, True), (False, False)], ids=["bias-then-none", "none-then-bias", "none"]
)
def test_cells_with_and_without_a_bias_load_exactly(biases: tuple[bool, bool]) -> None:
    """A cell without a bias is a zero bias: mixed stacks equal the user's cells whichever comes first.

    Before the fix a later bias-free cell kept the zoo layer's random initial bias, and a later
    cell's bias was dropped when the first had none.
    """
    cells = _user_stack(biases)
    model = from_conv_cells(cells, image_size=(4, 4))
    x = torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y, _ = model(x, model.init_state(2))
    torch.testing.assert_close(y, _run_cells(cells, x))
    assert (model.cells[0].conv.bias is None) == (not any(biases))  # no bias at all: none in the model


def test_a_mixed_bias_stack_exports_and_streams_like_the_users_cells(tmp_path) -> None:
    """The exported file, streamed step by step and in a chunk, equals the user's own cells."""
    from rnnx.runtime import StreamingSession

    cells = _user_stack((True, False))
    path = export_onnx(from_conv_cells(cells, image_size=(4, 4)), tmp_path / "cells.onnx").path
    x = torch.randn(2, 5, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    want = _run_cells(cells, x).numpy()
    with StreamingSession(path, batch_size=2) as sess:
        got = [sess.step(x[:, 0].numpy()), sess.feed(x[:, 1:].numpy())]
    torch.testing.assert_close(
        torch.cat([torch.from_numpy(got[0])[:, None], torch.from_numpy(got[1])], 1),
        torch.from_numpy(want),
        atol=1e-5,
        rtol=1e-5,
    )
