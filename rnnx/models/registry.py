"""`build(kind, **options)`: the one way to make a zoo model from its options.

Example:
    >>> model = build("gru", input_size=5, hidden_size=8, output_size=3)
    >>> model.kind, model.state_names, model.streamable
    ('gru', ['h'], True)
"""

from __future__ import annotations

from typing import Any

from rnnx.errors import ConfigError
from rnnx.models._base import ZooModel
from rnnx.models.config import KINDS, ModelConfig, field_names


def build(kind: str, **options: Any) -> ZooModel:
    """Build a zoo model.

    Args:
        kind: one of rnn, lstm, gru, convlstm, seq2seq.
        **options: :class:`ModelConfig` fields (``input_size``, ``hidden_size``, ...).

    Returns:
        A :class:`RecurrentModel` (rnn/lstm/gru), :class:`ConvLSTM` or :class:`Seq2Seq`
        (``output_size`` defaults to 1 for seq2seq), in train mode.

    Raises:
        ConfigError: unknown kind or option (valid ones listed), invalid value.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    valid = [f for f in field_names() if f != "kind"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{kind}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
    if "hidden_size" not in options:
        raise ConfigError(f"hidden_size: required for {kind}, got no value")
    if kind == "seq2seq":
        options.setdefault("output_size", 1)
    if isinstance(options.get("image_size"), list):
        options["image_size"] = tuple(options["image_size"])
    return build_from_config(ModelConfig(kind=kind, **options))


def build_from_config(config: ModelConfig) -> ZooModel:
    """Build the zoo model described by a (validated here) :class:`ModelConfig`."""
    config.validate()
    if config.kind == "convlstm":
        from rnnx.models.convlstm import ConvLSTM

        return ConvLSTM(config)
    if config.kind == "seq2seq":
        from rnnx.models.seq2seq import Seq2Seq

        return Seq2Seq(config)
    from rnnx.models.recurrent import RecurrentModel

    return RecurrentModel(config)
