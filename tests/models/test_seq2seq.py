"""Seq2Seq: forecast shapes, the streaming form equals forecasts over sliding windows,
scripting, user encoder/decoder modules, config errors, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnx.errors import ConfigError
from rnnx.models import Seq2Seq, build, load, save
from tests.zoo import S2S_HORIZON, S2S_INPUT, S2S_WINDOW, SEQ2SEQ, UserDecoderStep, UserEncoder

IDS = list(SEQ2SEQ)


@pytest.mark.parametrize("name", IDS)
def test_forecast_shape_any_window_and_steps(name):
    model = SEQ2SEQ[name]()
    out = model.config.output_size
    for t, steps in ((1, 1), (4, S2S_HORIZON), (11, 7)):
        assert tuple(model.forecast(torch.randn(3, t, S2S_INPUT), steps).shape) == (3, steps, out)


@pytest.mark.parametrize("name", ["s2s-lstm-2l-attn-norm-residual", "s2s-user-modules"])
def test_streaming_form_is_the_forecast_of_the_last_window(name):
    model = SEQ2SEQ[name]()
    b, t, w, out = 2, 10, S2S_WINDOW, model.config.output_size
    x = torch.randn(b, t, S2S_INPUT)
    with torch.no_grad():
        y, _ = model(x, model.init_state(b))
        assert tuple(y.shape) == (b, t, S2S_HORIZON * out)
        for k in range(w - 1, t):  # full windows: exactly the forecast of rows k-w+1..k
            ref = model.forecast(x[:, k - w + 1 : k + 1], S2S_HORIZON).reshape(b, -1)
            torch.testing.assert_close(y[:, k], ref, rtol=1e-5, atol=1e-6)
        k = 2  # before the window is full: the earliest row fills the window
        padded = torch.cat([x[:, :1].expand(b, w - 1 - k, S2S_INPUT), x[:, : k + 1]], 1)
        torch.testing.assert_close(y[:, k], model.forecast(padded, S2S_HORIZON).reshape(b, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunks", [(1,) * 9, (4, 5), (2, 7)], ids=["steps", "4+5", "2+7"])
def test_streaming_form_chunked_equals_whole(chunks):
    model = SEQ2SEQ["s2s-gru-attn"]()
    x = torch.randn(2, sum(chunks), S2S_INPUT)
    with torch.no_grad():
        whole, _ = model(x, model.init_state(2))
        state, parts, start = model.init_state(2), [], 0
        for n in chunks:
            y, state = model(x[:, start : start + n], state)
            parts.append(y)
            start += n
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["s2s-gru-attn", "s2s-lstm-2l-attn-norm-residual"])
def test_zoo_seq2seq_is_scriptable(name):
    model = SEQ2SEQ[name]()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 7, S2S_INPUT)
    torch.testing.assert_close(scripted.forecast(x, 4), model.forecast(x, 4))
    torch.testing.assert_close(scripted(x, scripted.init_state(2))[0], model(x, model.init_state(2))[0])


def test_decoder_feeds_back_its_output():
    model = SEQ2SEQ["s2s-lstm"]()
    x = torch.randn(2, 5, S2S_INPUT)
    with torch.no_grad():
        memory, state, y, base = model.encode(x)
        outs = []
        for _ in range(4):
            y, state = model.step(y, state, memory, base)
            outs.append(y)
        torch.testing.assert_close(torch.stack(outs, 1), model.forecast(x, 4))
        first = model.step(y, state, memory, base)[0]
        assert not torch.allclose(first, model.step(y + 1.0, state, memory, base)[0])  # the input matters


def test_residual_and_normalization_work_in_raw_units():
    model = SEQ2SEQ["s2s-lstm-2l-attn-norm-residual"]()
    x = torch.randn(2, 5, S2S_INPUT)
    shifted = x.clone()
    shifted[:, -1, 0] += 100.0  # the residual feature's last value is the base of every output
    with torch.no_grad():
        delta = model.forecast(shifted, 2) - model.forecast(x, 2)
    assert float(delta.min()) > 50.0


def test_user_modules_follow_the_documented_contract():
    model = Seq2Seq.from_modules(UserEncoder(), UserDecoderStep(), input_size=S2S_INPUT, horizon=2, window=3)
    assert model.custom and model.horizon == 2 and model.window == 3
    assert tuple(model.forecast(torch.randn(2, 5, S2S_INPUT), 4).shape) == (2, 4, 1)
    assert tuple(model(torch.randn(2, 6, S2S_INPUT), model.init_state(2))[0].shape) == (2, 6, 2)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(), r"horizon: expected an int >= 1, got None"),
        (dict(horizon=3), r"window: expected an int >= 1, got None"),
        (dict(horizon=3, window=5, cell="rnn"), r"cell: expected one of lstm, gru, got 'rnn'"),
        (dict(horizon=0, window=5), r"horizon: expected an int >= 1, got 0"),
        (dict(horizon=3, window=5, attention=1), r"attention: expected True or False, got 1"),
        (dict(horizon=3, window=5, bidirectional=True), r"bidirectional: not supported for seq2seq, got True"),
        (dict(horizon=3, window=5, residual_input=9), r"residual_input: expected an input feature index in \[0, 4\)"),
    ],
    ids=["no-horizon", "no-window", "cell", "horizon-0", "attention-int", "bidirectional", "residual"],
)
def test_invalid_seq2seq_options_name_the_field(kw, match):
    with pytest.raises(ConfigError, match=match):
        build("seq2seq", input_size=S2S_INPUT, hidden_size=4, **kw)


@pytest.mark.parametrize("field,value", [("horizon", 3), ("window", 4), ("cell", "gru"), ("attention", True)])
def test_seq2seq_options_are_refused_for_other_kinds(field, value):
    with pytest.raises(ConfigError, match=rf"{field}: only valid for seq2seq, not for lstm"):
        build("lstm", input_size=3, hidden_size=4, **{field: value})


def test_checkpoint_round_trip(tmp_path):
    model = SEQ2SEQ["s2s-lstm-2l-attn-norm-residual"]()
    loaded = load(save(model, tmp_path / "m.safetensors"))
    assert isinstance(loaded, Seq2Seq) and loaded.config == model.config
    x = torch.randn(2, 6, S2S_INPUT)
    torch.testing.assert_close(loaded.forecast(x, 3), model.forecast(x, 3))


def _users_own_forecast(encoder, decoder, x, steps: int, target: int):
    """The tutorial's loop, on the user's own modules: the first y_prev is the last observed target."""
    with torch.no_grad():
        memory, state = encoder(x)
        y, outs = x[:, -1, target : target + 1], []
        for _ in range(steps):
            y, state = decoder(y, state, memory)
            outs.append(y)
    return torch.stack(outs, 1)  # (B, steps, 1)


def test_from_modules_keeps_the_users_first_decoder_input_in_the_exported_bundle(tmp_path):
    from rnnx.exporter import export_seq2seq
    from rnnx.runtime import ForecastSession

    torch.manual_seed(0)
    encoder, decoder = UserEncoder().eval(), UserDecoderStep().eval()
    x = torch.randn(3, 6, S2S_INPUT)
    theirs = _users_own_forecast(encoder, decoder, x, 4, target=1)
    model = Seq2Seq.from_modules(
        encoder, decoder, input_size=S2S_INPUT, horizon=4, window=6, attention=True, first_input=1
    )
    export_seq2seq(model, tmp_path / "b")
    ours = ForecastSession(tmp_path / "b").forecast(x.numpy(), 4)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
    plain = Seq2Seq.from_modules(encoder, decoder, input_size=S2S_INPUT, horizon=4, window=6, attention=True)
    with torch.no_grad():  # without first_input the decoder starts from the learned constant: not the user's
        assert float((plain.forecast(x, 4) - theirs).abs().max()) > 1e-4


def test_from_modules_first_input_must_be_a_feature():
    with pytest.raises(ConfigError, match=r"first_input: expected a feature index in \[0, \d+\]"):
        Seq2Seq.from_modules(
            UserEncoder(), UserDecoderStep(), input_size=S2S_INPUT, horizon=2, window=3, first_input=S2S_INPUT
        )
