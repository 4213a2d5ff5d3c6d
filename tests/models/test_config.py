import json

import numpy as np
import pytest

from rnnx.errors import ConfigError
from rnnx.models import ModelConfig
from rnnx.models.config import field_names


def cfg(**kw) -> ModelConfig:
    base = {"kind": "lstm", "input_size": 5, "hidden_size": 8}
    return ModelConfig(**{**base, **kw})


VALID = [
    ("lstm-proj", dict(proj_size=4, num_layers=2, bidirectional=True)),
    ("rnn-relu", dict(kind="rnn", nonlinearity="relu")),
    ("gru-tokens", dict(kind="gru", input_size=None, vocab_size=20, embedding_dim=6)),
    ("convlstm", dict(kind="convlstm", input_size=2, hidden_size=4, image_size=(6, 6), kernel_size=5)),
    ("norm-head", dict(normalize=True, output_size=3, dropout=0.5, num_layers=2)),
    ("residual", dict(normalize=True, output_size=3, residual_input=4)),
]


@pytest.mark.parametrize("kw", [v for _, v in VALID], ids=[i for i, _ in VALID])
def test_valid_configs_round_trip_through_json(kw):
    c = cfg(**kw).validate()
    back = ModelConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c
    assert back.image_size == c.image_size  # tuple survives JSON


INVALID = [
    ("kind", dict(kind="transformer"), r"kind: expected one of rnn, lstm, gru, convlstm, seq2seq, got 'transformer'"),
    ("hidden", dict(hidden_size=0), r"hidden_size: expected an int >= 1, got 0"),
    ("layers", dict(num_layers=1.5), r"num_layers: expected an int >= 1, got 1.5"),
    ("output", dict(output_size=-1), r"output_size: expected an int >= 1 or None, got -1"),
    ("bias", dict(bias="yes"), r"bias: expected True or False, got 'yes'"),
    ("bidir", dict(bidirectional=1), r"bidirectional: expected True or False, got 1"),
    ("normalize", dict(normalize=None), r"normalize: expected True or False"),
    ("dropout", dict(dropout=1.0), r"dropout: expected a number in \[0, 1\), got 1.0"),
    ("input", dict(input_size=None), r"input_size: expected an int >= 1, got None"),
    ("proj-too-big", dict(proj_size=9), r"proj_size: expected 0 <= proj_size < hidden_size \(8\), got 9"),
    ("proj-type", dict(proj_size="2"), r"proj_size: expected an int >= 0, got '2'"),
    ("proj-gru", dict(kind="gru", proj_size=2), r"proj_size: only valid for lstm, not for gru"),
    ("nonlin", dict(kind="rnn", nonlinearity="gelu"), r"nonlinearity: expected one of tanh, relu, got 'gelu'"),
    ("nonlin-lstm", dict(nonlinearity="relu"), r"nonlinearity: only valid for rnn, not for lstm"),
    ("kernel-lstm", dict(kernel_size=5), r"kernel_size: only valid for convlstm, not for lstm"),
    ("image-lstm", dict(image_size=(4, 4)), r"image_size: only valid for convlstm, not for lstm"),
    ("emb-no-vocab", dict(embedding_dim=4), r"embedding_dim: only valid with vocab_size"),
    ("vocab", dict(vocab_size=0, embedding_dim=4), r"vocab_size: expected an int >= 1, got 0"),
    ("emb-missing", dict(vocab_size=10), r"embedding_dim: expected an int >= 1, got None"),
    ("emb-input", dict(vocab_size=10, embedding_dim=4), r"input_size: expected None or embedding_dim \(4\)"),
    (
        "tokens-norm",
        dict(input_size=None, vocab_size=10, embedding_dim=4, normalize=True),
        r"normalize: not supported with token input",
    ),
    (
        "residual-range",
        dict(output_size=2, residual_input=5),
        r"residual_input: expected an input feature index in \[0, 5\), got 5",
    ),
    ("residual-type", dict(output_size=2, residual_input=True), r"residual_input: expected an input feature index"),
    ("residual-head", dict(residual_input=0), r"residual_input: needs output_size"),
    (
        "residual-tokens",
        dict(input_size=None, vocab_size=10, embedding_dim=4, output_size=2, residual_input=0),
        r"residual_input: not supported with token input",
    ),
]
CONV = dict(kind="convlstm", input_size=2, hidden_size=4, image_size=(6, 6))
INVALID_CONV = [
    ("bidir", dict(bidirectional=True), r"bidirectional: not supported for convlstm"),
    ("proj", dict(proj_size=2), r"proj_size: only valid for lstm, not for convlstm"),
    ("nonlin", dict(nonlinearity="relu"), r"nonlinearity: only valid for rnn, not for convlstm"),
    ("kernel-even", dict(kernel_size=4), r"kernel_size: expected an odd number \(same padding\), got 4"),
    ("kernel-zero", dict(kernel_size=0), r"kernel_size: expected an int >= 1, got 0"),
    ("image-missing", dict(image_size=None), r"image_size: required for convlstm"),
    (
        "image-bad",
        dict(image_size=(6, 0)),
        r"image_size: expected \(height, width\) of two positive ints, got \(6, 0\)",
    ),
    ("image-3d", dict(image_size=(6, 6, 6)), r"image_size: expected \(height, width\)"),
    ("tokens", dict(vocab_size=10, embedding_dim=2), r"vocab_size: not supported for convlstm"),
    ("residual", dict(residual_input=0, output_size=2), r"residual_input: not supported for convlstm"),
]


@pytest.mark.parametrize("kw,match", [(k, m) for _, k, m in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_recurrent_options_name_field_expected_and_received(kw, match):
    with pytest.raises(ConfigError, match=match):
        cfg(**kw).validate()


@pytest.mark.parametrize("kw,match", [(k, m) for _, k, m in INVALID_CONV], ids=[i for i, _, _ in INVALID_CONV])
def test_invalid_convlstm_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**{**CONV, **kw}).validate()


def test_numpy_ints_are_options_like_everywhere_else():
    """A session takes batch_size=np.int64(2) (rnnx.checks); the zoo config refused the same value."""
    c = ModelConfig(kind="lstm", input_size=np.int64(3), hidden_size=np.int32(8), output_size=np.int64(2)).validate()
    assert (c.input_size, c.hidden_size, c.output_size) == (3, 8, 2)
    assert all(type(v) is int for v in (c.input_size, c.hidden_size, c.output_size))
    assert json.loads(json.dumps(c.to_dict()))["hidden_size"] == 8  # plain ints: the checkpoint's JSON


def test_from_dict_unknown_keys_lists_valid_ones():
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) hiden_size; valid options: kind, hidden_size, input_size"
    ):
        ModelConfig.from_dict({"kind": "lstm", "input_size": 5, "hidden_size": 8, "hiden_size": 3})


def test_from_dict_missing_and_wrong_type():
    with pytest.raises(ConfigError, match=r"missing required option\(s\) hidden_size"):
        ModelConfig.from_dict({"kind": "lstm", "input_size": 5})
    with pytest.raises(ConfigError, match=r"config: expected a mapping of options, got list"):
        ModelConfig.from_dict([1, 2])


def test_derived_sizes():
    c = cfg(proj_size=3, bidirectional=True, output_size=None)
    assert (c.num_directions, c.hidden_out_size, c.out_size) == (2, 6, 6)
    t = cfg(kind="gru", input_size=None, vocab_size=20, embedding_dim=6, output_size=2)
    assert (t.feature_size, t.out_size) == (6, 2)
    assert field_names()[:3] == ["kind", "hidden_size", "input_size"]
