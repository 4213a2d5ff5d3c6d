"""Recurrent cells written from the gate equations: one time step, elementary ops only.

Parameter names and layouts are torch's (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``, ``weight_hr``), so ``cell.load_state_dict(torch.nn.LSTMCell(...).state_dict())``
works and the values match torch's cells to float rounding.

Template for your own cell (peephole, layer norm, ...). A cell is a scriptable
``nn.Module`` whose ``forward(x, state) -> new state`` computes ONE step; every loop
over time lives outside it (see :mod:`rnnx.models.layers`)::

    class PeepholeLSTMCell(nn.Module):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__()
            self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
            self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
            self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
            self.peep = nn.Parameter(torch.zeros(3, hidden_size))  # i, f, o look at c
            ...  # initialise

        def forward(self, x: Tensor, state: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
            h, c = state                                           # (B, H) each
            gates = F.linear(x, self.weight_ih, self.bias) + F.linear(h, self.weight_hh)
            i, f, g, o = gates.chunk(4, 1)                         # (B, H) each
            i = torch.sigmoid(i + self.peep[0] * c)
            f = torch.sigmoid(f + self.peep[1] * c)
            c = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + self.peep[2] * c)
            return o * torch.tanh(c), c

Rules that keep a cell exportable: tensors and tuples/lists of tensors in and out,
no Python-side data-dependent control flow, type-annotated ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnx.checks import check_int
from rnnx.errors import ConfigError


def _bias_sum(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    """``b_ih + b_hh`` (either may be absent): one bias, folded to a constant on export."""
    if b_ih is None:
        return b_hh
    if b_hh is None:
        return b_ih
    return b_ih + b_hh


def _plus_recurrent(acc: Tensor, h: Tensor, w_hh: Tensor) -> Tensor:
    """``acc + h @ w_hh.T``; batched, one ``Gemm`` whose C input is ``acc`` (no extra Add)."""
    if h.dim() == 2:
        return torch.addmm(acc, h, w_hh.t())
    return acc + F.linear(h, w_hh)


def rnn_step(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, relu: bool
) -> Tensor:
    """Elman step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``; shapes (B, I), (B, H) -> (B, H)."""
    pre = _plus_recurrent(F.linear(x, w_ih, _bias_sum(b_ih, b_hh)), h, w_hh)
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_gates(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """LSTM gate math: pre-activations i, f, g, o stacked on axis 1 and c -> new (h, c)."""
    i, f, g, o = gates.chunk(4, 1)  # (B, H, ...) each
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def lstm_step(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """LSTM step, torch gate order i, f, g, o; ``h`` is (B, P) with projection, else (B, H).

    All four gates come from one matmul per weight (``W_ih``, ``W_hh`` stacked as torch
    stores them), the two biases are summed into one.
    """
    gates = _plus_recurrent(F.linear(x, w_ih, _bias_sum(b_ih, b_hh)), h, w_hh)  # (B, 4H)
    h_new, c_new = lstm_gates(gates, c)
    if w_hr is not None:
        h_new = F.linear(h_new, w_hr)  # (B, P)
    return h_new, c_new


def gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    """GRU step, torch gate order r, z, n; the reset gate multiplies ``W_hn h + b_hn``."""
    gi = F.linear(x, w_ih, b_ih)  # (B, 3H)
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


class _CellBase(nn.Module):
    """Registers torch's parameter layout: ``gate_mult`` stacked gates per weight."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gate_mult: int, recur_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_mult * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gate_mult * hidden_size, recur_size))
        if bias:
            self.bias_ih: nn.Parameter | None = nn.Parameter(torch.empty(gate_mult * hidden_size))
            self.bias_hh: nn.Parameter | None = nn.Parameter(torch.empty(gate_mult * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        """torch's init: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)


class RNNCell(_CellBase):
    """Elman cell, same parameters and results as ``torch.nn.RNNCell``.

    Example:
        >>> cell = RNNCell(5, 8, nonlinearity="relu")
        >>> cell(torch.zeros(2, 5), torch.zeros(2, 8)).shape
        torch.Size([2, 8])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, hidden_size)
        self.nonlinearity = nonlinearity
        self.relu = nonlinearity == "relu"
        self.reset_parameters()

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        """One step: x (B, I), state h (B, H) -> new h (B, H)."""
        return rnn_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.relu)


class GRUCell(_CellBase):
    """GRU cell, same parameters and results as ``torch.nn.GRUCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, 3, hidden_size)
        self.reset_parameters()

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        """One step: x (B, I), state h (B, H) -> new h (B, H)."""
        return gru_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(_CellBase):
    """LSTM cell, same parameters and results as ``torch.nn.LSTMCell``, plus ``proj_size``.

    With ``proj_size > 0`` it adds ``weight_hr`` (P, H) as in ``torch.nn.LSTM`` and h is (B, P).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0) -> None:
        if not 0 <= proj_size < hidden_size:
            raise ConfigError(f"proj_size: expected 0 <= proj_size < hidden_size ({hidden_size}), got {proj_size}")
        super().__init__(input_size, hidden_size, bias, 4, proj_size or hidden_size)
        self.proj_size = proj_size
        if proj_size > 0:
            self.weight_hr: nn.Parameter | None = nn.Parameter(torch.empty(proj_size, hidden_size))
        else:
            self.register_parameter("weight_hr", None)
        self.reset_parameters()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step: x (B, I), state (h (B, P or H), c (B, H)) -> new (h, c)."""
        h, c = state
        return lstm_step(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.weight_hr)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell: the four gates are one conv over ``cat([x, h], channels)``.

    Parameters: ``conv.weight`` (4*Ch, Cin+Ch, k, k) and ``conv.bias`` (4*Ch), gate order
    i, f, g, o as in torch's LSTM; same padding keeps the grid size.

    Example:
        >>> cell = ConvLSTMCell(2, 4, kernel_size=3)
        >>> h, c = cell(torch.zeros(1, 2, 6, 6), (torch.zeros(1, 4, 6, 6), torch.zeros(1, 4, 6, 6)))
        >>> h.shape
        torch.Size([1, 4, 6, 6])
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        kernel_size = check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: expected an odd int (same padding), got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step: x (B, Cin, H, W), state (h, c) each (B, Ch, H, W) -> new (h, c)."""
        return self.step(x, state)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The step itself, also called by :class:`rnnx.models.convlstm.ConvLSTMLayer`."""
        h, c = state
        gates = self.conv(torch.cat([x, h], 1))  # (B, 4Ch, H, W)
        return lstm_gates(gates, c)
