"""`decompose(module)`: swap torch's fused RNN/LSTM/GRU for gate-equation layers.

A trace of the result at T=1 contains only elementary ops, which is how models the
ONNX exporters refuse (LSTM with ``proj_size``) still export.

Example:
    >>> net = torch.nn.Sequential(torch.nn.LSTM(5, 8, proj_size=4))
    >>> type(decompose(net)[0]).__name__
    'LSTMLayers'
"""

from __future__ import annotations

import copy

import torch  # noqa: F401  (doctest namespace)
from torch import nn

from rnnx.models.layers import GRULayers, LSTMLayers, RNNLayers

_REPLACEMENTS = ((nn.LSTM, LSTMLayers), (nn.GRU, GRULayers), (nn.RNN, RNNLayers))


def _replacement(module: nn.Module) -> nn.Module | None:
    for torch_cls, ours in _REPLACEMENTS:
        if isinstance(module, torch_cls):
            return ours.from_torch(module)
    return None


def decompose(module: nn.Module) -> nn.Module:
    """Deep copy of ``module`` with every nn.RNN/nn.LSTM/nn.GRU replaced by rnnx layers.

    Args:
        module: any ``nn.Module`` (left untouched).

    Returns:
        The copy: same weights, same call signatures and results, same train/eval mode.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    out = copy.deepcopy(module)
    root = _replacement(out)
    if root is not None:
        return root
    for _, child in list(out.named_modules()):
        for child_name, grandchild in list(child.named_children()):
            new = _replacement(grandchild)
            if new is not None:
                setattr(child, child_name, new)
    return out
