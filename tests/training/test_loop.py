"""The TBPTT loop's batching and the streamed evaluation."""

from __future__ import annotations

import torch

from rnnx.models import build
from rnnx.training.loop import _batches, _fold, stream
from rnnx.training.tasks import Split


def test_fold_cuts_streams_into_consecutive_pieces():
    t = torch.arange(2 * 12).reshape(2, 12)
    folded = _fold(t, 3)
    assert folded.shape == (6, 4)
    assert folded[1].tolist() == [4, 5, 6, 7] and folded[3].tolist() == [12, 13, 14, 15]


def test_batches_fold_a_single_stream_and_keep_time_order():
    x = torch.arange(100.0).reshape(1, 100, 1)
    split = Split(x=x, y=x + 1)
    batches = list(_batches(split, batch_size=4, window=10, gen=torch.Generator().manual_seed(0)))
    xb, yb = batches[0]
    assert xb.shape == (4, 25, 1)
    assert torch.equal(yb, xb + 1)
    assert bool((xb[:, 1:] - xb[:, :-1] == 1).all())  # each piece is a consecutive slice


def test_stream_equals_stepping_one_step_at_a_time():
    torch.manual_seed(0)
    model = build("gru", input_size=3, hidden_size=8, output_size=2).eval()
    x = torch.randn(2, 9, 3)
    y = stream(model, Split(x=x, y=torch.zeros(2, 9, 2), warmup=4))
    state, steps = model.init_state(2), []
    with torch.no_grad():
        for t in range(9):
            out, state = model(x[:, t:t + 1], state)
            steps.append(out)
    assert torch.allclose(y, torch.cat(steps, 1)[:, 4:], atol=1e-6)
