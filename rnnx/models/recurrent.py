"""`RecurrentModel`: RNN / LSTM / GRU zoo model on torch's fused layers (fast training).

Example:
    >>> from rnnx.models import build
    >>> model = build("lstm", input_size=5, hidden_size=8, output_size=3)
    >>> y, state = model(model.example_input(2, 7), model.init_state(2))
    >>> y.shape, [s.shape for s in state]
    (torch.Size([2, 7, 3]), [torch.Size([1, 2, 8]), torch.Size([1, 2, 8])])
"""

from typing import Any, Final

import torch
from torch import Tensor, nn

from rnnx.models._base import ZooModel
from rnnx.models.config import ModelConfig

_TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _torch_layers(cfg: ModelConfig) -> nn.Module:
    kwargs: dict[str, Any] = dict(
        input_size=cfg.feature_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        bias=cfg.bias,
        batch_first=True,
        dropout=float(cfg.dropout) if cfg.num_layers > 1 else 0.0,
        bidirectional=cfg.bidirectional,
    )
    if cfg.kind == "rnn":
        kwargs["nonlinearity"] = cfg.nonlinearity
    if cfg.kind == "lstm":
        kwargs["proj_size"] = cfg.proj_size
    return _TORCH[cfg.kind](**kwargs)


class RecurrentModel(ZooModel):
    """Optional embedding -> torch nn.RNN/LSTM/GRU (batch_first) -> optional per-step Linear head.

    State (torch layout): rnn/gru ``[h (L*D, B, H)]``; lstm ``[h (L*D, B, P or H), c (L*D, B, H)]``.
    """

    is_lstm: Final[bool]
    normalize: Final[bool]
    residual: Final[int]  # input feature added to every output (-1: none)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, ["h", "c"] if config.kind == "lstm" else ["h"])
        if config.kind not in _TORCH:
            raise ValueError(f"kind: RecurrentModel builds rnn, lstm, gru, got {config.kind!r}")
        self.is_lstm = config.kind == "lstm"
        self.normalize = config.normalize
        self.residual = -1 if config.residual_input is None else config.residual_input
        self.embedding: nn.Embedding | None = (
            nn.Embedding(config.vocab_size, config.embedding_dim) if config.vocab_size is not None else None  # type: ignore[arg-type]
        )
        self.rnn = _torch_layers(config)
        self.head: nn.Linear | None = (
            nn.Linear(config.hidden_out_size, config.output_size) if config.output_size is not None else None
        )
        self.state_layers = config.num_layers * config.num_directions
        self.h_size = config.proj_size or config.hidden_size
        self.c_size = config.hidden_size

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        """Zero state for ``batch_size`` sequences, on the parameters' device and dtype."""
        # getattr: torch types a submodule's attributes Tensor | Module; TorchScript rejects ignore comments
        w = getattr(self.rnn, "weight_hh_l0")  # noqa: B009
        h = torch.zeros(self.state_layers, batch_size, self.h_size, dtype=w.dtype, device=w.device)
        if self.is_lstm:
            return [h, torch.zeros(self.state_layers, batch_size, self.c_size, dtype=w.dtype, device=w.device)]
        return [h]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, T, F) float or (B, T) int64 ids; state as :meth:`init_state` -> (y (B, T, O), new state)."""
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, E)
        base = x[:, :, self.residual : self.residual + 1] if self.residual >= 0 else x[:, :, :0]  # (B, T, 1) raw
        if self.normalize:
            x = (x - self.in_mean) / self.in_std
        if self.is_lstm:
            y, (h, c) = self.rnn(x, (state[0], state[1]))
            new_state = [h, c]
        else:
            y, h = self.rnn(x, state[0])
            new_state = [h]
        if self.head is not None:
            y = self.head(y)  # (B, T, O)
        if self.normalize:
            y = y * self.out_std + self.out_mean
        if self.residual >= 0:
            y = y + base  # the model predicts the change from the input's current value
        return y, new_state
