"""`Seq2Seq`: an encoder–decoder forecaster (window of rows -> the next ``horizon`` steps).

The encoder RNN reads the input window; the decoder RNN starts from the encoder's final
state and generates one step at a time, each output fed back as the next step's input;
with ``attention=True`` every decoder step also attends (dot product) over the encoder
outputs. The tutorials' "10 days x 7 variables -> next 3 days"::

    >>> from rnnx.models import build
    >>> model = build("seq2seq", input_size=7, hidden_size=16, horizon=3, window=10)
    >>> tuple(model.forecast(model.example_window(2), steps=3).shape)  # (B, steps, output_size)
    (2, 3, 1)

Your own encoder and decoder go in through :meth:`Seq2Seq.from_modules`; they must follow
this contract (the zoo's :class:`RNNEncoder` and :class:`RNNDecoder` are examples):

- encoder: ``forward(x) -> (outputs, state)``: ``x`` (B, T, F) normalised rows of any
  length T >= 1; ``outputs`` (B, T, H) one vector per row (the attention memory);
  ``state`` a list of tensors, the decoder's initial state.
- decoder step: ``forward(y_prev, state, memory) -> (y, new_state)``: ``y_prev`` (B, O)
  the previous output (normalised), ``state`` as the encoder returned it, ``memory`` the
  encoder outputs (B, T, H), to use or ignore; ``y`` (B, O) and the state of the same
  shapes. Both must be traceable by ``torch.onnx.export`` with a dynamic T.

Two forms of the same model:

- :meth:`Seq2Seq.forecast` ``(x (B, T, F), steps) -> (B, steps, O)``: what the exported
  bundle and :class:`rnnx.runtime.ForecastSession` compute, for any window length T.
- ``forward(x, state) -> (y, state)``: the rnnx streaming contract the training loop uses.
  The state holds the last ``window - 1`` rows; at every step the model forecasts from
  the last ``window`` rows, ``y`` (B, T, horizon * O). Before ``window`` rows have been
  seen the earliest row is repeated to fill the window.
"""

from typing import Final

import torch
from torch import Tensor, nn

from rnnx.errors import ConfigError
from rnnx.models._base import ZooModel
from rnnx.models.config import ModelConfig

_RNN = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNEncoder(nn.Module):
    """``x (B, T, F) -> (outputs (B, T, H), [h (L, B, H)] or [h, c])``: torch's fused LSTM/GRU."""

    is_lstm: Final[bool]

    def __init__(
        self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, bias: bool = True
    ) -> None:
        super().__init__()
        self.is_lstm = cell == "lstm"
        self.rnn = _RNN[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.is_lstm:
            out, (h, c) = self.rnn(x)
            return out, [h, c]
        out, h = self.rnn(x)
        return out, [h]


class RNNDecoder(nn.Module):
    """One decoder step: ``(y_prev (B, O), state, memory (B, S, H)) -> (y (B, O), new_state)``.

    The RNN reads ``y_prev``; with attention its top hidden vector ``d`` scores every
    memory row (``softmax(memory @ d)``) and the weighted sum of the memory joins ``d``
    in the output head.
    """

    is_lstm: Final[bool]
    attention: Final[bool]

    def __init__(
        self,
        cell: str,
        output_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bias: bool = True,
        attention: bool = False,
    ) -> None:
        super().__init__()
        self.is_lstm = cell == "lstm"
        self.attention = attention
        self.state_names = ["h", "c"] if self.is_lstm else ["h"]  # names in the exported bundle
        self.rnn = _RNN[cell](
            output_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size * (2 if attention else 1), output_size)

    def forward(self, y_prev: Tensor, state: list[Tensor], memory: Tensor) -> tuple[Tensor, list[Tensor]]:
        inp = y_prev.unsqueeze(1)  # (B, 1, O)
        if self.is_lstm:
            out, (h, c) = self.rnn(inp, (state[0], state[1]))
            new_state = [h, c]
        else:
            out, h = self.rnn(inp, state[0])
            new_state = [h]
        d = out[:, 0]  # (B, H)
        if self.attention:
            scores = torch.bmm(memory, d.unsqueeze(2)).squeeze(2)  # (B, S)
            weights = torch.softmax(scores, dim=1)
            context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, H)
            d = torch.cat([d, context], dim=1)  # (B, 2H)
        return self.head(d), new_state


class Seq2Seq(ZooModel):
    """Encoder–decoder forecaster; build with ``build("seq2seq", ...)`` or :meth:`from_modules`.

    Normalisation (``normalize=True``) and ``residual_input`` work as in the other zoo
    models: the model takes and returns raw units. Internally the decoder runs in
    normalised units; ``step`` takes and returns raw units, so what is fed back is the
    output itself.
    """

    normalize: Final[bool]
    residual: Final[int]  # input feature whose last value is added to every output (-1: none)
    window: Final[int]
    horizon: Final[int]
    input_size: Final[int]
    output_size: Final[int]
    attention: Final[bool]
    first_feature: int  # from_modules(first_input=): feature whose last value is the first y_prev (-1: go)

    def __init__(self, config: ModelConfig, encoder: nn.Module | None = None, decoder: nn.Module | None = None) -> None:
        super().__init__(config, ["rows", "seen"])
        cfg = config
        self.normalize = cfg.normalize
        self.residual = -1 if cfg.residual_input is None else cfg.residual_input
        self.window = int(cfg.window)  # type: ignore[arg-type]
        self.horizon = int(cfg.horizon)  # type: ignore[arg-type]
        self.input_size = int(cfg.input_size)  # type: ignore[arg-type]
        self.output_size = int(cfg.output_size)  # type: ignore[arg-type]
        self.attention = bool(cfg.attention)
        self.custom = encoder is not None or decoder is not None  # user modules: not a zoo checkpoint
        self.encoder = (
            encoder
            if encoder is not None
            else RNNEncoder(cfg.cell, self.input_size, cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.bias)
        )
        self.decoder = (
            decoder
            if decoder is not None
            else RNNDecoder(
                cfg.cell, self.output_size, cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.bias, cfg.attention
            )
        )
        self.go = nn.Parameter(torch.zeros(self.output_size))  # first decoder input (normalised units)
        self.first_feature = -1

    @classmethod
    def from_modules(
        cls,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        input_size: int,
        horizon: int,
        window: int,
        output_size: int = 1,
        normalize: bool = False,
        residual_input: int | None = None,
        attention: bool = False,
        first_input: int | None = None,
    ) -> "Seq2Seq":
        """A Seq2Seq around your own encoder and decoder-step modules (contract in the module doc).

        Args:
            encoder: ``forward(x) -> (outputs (B, T, H), state list)``.
            decoder: ``forward(y_prev (B, O), state, memory (B, T, H)) -> (y (B, O), state)``.
            input_size: features per input row.
            horizon: default number of generated steps.
            window: rows the streaming form keeps.
            output_size: values per generated step.
            normalize: add normalisation buffers (fill them with ``set_normalization``).
            residual_input: input feature whose last value is added to every output.
            attention: export the encoder outputs to the decoder graph as ``memory``
                (set it when your decoder reads ``memory``).
            first_input: the input feature whose last observed value (``x[:, -1,
                first_input:first_input + output_size]``) is the decoder's first ``y_prev``,
                as the tutorials feed it. None: a learned constant (``go``, zero until
                trained), as the zoo model does; give it to keep your own decoder's
                semantics.

        Returns:
            The model. Export it with :func:`rnnx.exporter.export_seq2seq`; it is not a zoo
            checkpoint (``rnnx.models.save``/``load`` rebuild the zoo modules).

        Raises:
            ConfigError: an invalid size or option.
        """
        config = ModelConfig(
            kind="seq2seq",
            input_size=input_size,
            hidden_size=1,
            output_size=output_size,
            horizon=horizon,
            window=window,
            normalize=normalize,
            residual_input=residual_input,
            attention=attention,
        )
        if first_input is not None and not 0 <= first_input <= input_size - output_size:
            raise ConfigError(
                f"first_input: expected a feature index in [0, {input_size - output_size}] "
                f"(input_size {input_size}, output_size {output_size}), got {first_input}"
            )
        model = cls(config.validate(), encoder, decoder)
        model.first_feature = -1 if first_input is None else int(first_input)
        return model

    # ------------------------------------------------------------------ the encoder–decoder
    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        """x (B, T, F) raw rows -> (memory (B, T, H), decoder state, first input (B, O), base (B, 1))."""
        base = x[:, -1, self.residual : self.residual + 1] if self.residual >= 0 else x[:, -1, :1] * 0.0  # (B, 1)
        last = x[:, -1, max(self.first_feature, 0) : max(self.first_feature, 0) + self.output_size]  # (B, O) raw
        if self.normalize:
            x = (x - self.in_mean) / self.in_std
        memory, state = self.encoder(x)
        if self.first_feature >= 0:  # the user's decoder semantics: the last observed target, raw units
            return memory, list(state), last, base
        first = self.go.unsqueeze(0).expand(x.shape[0], self.output_size)  # (B, O)
        if self.normalize:
            first = first * self.out_std + self.out_mean
        return memory, list(state), first + base, base

    def step(self, y_prev: Tensor, state: list[Tensor], memory: Tensor, base: Tensor) -> tuple[Tensor, list[Tensor]]:
        """One decoder step in raw units: (previous output (B, O), state, memory, base) -> (y (B, O), state)."""
        z = y_prev - base
        if self.normalize:
            z = (z - self.out_mean) / self.out_std
        z, new_state = self.decoder(z, state, memory)
        if self.normalize:
            z = z * self.out_std + self.out_mean
        return z + base, list(new_state)

    def forecast(self, x: Tensor, steps: int) -> Tensor:
        """Encode the window ``x`` (B, T, F) and generate ``steps`` outputs: (B, steps, O), raw units."""
        memory, state, y, base = self.encode(x)
        outs: list[Tensor] = []
        for _ in range(steps):
            y, state = self.step(y, state, memory, base)
            outs.append(y)
        return torch.stack(outs, dim=1)

    # ------------------------------------------------------------------ streaming contract (training)
    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        """[rows (B, window - 1, F) the last rows seen, seen (B, 1) how many (capped at window - 1)]."""
        w = self.go
        return [
            torch.zeros(batch_size, self.window - 1, self.input_size, dtype=w.dtype, device=w.device),
            torch.zeros(batch_size, 1, dtype=w.dtype, device=w.device),
        ]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, T, F) rows -> (y (B, T, horizon * O): at each step the forecast from the last window rows, state)."""
        rows, seen = state[0], state[1]  # (B, P, F) with P = window - 1; (B, 1)
        b, t, p = x.shape[0], x.shape[1], self.window - 1
        buf = torch.cat([rows, x], dim=1)  # (B, P + T, F)
        first = p - seen.to(torch.int64)  # (B, 1) index of the earliest real row
        idx = torch.maximum(torch.arange(p + t, device=x.device).unsqueeze(0), first)  # (B, P + T)
        buf = torch.gather(buf, 1, idx.unsqueeze(2).expand(b, p + t, buf.shape[2]))  # earliest row repeated
        windows = buf.unfold(1, self.window, 1).permute(0, 1, 3, 2)  # (B, T, W, F)
        y = self.forecast(windows.reshape(b * t, self.window, buf.shape[2]), self.horizon)  # (B*T, H, O)
        new_seen = torch.clamp(seen + t, max=float(p))
        return y.reshape(b, t, self.horizon * self.output_size), [buf[:, t:], new_seen]

    def example_window(self, batch_size: int = 2, steps: int = -1) -> Tensor:
        """Random raw rows (B, T, F); ``T`` defaults to ``window``."""
        return torch.randn(batch_size, self.window if steps < 0 else steps, self.input_size)
