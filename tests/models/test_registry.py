import pytest
import torch

from rnnx.errors import ConfigError
from rnnx.models import KINDS, ConvLSTM, ModelConfig, RecurrentModel, build, build_from_config


@pytest.mark.parametrize(
    "kind,kw,cls",
    [
        ("rnn", dict(input_size=5, hidden_size=8), RecurrentModel),
        ("lstm", dict(input_size=5, hidden_size=8, proj_size=2), RecurrentModel),
        ("gru", dict(vocab_size=10, embedding_dim=4, hidden_size=8), RecurrentModel),
        ("convlstm", dict(input_size=2, hidden_size=4, image_size=[5, 5]), ConvLSTM),
    ],
    ids=["rnn", "lstm", "gru-tokens", "convlstm-list-image"],
)
def test_build_every_kind(kind, kw, cls):
    model = build(kind, **kw)
    assert isinstance(model, cls) and model.kind == kind and model.config.kind == kind
    assert isinstance(model.config, ModelConfig)
    y, _ = model(model.example_input(1, 2), model.init_state(1))
    assert y.shape[:2] == (1, 2)


def test_build_from_config_equals_build():
    cfg = ModelConfig(kind="gru", input_size=3, hidden_size=4)
    assert type(build_from_config(cfg)) is type(build("gru", input_size=3, hidden_size=4))
    assert KINDS == ("rnn", "lstm", "gru", "convlstm", "seq2seq")


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match=r"kind: expected one of rnn, lstm, gru, convlstm, seq2seq, got 'tcn'"):
        build("tcn", input_size=5, hidden_size=8)


def test_unknown_option_is_named_and_valid_ones_listed():
    with pytest.raises(ConfigError, match=r"lstm: unknown option\(s\) hidden; valid options: hidden_size, input_size"):
        build("lstm", input_size=5, hidden=8)


def test_missing_hidden_size():
    with pytest.raises(ConfigError, match=r"hidden_size: required for gru, got no value"):
        build("gru", input_size=5)


def test_invalid_value_is_reported_by_field():
    with pytest.raises(ConfigError, match=r"proj_size: expected 0 <= proj_size < hidden_size \(8\), got 9"):
        build("lstm", input_size=5, hidden_size=8, proj_size=9)


def test_built_models_are_seedable():
    torch.manual_seed(3)
    a = build("gru", input_size=2, hidden_size=3)
    torch.manual_seed(3)
    b = build("gru", input_size=2, hidden_size=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
