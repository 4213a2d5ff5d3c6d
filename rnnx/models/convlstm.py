"""`ConvLSTM`: a stack of :class:`ConvLSTMCell` over (B, T, C, H, W) sequences.

Example:
    >>> from rnnx.models import build
    >>> model = build("convlstm", input_size=2, hidden_size=4, image_size=(6, 6), output_size=1)
    >>> y, state = model(model.example_input(1, 3), model.init_state(1))
    >>> y.shape, state[0].shape
    (torch.Size([1, 3, 1, 6, 6]), torch.Size([1, 1, 4, 6, 6]))
"""

from typing import Final

import torch
from torch import Tensor, nn

from rnnx.models._base import ZooModel
from rnnx.models.cells import ConvLSTMCell
from rnnx.models.config import ModelConfig
from rnnx.models.stack import LayerStack


class ConvLSTMLayer(ConvLSTMCell):
    """A :class:`ConvLSTMCell` run over a whole sequence: a layer of :class:`LayerStack`.

    Its parameters are the cell's (``conv.weight``, ``conv.bias``); one step is ``step``.
    """

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        """x (B, T, Cin, H, W), h and c (1, B, Ch, H, W) -> (y (B, T, Ch, H, W), h_n, c_n (1, B, Ch, H, W))."""
        ht, ct = h[0], c[0]  # (B, Ch, H, W)
        outs: list[Tensor] = []
        for t in range(x.size(1)):
            ht, ct = self.step(x[:, t], (ht, ct))
            outs.append(ht)
        return torch.stack(outs, 1), ht.unsqueeze(0), ct.unsqueeze(0)


class ConvLSTM(ZooModel):
    """ConvLSTM layers -> optional per-step 1x1 Conv2d head.

    State ``[h (L, B, Ch, H, W), c (L, B, Ch, H, W)]``; output ``(B, T, O or Ch, H, W)``.
    ``cells`` is a :class:`LayerStack` of :class:`ConvLSTMLayer` (each a cell run over time).
    """

    normalize: Final[bool]

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, ["h", "c"])
        if config.kind != "convlstm":
            raise ValueError(f"kind: ConvLSTM builds convlstm, got {config.kind!r}")
        self.normalize = config.normalize
        ch = config.hidden_size
        self.cells = LayerStack(
            (
                ConvLSTMLayer(config.input_size if i == 0 else ch, ch, config.kernel_size, config.bias)  # type: ignore[arg-type]
                for i in range(config.num_layers)
            ),
            cell_state=True,
        )
        self.head: nn.Conv2d | None = nn.Conv2d(ch, config.output_size, 1) if config.output_size is not None else None
        self.dropout = float(config.dropout)
        self.num_layers = config.num_layers
        self.hidden_channels = ch
        self.height, self.width = config.image_size  # type: ignore[misc]

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        """Zero ``[h, c]``, each (L, B, Ch, H, W), on the parameters' device and dtype."""
        # getattr: torch types a submodule's attributes Tensor | Module; TorchScript rejects ignore comments
        w = getattr(self.cells[0].conv, "weight")  # noqa: B009
        shape = [self.num_layers, batch_size, self.hidden_channels, self.height, self.width]
        return [torch.zeros(shape, dtype=w.dtype, device=w.device), torch.zeros(shape, dtype=w.dtype, device=w.device)]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, T, C, H, W), state ``[h, c]`` -> (y (B, T, O or Ch, H, W), new ``[h, c]``)."""
        if self.normalize:
            x = (x - self.in_mean.view(-1, 1, 1)) / self.in_std.view(-1, 1, 1)
        y, new = self.cells(x, state, self.dropout)  # (B, T, Ch, H, W)
        if self.head is not None:
            b, t = y.size(0), y.size(1)
            y = self.head(y.flatten(0, 1))  # (B*T, O, H, W)
            y = y.reshape(b, t, y.size(1), y.size(2), y.size(3))  # (B, T, O, H, W)
        if self.normalize:
            y = y * self.out_std.view(-1, 1, 1) + self.out_mean.view(-1, 1, 1)
        return y, new
