"""layer-scan strategy: forward and reverse Scans per layer for bidirectional stacks."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from rnnx.errors import ExportError
from rnnx.exporter import export_onnx
from tests.zoo import make_model


@pytest.mark.parametrize("name", ["gru-2l-nobias-bi", "lstm-2l-proj-bi"])
def test_bidirectional_stacks_match_eager_at_other_sizes(tmp_path, name: str) -> None:
    model = make_model(name)
    result = export_onnx(model, tmp_path / "m.onnx", strategy="layer-scan")
    x = model.example_input(2, 11)
    state = [torch.randn(s.shape) for s in model.init_state(2)]
    with torch.no_grad():
        y, new = model(x, state)
    feeds = {"x": x.numpy(), **{s.input: t.numpy() for s, t in zip(result.spec.state, state)}}
    got = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, feeds)
    for want, have in zip([y, *new], got):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-5)


def test_a_model_without_torch_rnn_layers_is_refused(tmp_path) -> None:
    class Doubler(nn.Module):
        def init_state(self, batch_size: int) -> list[torch.Tensor]:
            return [torch.zeros(batch_size, 3)]

        def forward(self, x, state):
            return 2 * x, [state[0] + x.sum(1)]

    with pytest.raises(ExportError, match=r"layer-scan: no nn.RNN/LSTM/GRU layers to scan"):
        export_onnx(Doubler(), tmp_path / "m.onnx", strategy="layer-scan", example_input=torch.randn(2, 5, 3))
