import pytest
import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.models import ConvLSTMCell, GRUCell, LSTMCell, RNNCell

CASES = [
    ("rnn-tanh", lambda b: nn.RNNCell(5, 8, bias=b), lambda b: RNNCell(5, 8, bias=b)),
    ("rnn-relu", lambda b: nn.RNNCell(5, 8, bias=b, nonlinearity="relu"), lambda b: RNNCell(5, 8, b, "relu")),
    ("gru", lambda b: nn.GRUCell(5, 8, bias=b), lambda b: GRUCell(5, 8, bias=b)),
    ("lstm", lambda b: nn.LSTMCell(5, 8, bias=b), lambda b: LSTMCell(5, 8, bias=b)),
]


def _run(cell, x, state):
    out = cell(x, state)
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("make_torch,make_ours", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cell_matches_torch_values_and_gradients(make_torch, make_ours, bias):
    torch.manual_seed(0)
    ref, ours = make_torch(bias), make_ours(bias)
    ours.load_state_dict(ref.state_dict())  # same names and layouts
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = torch.randn(3, 5)
    state = (torch.randn(3, 8), torch.randn(3, 8)) if isinstance(ref, nn.LSTMCell) else torch.randn(3, 8)
    a, b = _run(ref, x, state), _run(ours, x, state)
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5)
    sum(t.sum() for t in a).backward()
    sum(t.sum() for t in b).backward()
    for (name, p), q in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("make_ours", [c[2] for c in CASES], ids=[c[0] for c in CASES])
def test_cells_script_to_same_values(make_ours):
    cell = make_ours(True)
    scripted = torch.jit.script(cell)
    x = torch.randn(2, 5)
    state = (torch.randn(2, 8), torch.randn(2, 8)) if isinstance(cell, LSTMCell) else torch.randn(2, 8)
    for p, q in zip(_run(cell, x, state), _run(scripted, x, state)):
        torch.testing.assert_close(q, p)


def test_lstm_cell_projection_matches_one_step_of_nn_lstm():
    torch.manual_seed(1)
    lstm = nn.LSTM(5, 8, proj_size=3)
    cell = LSTMCell(5, 8, proj_size=3)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})  # strip _l0
    x, h, c = torch.randn(1, 2, 5), torch.randn(1, 2, 3), torch.randn(1, 2, 8)
    y, (h1, c1) = lstm(x, (h, c))
    h2, c2 = cell(x[0], (h[0], c[0]))
    torch.testing.assert_close(h2, h1[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c2, c1[0], atol=1e-6, rtol=1e-5)
    assert cell.weight_hr.shape == (3, 8) and cell.weight_hh.shape == (32, 3)


@pytest.mark.parametrize("k", [1, 3, 5], ids=["k1", "k3", "k5"])
def test_convlstm_cell_matches_gate_equations(k):
    torch.manual_seed(2)
    cell = ConvLSTMCell(2, 4, k)
    x, h, c = torch.randn(2, 2, 6, 7), torch.randn(2, 4, 6, 7), torch.randn(2, 4, 6, 7)
    gates = nn.functional.conv2d(torch.cat([x, h], 1), cell.conv.weight, cell.conv.bias, padding=k // 2)
    i, f, g, o = gates.chunk(4, 1)
    c_ref = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_ref = o.sigmoid() * c_ref.tanh()
    h1, c1 = cell(x, (h, c))
    torch.testing.assert_close(h1, h_ref)
    torch.testing.assert_close(c1, c_ref)
    h2, c2 = torch.jit.script(cell)(x, (h, c))
    torch.testing.assert_close(h2, h1)
    assert h1.shape == (2, 4, 6, 7)


def test_convlstm_cell_without_bias():
    cell = ConvLSTMCell(2, 4, 3, bias=False)
    assert cell.conv.bias is None
    h, c = cell(torch.zeros(1, 2, 3, 3), (torch.zeros(1, 4, 3, 3), torch.zeros(1, 4, 3, 3)))
    assert torch.equal(h, torch.zeros_like(h)) and torch.equal(c, torch.zeros_like(c))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: RNNCell(5, 8, nonlinearity="gelu"), r"nonlinearity: expected 'tanh' or 'relu', got 'gelu'"),
        (lambda: LSTMCell(5, 8, proj_size=8), r"proj_size: expected 0 <= proj_size < hidden_size \(8\), got 8"),
        (lambda: ConvLSTMCell(2, 4, kernel_size=2), r"kernel_size: expected an odd int \(same padding\), got 2"),
        (lambda: ConvLSTMCell(2, 4, kernel_size="3"), r"kernel_size: expected an int >= 1, got '3'"),
    ],
    ids=["nonlinearity", "proj-size", "even-kernel", "kernel-str"],
)
def test_cell_constructor_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
