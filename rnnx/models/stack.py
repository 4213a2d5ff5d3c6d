"""`LayerStack`: the one loop over stacked recurrent layers (RNN/LSTM/GRU layers, ConvLSTM).

Each layer runs on its slice of the stacked state, its output feeds the next layer
(through dropout between layers, in training), and the layers' new states are stacked
again. A layer is a module whose ``forward`` runs a whole sequence:

- one state (RNN, GRU): ``forward(x, h) -> (y, h_n)``,
- two states (LSTM, ConvLSTM): ``forward(x, h, c) -> (y, h_n, c_n)``,

with ``h``, ``c`` and their new values ``(width, B, ...)``: ``width`` is the number of
state rows a layer owns (its directions). Being an ``nn.ModuleList``, a stack keeps its
layers' parameter names (``layers.0.fw.weight_ih``, ``cells.1.conv.weight``) and lets
an exporter swap a layer for a stand-in of the same call signature.

Example:
    >>> from rnnx.models import LSTMLayers
    >>> stack = LSTMLayers(3, 4, num_layers=2).layers  # two LSTM layers, one direction
    >>> y, (h, c) = stack(torch.zeros(5, 2, 3), [torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)], 0.0)
    >>> tuple(y.shape), tuple(h.shape), tuple(c.shape)
    ((5, 2, 4), (2, 2, 4), (2, 2, 4))
"""

from collections.abc import Iterable
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerStack(nn.ModuleList):
    """Recurrent layers run in turn; scriptable (the loop over layers is unrolled)."""

    cell_state: Final[bool]  # layers take and return (h, c), not h alone
    width: Final[int]  # state rows per layer (its number of directions)

    def __init__(self, layers: Iterable[nn.Module], cell_state: bool, width: int = 1) -> None:
        super().__init__(layers)
        self.cell_state = cell_state
        self.width = width

    def forward(self, x: Tensor, state: list[Tensor], dropout: float) -> tuple[Tensor, list[Tensor]]:
        """Run every layer on ``x``.

        Args:
            x: the first layer's input sequence, in the layout the layers take.
            state: ``[h]`` or ``[h, c]`` (``cell_state``), each (L*width, B, ...).
            dropout: probability of dropout on each layer's input but the first's, in training.

        Returns:
            The last layer's output and the new ``[h]`` or ``[h, c]``, each (L*width, B, ...).
        """
        w = self.width
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        for i, layer in enumerate(self):
            if i > 0 and self.training and dropout > 0.0:
                x = F.dropout(x, dropout, True)
            h = state[0][i * w : (i + 1) * w]  # (width, B, ...)
            if self.cell_state:  # a constant: TorchScript compiles only the branch taken
                x, h, c = layer(x, h, state[1][i * w : (i + 1) * w])
                cs.append(c)
            else:
                x, h = layer(x, h)
            hs.append(h)
        if self.cell_state:
            return x, [torch.cat(hs, 0), torch.cat(cs, 0)]
        return x, [torch.cat(hs, 0)]
