"""`RNNLayers`, `LSTMLayers`, `GRULayers`: drop-in replacements of torch.nn.RNN/LSTM/GRU.

Same constructor arguments, parameter names (``weight_ih_l0``, ``weight_hh_l1_reverse``,
``weight_hr_l0``, ...), call signature and results as torch's fused layers, but the
loop over time is plain Python over rnnx's gate-equation cells, so

- eager results equal torch's (to float rounding),
- ``torch.jit.trace`` at T=1 records one step of elementary ops (MatMul, Sigmoid, ...),
- ``torch.jit.script`` compiles the loop (an ONNX ``Loop`` through the TorchScript exporter).

The reverse direction indexes time from the end and ``torch.flip``-s its stacked outputs.
The loop over layers is :class:`rnnx.models.stack.LayerStack` (``self.layers``).

Example:
    >>> lstm = torch.nn.LSTM(5, 8, num_layers=2, proj_size=4, batch_first=True)
    >>> ours = LSTMLayers.from_torch(lstm)
    >>> x = torch.randn(2, 7, 5)
    >>> torch.allclose(ours(x)[0], lstm(x)[0], atol=1e-6)
    True
"""

from typing import Any, Final

import torch
from torch import Tensor, nn

from rnnx.models.cells import GRUCell, LSTMCell, RNNCell
from rnnx.models.stack import LayerStack

_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


class _HiddenLayer(nn.Module):
    """One RNN/GRU layer, both directions; x (T, B, I), h (D, B, H) -> (y (T, B, D*H), h (D, B, H))."""

    def __init__(self, fw: nn.Module, bw: nn.Module | None) -> None:
        super().__init__()
        self.fw = fw
        self.bw = bw

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        steps = x.size(0)
        hf = h[0]
        outs: list[Tensor] = []
        for t in range(steps):
            hf = self.fw(x[t], hf)
            outs.append(hf)
        y = torch.stack(outs, 0)  # (T, B, H)
        if self.bw is not None:
            hb = h[1]
            outs_b: list[Tensor] = []
            for t in range(steps):
                hb = self.bw(x[steps - 1 - t], hb)
                outs_b.append(hb)
            y_b = torch.flip(torch.stack(outs_b, 0), [0])  # (T, B, H), back in time order
            return torch.cat([y, y_b], 2), torch.stack([hf, hb], 0)
        return y, hf.unsqueeze(0)


class _LSTMLayer(nn.Module):
    """One LSTM layer, both directions; h (D, B, P or H), c (D, B, H)."""

    def __init__(self, fw: nn.Module, bw: nn.Module | None) -> None:
        super().__init__()
        self.fw = fw
        self.bw = bw

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        steps = x.size(0)
        hf, cf = h[0], c[0]
        outs: list[Tensor] = []
        for t in range(steps):
            hf, cf = self.fw(x[t], (hf, cf))
            outs.append(hf)
        y = torch.stack(outs, 0)  # (T, B, P or H)
        if self.bw is not None:
            hb, cb = h[1], c[1]
            outs_b: list[Tensor] = []
            for t in range(steps):
                hb, cb = self.bw(x[steps - 1 - t], (hb, cb))
                outs_b.append(hb)
            y_b = torch.flip(torch.stack(outs_b, 0), [0])
            return torch.cat([y, y_b], 2), torch.stack([hf, hb], 0), torch.stack([cf, cb], 0)
        return y, hf.unsqueeze(0), cf.unsqueeze(0)


class _LayersBase(nn.Module):
    """Builds the cells and registers their parameters again under torch's flat names."""

    _TORCH: Any = None  # the torch class this replaces
    _CELL_STATE = False  # layers carry (h, c), not h alone
    batch_first: Final[bool]
    num_directions: Final[int]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.num_directions = 2 if bidirectional else 1
        self.state_size = proj_size or hidden_size  # width of h
        self.layers = LayerStack(
            (self._make_layer(i) for i in range(num_layers)), self._CELL_STATE, self.num_directions
        )
        self._register_torch_names()
        self._register_state_dict_hook(_drop_cell_keys)
        self.register_load_state_dict_pre_hook(_add_cell_keys)

    def _make_cell(self, input_size: int) -> nn.Module:
        raise NotImplementedError

    def _wrap(self, fw: nn.Module, bw: nn.Module | None) -> nn.Module:
        return _HiddenLayer(fw, bw)

    def _make_layer(self, i: int) -> nn.Module:
        size = self.input_size if i == 0 else self.state_size * self.num_directions
        bw = self._make_cell(size) if self.bidirectional else None
        return self._wrap(self._make_cell(size), bw)

    def _register_torch_names(self) -> None:
        """Alias each cell parameter as ``{name}_l{i}[_reverse]``, in torch's order."""
        for i, layer in enumerate(self.layers):
            for sfx, cell in (("", layer.fw), ("_reverse", layer.bw)):
                if cell is None:
                    continue
                for name in _PARAM_NAMES:
                    p = getattr(cell, name, None)
                    if p is not None:
                        self.register_parameter(f"{name}_l{i}{sfx}", p)

    def _cell_key_map(self) -> dict[str, str]:
        """torch name -> cell parameter path, e.g. weight_ih_l0_reverse -> layers.0.bw.weight_ih."""
        out: dict[str, str] = {}
        for i in range(self.num_layers):
            for sfx, side in (("", "fw"), ("_reverse", "bw")):
                for name in _PARAM_NAMES:
                    out[f"{name}_l{i}{sfx}"] = f"layers.{i}.{side}.{name}"
        return out

    @classmethod
    def _torch_kwargs(cls, module: nn.Module) -> dict[str, Any]:
        return dict(
            input_size=module.input_size,
            hidden_size=module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
        )

    @classmethod
    def from_torch(cls, module: nn.Module) -> "_LayersBase":
        """An equivalent stack with ``module``'s options, weights, dtype, device and train mode."""
        if not isinstance(module, cls._TORCH):
            raise TypeError(f"module: expected torch.nn.{cls._TORCH.__name__}, got {type(module).__name__}")
        ours = cls(**cls._torch_kwargs(module))
        ref = next(module.parameters())
        ours.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name, p in module.named_parameters():
                getattr(ours, name).copy_(p)
        return ours.train(module.training)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, batch_first={self.batch_first}"
        return (
            s
            + (", bidirectional=True" if self.bidirectional else "")
            + (f", proj_size={self.proj_size}" if self.proj_size else "")
        )


def _drop_cell_keys(module: _LayersBase, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "layers.")]:
        del state_dict[key]


def _add_cell_keys(module: _LayersBase, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for flat, path in module._cell_key_map().items():
        if prefix + flat in state_dict:
            state_dict[prefix + path] = state_dict[prefix + flat]


class _HiddenLayers(_LayersBase):
    """Forward shared by RNN and GRU (state is one tensor)."""

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """input (B, T, I) if batch_first else (T, B, I), or unbatched (T, I); hx (L*D, B, H).

        Returns:
            output (..., T, D*H) in the input's layout and h_n (L*D, B, H), as torch.
        """
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)  # (T, B, I) or (B, T, I)
        if self.batch_first and batched:
            x = x.transpose(0, 1)  # (T, B, I)
        nd = self.num_directions
        if hx is None:
            h0 = torch.zeros(self.num_layers * nd, x.size(1), self.state_size, dtype=x.dtype, device=x.device)
        else:
            h0 = hx if batched else hx.unsqueeze(1)
        x, new = self.layers(x, [h0], self.dropout)
        h_n = new[0]  # (L*D, B, H)
        if not batched:  # tensors, not tuples, out of branches: the ONNX exporter lowers them
            x, h_n = x.squeeze(1), h_n.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)  # (B, T, D*H)
        return x, h_n


class RNNLayers(_HiddenLayers):
    """Same as ``torch.nn.RNN`` (tanh or relu), built from :class:`RNNCell`."""

    _TORCH = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def _make_cell(self, input_size: int) -> nn.Module:
        return RNNCell(input_size, self.hidden_size, self.bias, self.nonlinearity)

    @classmethod
    def _torch_kwargs(cls, module: nn.Module) -> dict[str, Any]:
        return {**super()._torch_kwargs(module), "nonlinearity": module.nonlinearity}


class GRULayers(_HiddenLayers):
    """Same as ``torch.nn.GRU``, built from :class:`GRUCell`."""

    _TORCH = nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def _make_cell(self, input_size: int) -> nn.Module:
        return GRUCell(input_size, self.hidden_size, self.bias)


class LSTMLayers(_LayersBase):
    """Same as ``torch.nn.LSTM`` (including ``proj_size``), built from :class:`LSTMCell`."""

    _TORCH = nn.LSTM
    _CELL_STATE = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)

    def _make_cell(self, input_size: int) -> nn.Module:
        return LSTMCell(input_size, self.hidden_size, self.bias, self.proj_size)

    def _wrap(self, fw: nn.Module, bw: nn.Module | None) -> nn.Module:
        return _LSTMLayer(fw, bw)

    @classmethod
    def _torch_kwargs(cls, module: nn.Module) -> dict[str, Any]:
        return {**super()._torch_kwargs(module), "proj_size": module.proj_size}

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """input as ``torch.nn.LSTM``; hx (h0 (L*D, B, P or H), c0 (L*D, B, H)) -> (output, (h_n, c_n))."""
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)  # (T, B, I)
        nd = self.num_directions
        if hx is None:
            shape = [self.num_layers * nd, x.size(1)]
            h0 = torch.zeros(shape + [self.state_size], dtype=x.dtype, device=x.device)
            c0 = torch.zeros(shape + [self.hidden_size], dtype=x.dtype, device=x.device)
        else:
            h0, c0 = hx[0], hx[1]
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        x, new = self.layers(x, [h0, c0], self.dropout)
        h_n, c_n = new[0], new[1]  # (L*D, B, P or H), (L*D, B, H)
        if not batched:  # tensors, not tuples, out of branches: the ONNX exporter lowers them
            x, h_n, c_n = x.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)  # (B, T, D*P)
        return x, (h_n, c_n)
