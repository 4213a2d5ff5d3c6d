"""`ModelConfig`: every option of a zoo model, validated, JSON round-trippable.

Example:
    >>> cfg = ModelConfig(kind="lstm", input_size=5, hidden_size=8, proj_size=4)
    >>> _ = cfg.validate()
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from rnnx.checks import check_int, check_number
from rnnx.errors import ConfigError

KINDS = ("rnn", "lstm", "gru", "convlstm", "seq2seq")
NONLINEARITIES = ("tanh", "relu")
CELLS = ("lstm", "gru")  # seq2seq: recurrent cell of the encoder and the decoder


@dataclass(kw_only=True)
class ModelConfig:
    """Options of a zoo model; ``validate()`` checks them all.

    Build through :func:`rnnx.models.build`, which validates; the dataclass itself
    accepts anything so that a bad value can be reported with its field name.
    """

    kind: str  # rnn | lstm | gru | convlstm | seq2seq
    hidden_size: int  # hidden features per layer (channels for convlstm)
    input_size: int | None = None  # features per step (channels for convlstm); token models: = embedding_dim
    num_layers: int = 1  # stacked recurrent layers
    output_size: int | None = None  # per-step head (Linear; 1x1 Conv2d for convlstm); None = hidden sequence
    bias: bool = True  # bias terms in the recurrent layers
    dropout: float = 0.0  # dropout between layers, training only, needs num_layers > 1 to have an effect
    bidirectional: bool = False  # rnn/lstm/gru: run a reverse direction too (not streamable)
    nonlinearity: str = "tanh"  # rnn only: tanh | relu
    proj_size: int = 0  # lstm only: project h to this size (0 = no projection)
    kernel_size: int = 3  # convlstm only: odd square kernel of the gate convolution
    image_size: tuple[int, int] | None = None  # convlstm only, required: (height, width) of the grid
    vocab_size: int | None = None  # token input: int64 (B, T) ids in [0, vocab_size)
    embedding_dim: int | None = None  # token input: embedding width (required with vocab_size)
    normalize: bool = False  # add in/out mean+std buffers so the model takes and returns raw units
    residual_input: int | None = None  # add this input feature's raw value to every output (predict the change)
    horizon: int | None = None  # seq2seq only, required: steps the decoder generates per forecast
    window: int | None = None  # seq2seq only, required: input rows the encoder reads (streaming form)
    cell: str = "lstm"  # seq2seq only: lstm | gru, for both encoder and decoder
    attention: bool = False  # seq2seq only: dot attention of the decoder over the encoder outputs

    def __post_init__(self) -> None:
        if isinstance(self.image_size, list):  # JSON gives lists; keep the declared tuple type
            self.image_size = tuple(self.image_size)

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_directions(self) -> int:
        """2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def feature_size(self) -> int:
        """Width of the recurrent layers' input (the embedding width for token models)."""
        return int(self.embedding_dim if self.vocab_size is not None else self.input_size)  # type: ignore[arg-type]

    @property
    def hidden_out_size(self) -> int:
        """Per-step width of the last layer's output (before the head)."""
        if self.kind == "convlstm":
            return self.hidden_size
        return (self.proj_size or self.hidden_size) * self.num_directions

    @property
    def out_size(self) -> int:
        """Per-step width (channels for convlstm) of the model output."""
        return self.output_size if self.output_size is not None else self.hidden_out_size

    # ------------------------------------------------------------------ validation
    def validate(self) -> ModelConfig:
        """Check every field.

        Returns:
            self, for chaining.

        Raises:
            ConfigError: naming the field, the expected and the received value.
        """
        if self.kind not in KINDS:
            raise ConfigError(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        self.hidden_size = check_int("hidden_size", self.hidden_size)
        self.num_layers = check_int("num_layers", self.num_layers)
        self.output_size = check_int("output_size", self.output_size, optional=True)
        _bool("bias", self.bias)
        _bool("bidirectional", self.bidirectional)
        _bool("normalize", self.normalize)
        check_number("dropout", self.dropout, maximum=1.0, open_maximum=True)
        self._validate_input()
        self._validate_seq2seq_fields()
        if self.kind == "convlstm":
            self._validate_convlstm()
        elif self.kind == "seq2seq":
            self._validate_seq2seq()
        else:
            self._validate_recurrent()
        return self

    def _validate_input(self) -> None:
        if self.vocab_size is None:
            if self.embedding_dim is not None:
                raise ConfigError(
                    f"embedding_dim: only valid with vocab_size, got embedding_dim={self.embedding_dim!r}"
                )
            self.input_size = check_int("input_size", self.input_size)
            return
        if self.kind == "convlstm":
            raise ConfigError("vocab_size: not supported for convlstm (token input is for rnn, lstm, gru)")
        self.vocab_size = check_int("vocab_size", self.vocab_size)
        self.embedding_dim = check_int("embedding_dim", self.embedding_dim)
        if self.input_size is not None and self.input_size != self.embedding_dim:
            raise ConfigError(
                f"input_size: expected None or embedding_dim ({self.embedding_dim}) for token input, "
                f"got {self.input_size!r}"
            )
        if self.normalize:
            raise ConfigError("normalize: not supported with token input (vocab_size is set)")
        if self.residual_input is not None:
            raise ConfigError("residual_input: not supported with token input (vocab_size is set)")

    def _validate_recurrent(self) -> None:
        if self.nonlinearity not in NONLINEARITIES:
            raise ConfigError(f"nonlinearity: expected one of {', '.join(NONLINEARITIES)}, got {self.nonlinearity!r}")
        if self.kind != "rnn" and self.nonlinearity != "tanh":
            raise ConfigError(f"nonlinearity: only valid for rnn, not for {self.kind}")
        self.proj_size = check_int("proj_size", self.proj_size, minimum=0)
        if self.proj_size != 0:
            if self.kind != "lstm":
                raise ConfigError(f"proj_size: only valid for lstm, not for {self.kind}")
            if not 0 <= self.proj_size < self.hidden_size:
                raise ConfigError(
                    f"proj_size: expected 0 <= proj_size < hidden_size ({self.hidden_size}), got {self.proj_size}"
                )
        if self.kernel_size != 3:
            raise ConfigError(f"kernel_size: only valid for convlstm, not for {self.kind}")
        if self.image_size is not None:
            raise ConfigError(f"image_size: only valid for convlstm, not for {self.kind}")
        self._validate_residual()

    def _validate_residual(self) -> None:
        r = self.residual_input
        if r is None or self.vocab_size is not None:
            return
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < int(self.input_size or 0):
            raise ConfigError(f"residual_input: expected an input feature index in [0, {self.input_size}), got {r!r}")
        if self.output_size is None:
            raise ConfigError("residual_input: needs output_size (a head whose outputs the input value is added to)")

    def _validate_seq2seq_fields(self) -> None:
        if self.kind == "seq2seq":
            return
        for name, default in (("horizon", None), ("window", None), ("cell", "lstm"), ("attention", False)):
            if getattr(self, name) != default:
                raise ConfigError(f"{name}: only valid for seq2seq, not for {self.kind}")

    def _validate_seq2seq(self) -> None:
        self.horizon = check_int("horizon", self.horizon)
        self.window = check_int("window", self.window)
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {', '.join(CELLS)}, got {self.cell!r}")
        _bool("attention", self.attention)
        if self.output_size is None:
            raise ConfigError("output_size: required for seq2seq (values per generated step), got None")
        if self.vocab_size is not None:
            raise ConfigError("vocab_size: not supported for seq2seq (float input rows only)")
        for name, default in (
            ("bidirectional", False),
            ("proj_size", 0),
            ("nonlinearity", "tanh"),
            ("kernel_size", 3),
            ("image_size", None),
        ):
            if getattr(self, name) != default:
                raise ConfigError(f"{name}: not supported for seq2seq, got {getattr(self, name)!r}")
        self._validate_residual()

    def _validate_convlstm(self) -> None:
        if self.residual_input is not None:
            raise ConfigError("residual_input: not supported for convlstm")
        if self.bidirectional:
            raise ConfigError("bidirectional: not supported for convlstm")
        if self.proj_size != 0:
            raise ConfigError("proj_size: only valid for lstm, not for convlstm")
        if self.nonlinearity != "tanh":
            raise ConfigError("nonlinearity: only valid for rnn, not for convlstm")
        self.kernel_size = check_int("kernel_size", self.kernel_size)
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: expected an odd number (same padding), got {self.kernel_size}")
        size = self.image_size
        if size is None:
            raise ConfigError("image_size: required for convlstm, expected (height, width), got None")
        if (
            not isinstance(size, tuple)
            or len(size) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size)
        ):
            raise ConfigError(f"image_size: expected (height, width) of two positive ints, got {size!r}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values (tuples become lists)."""
        d = asdict(self)
        if d["image_size"] is not None:
            d["image_size"] = list(d["image_size"])
        return d

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output (validated).

        Raises:
            ConfigError: unknown keys (the valid ones are listed), missing or invalid fields.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"config: expected a mapping of options, got {type(data).__name__}")
        valid = field_names()
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"config: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
        missing = [k for k in ("kind", "hidden_size") if k not in data]
        if missing:
            raise ConfigError(f"config: missing required option(s) {', '.join(missing)}")
        return cls(**dict(data)).validate()


def field_names() -> list[str]:
    """Names of every ModelConfig field, in declaration order."""
    return [f.name for f in fields(ModelConfig)]


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected True or False, got {value!r}")
