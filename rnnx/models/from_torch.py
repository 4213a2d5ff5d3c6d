"""Zoo models from the layers of a model you already trained (the route when wrapping cannot work).

``rnnx.wrap`` adapts a module as written, but a forward that builds its state inside
(``h0 = torch.zeros(...)``) or drops it (returns only the output) has no state to carry.
Rebuild such a model from the zoo with your trained weights instead:

- :func:`from_torch` for an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` plus an optional per-step
  ``nn.Linear`` head (the shape of most tutorial regressors and classifiers);
- :func:`from_conv_cells` for ConvLSTM cells whose gates are one ``nn.Conv2d`` over
  ``cat([x, h])``. Implementations split that convolution in different orders: rnnx (and
  torch's LSTM) use i, f, g, o; the widespread ConvLSTM_pytorch cell and many tutorials
  use i, f, o, g (``gate_order="ifog"``, the default here).

The result is an ordinary zoo model: ``save`` it and ``rnnx export`` the checkpoint, or
pass it to ``export_onnx`` directly.

Example:
    >>> import torch
    >>> from rnnx.models import from_torch
    >>> lstm, head = torch.nn.LSTM(7, 16, num_layers=2), torch.nn.Linear(16, 3)
    >>> model = from_torch(lstm, head)           # RecurrentModel: batch-first, init_state, (y, state)
    >>> y, state = model(torch.randn(4, 10, 7), model.init_state(4))
    >>> tuple(y.shape)
    (4, 10, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from rnnx.errors import ConfigError
from rnnx.models.cells import ConvLSTMCell
from rnnx.models.convlstm import ConvLSTM
from rnnx.models.recurrent import RecurrentModel
from rnnx.models.registry import build

RNNX_GATES = "ifgo"  # rnnx's (and torch's LSTM) gate order along the gate axis
_KIND = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}


def from_torch(layer: nn.Module, head: nn.Linear | None = None) -> RecurrentModel:
    """A zoo model holding ``layer``'s (and ``head``'s) trained weights.

    Args:
        layer: a torch ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (any layers, bidirectional,
            proj_size, nonlinearity, bias; its ``batch_first`` does not matter: the zoo
            model is batch-first like every rnnx model).
        head: an optional ``nn.Linear`` applied to every step's output.

    Returns:
        A :class:`RecurrentModel` in eval mode whose ``forward(x, state)`` equals
        ``head(layer(x, state))`` (batch-first); the user's modules are not modified.

    Raises:
        ConfigError: ``layer`` is not one of the three, or ``head`` does not fit its output.
    """
    kind = _KIND.get(type(layer))
    if kind is None or not isinstance(layer, nn.RNNBase):
        raise ConfigError(
            f"layer: expected torch's nn.LSTM, nn.GRU or nn.RNN, got "
            f"{type(layer).__name__} (for anything else: rnnx.wrap(module, ...))"
        )
    options: dict[str, Any] = dict(
        input_size=layer.input_size,
        hidden_size=layer.hidden_size,
        num_layers=layer.num_layers,
        bias=layer.bias,
        bidirectional=layer.bidirectional,
        dropout=float(layer.dropout),
    )
    if kind == "lstm":
        options["proj_size"] = layer.proj_size
    if kind == "rnn":
        options["nonlinearity"] = layer.nonlinearity
    width = (getattr(layer, "proj_size", 0) or layer.hidden_size) * (2 if layer.bidirectional else 1)
    if head is not None:
        _check_head(head, nn.Linear, "in_features", width)
        options["output_size"] = head.out_features
    model = cast(RecurrentModel, build(kind, **options))
    cast(nn.RNNBase, model.rnn).load_state_dict(layer.state_dict())  # same class, same parameter names
    if head is not None and model.head is not None:
        _load_head(model.head, head)
    return model.eval().to(next(layer.parameters()).dtype)


def reorder_gates(t: Tensor, order: str, dim: int = 0) -> Tensor:
    """Reorder the four gate blocks of ``t`` along ``dim`` from ``order`` to rnnx's i, f, g, o.

    Args:
        t: a weight or bias whose ``dim`` holds four equal gate blocks.
        order: the source order, a permutation of "ifgo" (e.g. "ifog").
        dim: the gate axis.

    Raises:
        ConfigError: ``order`` is not a permutation of i, f, g, o, or ``dim`` does not split in four.
    """
    if sorted(order) != sorted(RNNX_GATES) or len(order) != 4:
        raise ConfigError(f"gate_order: expected a permutation of 'ifgo' such as 'ifog', got {order!r}")
    if t.shape[dim] % 4:
        raise ConfigError(f"gates: expected axis {dim} of shape {tuple(t.shape)} to split into 4 equal gate blocks")
    blocks = dict(zip(order, t.chunk(4, dim)))
    return torch.cat([blocks[g] for g in RNNX_GATES], dim)


def from_conv_cells(
    cells: Sequence[nn.Module], image_size: tuple[int, int], *, gate_order: str = "ifog", head: nn.Conv2d | None = None
) -> ConvLSTM:
    """A zoo :class:`ConvLSTM` holding the weights of a stack of ConvLSTM cells.

    Args:
        cells: one cell per layer, each with a ``conv`` (``nn.Conv2d`` of
            ``in + hidden -> 4 * hidden`` channels, square odd kernel, same padding) over
            ``cat([x, h], channels)``, as in ConvLSTM_pytorch and most tutorials.
            Cells may differ in whether their conv has a bias: the model then has one on
            every layer, zero where a cell has none (the same outputs).
        image_size: (height, width) of the grid.
        gate_order: the order the cells split the convolution's output in ("ifog" for
            ``i, f, o, g = split(conv(...))``; "ifgo" when it is already rnnx's).
        head: an optional 1x1 ``nn.Conv2d`` applied to every step's hidden grid.

    Returns:
        A :class:`ConvLSTM` in eval mode, state ``[h, c]`` each (layers, batch, hidden, H, W).

    Raises:
        ConfigError: a cell has no fitting ``conv``, the cells disagree, or a bad ``gate_order``.
    """
    found = [getattr(c, "conv", None) for c in cells]
    convs = [c for c in found if isinstance(c, nn.Conv2d)]
    if not convs or len(convs) != len(found):
        raise ConfigError(
            "cells: expected one or more ConvLSTM cells, each with a .conv nn.Conv2d "
            "over cat([x, h]), got " + ", ".join(type(c).__name__ for c in cells)
        )
    first = convs[0]
    hidden, kernel = first.out_channels // 4, first.kernel_size[0]
    if first.out_channels % 4 or first.kernel_size[0] != first.kernel_size[1]:
        raise ConfigError(
            f"cells[0].conv: expected 4 * hidden output channels and a square kernel, "
            f"got {first.out_channels} channels, kernel {tuple(first.kernel_size)}"
        )
    for i, conv in enumerate(convs):
        expected = (first.in_channels - hidden if i == 0 else hidden) + hidden
        if (conv.out_channels, conv.in_channels, tuple(conv.kernel_size)) != (4 * hidden, expected, (kernel, kernel)):
            raise ConfigError(
                f"cells[{i}].conv: expected {expected} -> {4 * hidden} channels, kernel "
                f"{kernel}, got {conv.in_channels} -> {conv.out_channels}, kernel "
                f"{tuple(conv.kernel_size)}"
            )
    if head is not None:
        _check_head(head, nn.Conv2d, "in_channels", hidden)
    model = cast(
        ConvLSTM,
        build(
            "convlstm",
            input_size=first.in_channels - hidden,
            hidden_size=hidden,
            num_layers=len(convs),
            kernel_size=kernel,
            bias=any(conv.bias is not None for conv in convs),  # a cell without one: a zero bias
            image_size=tuple(image_size),
            output_size=head.out_channels if head is not None else None,
        ),
    )
    with torch.no_grad():
        for cell, conv in zip(cast(Sequence[ConvLSTMCell], model.cells), convs):
            cell.conv.weight.copy_(reorder_gates(conv.weight, gate_order))
            if cell.conv.bias is None:  # no cell has a bias
                continue
            if conv.bias is None:  # this cell has none where another has one: equal to a zero bias
                cell.conv.bias.zero_()
            else:
                cell.conv.bias.copy_(reorder_gates(conv.bias, gate_order))
    if head is not None and model.head is not None:
        _load_head(model.head, head)
    return model.eval()


def _check_head(head: nn.Module, cls: type, attr: str, width: int) -> None:
    if not isinstance(head, cls) or getattr(head, attr) != width:
        got = f"{type(head).__name__}({attr}={getattr(head, attr, '?')})"
        raise ConfigError(f"head: expected {cls.__name__} with {attr}={width} (the layer's output width), got {got}")
    if isinstance(head, nn.Conv2d) and tuple(head.kernel_size) != (1, 1):
        raise ConfigError(f"head: expected a 1x1 Conv2d, got kernel {tuple(head.kernel_size)}")


def _load_head(target: nn.Linear | nn.Conv2d, head: nn.Linear | nn.Conv2d) -> None:
    with torch.no_grad():
        target.weight.copy_(head.weight)
        if target.bias is None:  # the zoo's heads always have a bias
            return
        if head.bias is not None:
            target.bias.copy_(head.bias)
        else:
            target.bias.zero_()
