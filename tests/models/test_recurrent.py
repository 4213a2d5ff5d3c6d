import pytest
import torch

from rnnx.errors import ConfigError
from rnnx.models import RecurrentModel, build
from tests.zoo import TINY, parity_matrix

RECURRENT = [(i, kw) for i, kw in parity_matrix() if kw["kind"] != "convlstm"]


@pytest.mark.parametrize("kw", [kw for _, kw in RECURRENT], ids=[i for i, _ in RECURRENT])
def test_script_every_option_gives_identical_outputs(kw):
    torch.manual_seed(0)
    model = build(**kw).eval()
    scripted = torch.jit.script(model)
    x = model.example_input(2, 4)
    y, state = model(x, model.init_state(2))
    y2, state2 = scripted(x, scripted.init_state(2))
    torch.testing.assert_close(y2, y)
    for a, b in zip(state, state2):
        torch.testing.assert_close(b, a)
    assert y.shape == (2, 4, 3)
    assert (scripted.kind, scripted.state_names, scripted.streamable) == (
        kw["kind"],
        ["h", "c"] if kw["kind"] == "lstm" else ["h"],
        not kw["bidirectional"],
    )


@pytest.mark.parametrize(
    "kw,shapes",
    [
        (dict(kind="rnn", num_layers=2), [(2, 3, 8)]),
        (dict(kind="gru", bidirectional=True), [(2, 3, 8)]),
        (dict(kind="lstm", num_layers=2, proj_size=4, bidirectional=True), [(4, 3, 4), (4, 3, 8)]),
    ],
    ids=["rnn-2l", "gru-bi", "lstm-proj-bi"],
)
def test_init_state_follows_torch_layout(kw, shapes):
    model = build(input_size=5, hidden_size=8, **kw)
    assert [tuple(s.shape) for s in model.init_state(3)] == shapes
    assert all(not s.any() for s in model.init_state(3))


def test_streaming_in_chunks_equals_whole_sequence():
    model = TINY["lstm-2l"]()
    x = model.example_input(2, 9)
    y_all, state_all = model(x, model.init_state(2))
    state, ys = model.init_state(2), []
    for chunk in (x[:, :1], x[:, 1:5], x[:, 5:]):
        y, state = model(chunk, state)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), y_all)
    torch.testing.assert_close(state[1], state_all[1])


def test_token_model_takes_int64_ids():
    model = TINY["tokens-lstm"]()
    x = model.example_input(3, 4)
    assert x.dtype == torch.int64 and int(x.max()) < 20
    y, _ = model(x, model.init_state(3))
    assert y.shape == (3, 4, 3)


def test_normalization_maps_raw_units_in_and_out():
    model = build("gru", input_size=2, hidden_size=4, output_size=1, normalize=True).eval()
    x = torch.randn(1, 3, 2)
    y0, _ = model(x, model.init_state(1))
    model.set_normalization([1.0, 2.0], [2.0, 4.0], [10.0], [3.0])
    y, _ = model(x * torch.tensor([2.0, 4.0]) + torch.tensor([1.0, 2.0]), model.init_state(1))
    torch.testing.assert_close(y, y0 * 3.0 + 10.0)
    assert set(dict(model.named_buffers())) == {"in_mean", "in_std", "out_mean", "out_std"}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_residual_input_adds_the_raw_feature_to_every_output(kind):
    torch.manual_seed(0)
    plain = build(kind, input_size=3, hidden_size=4, output_size=2, normalize=True).eval()
    residual = build(kind, input_size=3, hidden_size=4, output_size=2, normalize=True, residual_input=2).eval()
    residual.load_state_dict(plain.state_dict())
    residual.set_normalization([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.5, 0.5], [3.0, 3.0])
    plain.set_normalization([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.5, 0.5], [3.0, 3.0])
    x = torch.randn(2, 5, 3) * 10
    want = plain(x, plain.init_state(2))[0] + x[:, :, 2:3]  # (B, T, 2) + (B, T, 1) raw
    torch.testing.assert_close(residual(x, residual.init_state(2))[0], want)
    scripted = torch.jit.script(residual)
    torch.testing.assert_close(scripted(x, scripted.init_state(2))[0], want)


def test_set_normalization_errors_leave_buffers_unchanged():
    model = build("lstm", input_size=2, hidden_size=4, normalize=True)  # out = hidden (4)
    with pytest.raises(ConfigError, match=r"out_mean: expected shape \(4,\), got \(1,\)"):
        model.set_normalization([5.0, 5.0], [1.0, 1.0], [0.0], [1.0])
    assert torch.equal(model.in_mean, torch.zeros(2))
    with pytest.raises(ConfigError, match=r"in_std: expected every value > 0, got \[1.0, 0.0\]"):
        model.set_normalization([0.0, 0.0], [1.0, 0.0], [0.0] * 4, [1.0] * 4)
    with pytest.raises(ConfigError, match=r"normalize: set_normalization needs a model built with normalize=True"):
        TINY["gru-1l"]().set_normalization([0.0], [1.0], [0.0], [1.0])


def test_wrong_kind_for_class():
    with pytest.raises(ValueError, match=r"kind: RecurrentModel builds rnn, lstm, gru, got 'convlstm'"):
        RecurrentModel(build("convlstm", input_size=2, hidden_size=4, image_size=(4, 4)).config)
