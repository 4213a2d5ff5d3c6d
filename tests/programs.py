"""The models the step-program formats (.pt2, .pte) must stream: LSTM, GRU, ConvLSTM and a wrapped
hand-written cell, plus an eager reference run at any batch size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rnnx
from rnnx.exporter import ExportResult
from tests.zoo import TINY

FEATURES, HIDDEN = 3, 5  # the hand cell's sizes


class HandLSTMCell(nn.Module):
    """A tutorial's hand-written cell: forward(x, h, c) -> (h, c), gates split with chunk."""

    def __init__(self, features: int = FEATURES, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.gates = nn.Linear(features + hidden, 4 * hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def hand_cell() -> nn.Module:
    torch.manual_seed(0)
    return rnnx.wrap(HandLSTMCell(), [("batch", HIDDEN), ("batch", HIDDEN)], step=True).eval()


STREAM_MODELS: dict[str, Callable[[], nn.Module]] = {
    "lstm-2l": TINY["lstm-2l"],
    "gru-2l": TINY["gru-2l"],
    "convlstm-k3": TINY["convlstm-k3"],
    "hand-cell": hand_cell,
}


def example(model: nn.Module, batch: int, steps: int) -> torch.Tensor:
    """A batch-first input for any of the models."""
    if isinstance(getattr(model, "module", None), HandLSTMCell):  # rnnx.wrap cannot read its input size
        return torch.randn(batch, steps, FEATURES)
    return model.example_input(batch, steps)


def eager_steps(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The eager model over ``x`` from the zero state (batch-first y)."""
    from rnnx.exporter.contract import init_state

    with torch.no_grad():
        y, _ = model(x, init_state(model, x.shape[0]))
    return y.numpy()


def export_each(
    export: Callable[..., ExportResult], root: Path, suffix: str
) -> dict[str, tuple[nn.Module, ExportResult]]:
    """``{name: (model, result)}``: every :data:`STREAM_MODELS` model exported by ``export`` (the
    example: batch 2, 5 steps) to ``root/<name>/model.<suffix>``."""
    out = {}
    for name, make in STREAM_MODELS.items():
        model = make()
        out[name] = (model, export(model, root / name / f"model.{suffix}", example_input=example(model, 2, 5)))
    return out
