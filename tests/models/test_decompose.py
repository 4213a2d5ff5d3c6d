import pytest
import torch
from torch import Tensor, nn

from rnnx.models import GRULayers, LSTMLayers, RNNLayers, decompose
from tests.zoo import TINY, example_input

FUSED = (nn.RNN, nn.LSTM, nn.GRU)


class UserModel(nn.Module):
    """A user module with an LSTM(proj_size) and a GRU nested in a Sequential."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 8, num_layers=2, proj_size=3, batch_first=True)
        self.block = nn.Sequential(nn.Identity(), nn.GRU(3, 4, batch_first=True, bidirectional=True))
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        y, (h, c) = self.lstm(x, (state[0], state[1]))
        z, g = self.block[1](y)
        return self.head(z), [h, c]


def _outputs(model, x, state):
    y, new = model(x, state)
    return [y, *new]


def test_user_module_with_projected_lstm():
    torch.manual_seed(0)
    model = UserModel().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = decompose(model)
    assert isinstance(out.lstm, LSTMLayers) and isinstance(out.block[1], GRULayers)
    assert isinstance(model.lstm, nn.LSTM) and isinstance(model.block[1], nn.GRU)  # original untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(out.state_dict()) == list(model.state_dict())
    assert not out.training
    x, state = torch.randn(2, 6, 5), [torch.randn(2, 2, 3), torch.randn(2, 2, 8)]
    for p, q in zip(_outputs(model, x, state), _outputs(out, x, state)):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5)
    scripted = torch.jit.script(out)
    torch.testing.assert_close(scripted(x, state)[0], out(x, state)[0])


def test_decomposed_weights_are_independent_copies():
    model = UserModel()
    out = decompose(model)
    with torch.no_grad():
        out.lstm.weight_ih_l0.add_(1.0)
    assert not torch.equal(out.lstm.weight_ih_l0, model.lstm.weight_ih_l0)


@pytest.mark.parametrize(
    "module,cls",
    [
        (nn.RNN(5, 8, nonlinearity="relu"), RNNLayers),
        (nn.GRU(5, 8, batch_first=True), GRULayers),
        (nn.LSTM(5, 8, proj_size=2, bidirectional=True), LSTMLayers),
    ],
    ids=["rnn-relu", "gru-bf", "lstm-proj-bi"],
)
def test_root_module_is_replaced(module, cls):
    out = decompose(module)
    assert isinstance(out, cls)
    x = torch.randn(3, 2, 5)
    torch.testing.assert_close(out(x)[0], module(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY), ids=sorted(TINY))
def test_every_tiny_model_decomposes_to_the_same_outputs(name):
    model = TINY[name]()
    out = decompose(model)
    assert not any(isinstance(m, FUSED) for m in out.modules())
    x = example_input(model, 2, 5)
    state = model.init_state(2)
    for p, q in zip(_outputs(model, x, state), _outputs(out, x, state)):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5)


def test_rejects_non_modules():
    with pytest.raises(TypeError, match=r"module: expected a torch.nn.Module, got str"):
        decompose("lstm")
