import pytest
import torch

from rnnx.models import ConvLSTM, ConvLSTMCell, build
from tests.zoo import TINY, parity_matrix

CONV = [(i, kw) for i, kw in parity_matrix() if kw["kind"] == "convlstm"]


@pytest.mark.parametrize("kw", [kw for _, kw in CONV], ids=[i for i, _ in CONV])
def test_script_every_option_gives_identical_outputs(kw):
    torch.manual_seed(0)
    model = build(**kw).eval()
    scripted = torch.jit.script(model)
    x = model.example_input(2, 3)
    y, (h, c) = model(x, model.init_state(2))
    y2, (h2, c2) = scripted(x, scripted.init_state(2))
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(h2, h)
    torch.testing.assert_close(c2, c)
    layers = kw["num_layers"]
    assert y.shape == (2, 3, 1, 6, 6) and h.shape == c.shape == (layers, 2, 4, 6, 6)
    assert (scripted.kind, scripted.state_names, scripted.streamable) == ("convlstm", ["h", "c"], True)


def test_matches_cell_loop_and_streams_in_chunks():
    model = TINY["convlstm-nohead"]()
    x = model.example_input(1, 5)
    y, (h, c) = model(x, model.init_state(1))
    cell = ConvLSTMCell(2, 4)  # the plain cell, stepped by hand, with the layer's weights
    cell.load_state_dict(model.cells[0].state_dict())
    hh, cc = torch.zeros(1, 4, 6, 6), torch.zeros(1, 4, 6, 6)
    for t in range(5):
        hh, cc = cell(x[:, t], (hh, cc))
    torch.testing.assert_close(y[:, -1], hh)
    torch.testing.assert_close(h[0], hh)
    y1, s = model(x[:, :2], model.init_state(1))
    y2, s = model(x[:, 2:], s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)


def test_normalization_is_per_channel():
    model = build("convlstm", input_size=2, hidden_size=4, image_size=(3, 3), output_size=1, normalize=True).eval()
    x = model.example_input(1, 2)
    y0, _ = model(x, model.init_state(1))
    model.set_normalization([1.0, -1.0], [2.0, 0.5], [5.0], [2.0])
    raw = x * torch.tensor([2.0, 0.5]).view(2, 1, 1) + torch.tensor([1.0, -1.0]).view(2, 1, 1)
    y, _ = model(raw, model.init_state(1))
    torch.testing.assert_close(y, y0 * 2.0 + 5.0)


def test_dropout_between_layers_in_training_only():
    model = build("convlstm", input_size=2, hidden_size=4, image_size=(3, 3), num_layers=2, dropout=0.5)
    x = model.example_input(1, 2)
    torch.manual_seed(0)
    a, _ = model(x, model.init_state(1))
    torch.manual_seed(1)
    b, _ = model(x, model.init_state(1))
    assert not torch.equal(a, b)
    model.eval()
    torch.testing.assert_close(model(x, model.init_state(1))[0], model(x, model.init_state(1))[0])


def test_wrong_kind_for_class():
    with pytest.raises(ValueError, match=r"kind: ConvLSTM builds convlstm, got 'gru'"):
        ConvLSTM(build("gru", input_size=2, hidden_size=4).config)
