"""ONNX files rnnx did not write, made the way users make them, for the "foreign" tests.

- ``PlainRNN``: nn.LSTM/GRU/RNN + a Linear head, ``forward(x) -> y`` with no h0: the
  state lives inside the exported graph (what ``rnnx stateful`` exposes).
- The VAD-style model with its state already in the graph I/O is
  ``tests.runtime.conftest.ForeignModel`` (fixture ``foreign``).
- ``export_plain``: plain ``torch.onnx.export`` (the default dynamo exporter, or the
  legacy TorchScript-based one), as a user would call it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

FEATURES, HIDDEN, OUT = 3, 4, 2  # tiny sizes


class PlainRNN(nn.Module):
    """``cell`` ("lstm", "gru", "rnn") layer(s) + Linear head; no h0 anywhere."""

    def __init__(
        self, cell: str = "lstm", layers: int = 1, batch_first: bool = True, bidirectional: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn(FEATURES, HIDDEN, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), OUT)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.rnn(x)
        return self.head(y)


def export_plain(module: nn.Module, args: tuple, path: Path, *, dynamo: bool = True, **kwargs) -> Path:
    """``torch.onnx.export(module, args, path, dynamo=dynamo, **kwargs)``, its chatter silenced."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=dynamo, **kwargs)
    return Path(path)


class LstmWithState(nn.Module):
    """nn.LSTM taking and returning its state, the classic tutorial way: (x, h0, c0) -> (y, hn, cn)."""

    def __init__(self, layers: int = 1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = nn.LSTM(FEATURES, HIDDEN, num_layers=layers, batch_first=True)
        self.head = nn.Linear(HIDDEN, OUT)
        self.eval()

    def forward(self, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, (hn, cn) = self.rnn(x, (h0, c0))
        return self.head(y), hn, cn


def export_lstm_with_state(path: Path, layers: int = 1) -> Path:
    """LstmWithState with inputs (frames, h0, c0), outputs (y, hn, cn), dynamic batch and time."""
    args = (torch.zeros(2, 5, FEATURES), torch.zeros(layers, 2, HIDDEN), torch.zeros(layers, 2, HIDDEN))
    state_axes = {1: "batch"}
    return export_plain(
        LstmWithState(layers),
        args,
        path,
        dynamo=False,
        input_names=["frames", "h0", "c0"],
        output_names=["y", "hn", "cn"],
        dynamic_axes={
            "frames": {0: "batch", 1: "time"},
            "y": {0: "batch", 1: "time"},
            "h0": state_axes,
            "c0": state_axes,
            "hn": state_axes,
            "cn": state_axes,
        },
    )
