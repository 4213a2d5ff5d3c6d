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
            out, state = model(x[:, t : t + 1], state)
            steps.append(out)
    assert torch.allclose(y, torch.cat(steps, 1)[:, 4:], atol=1e-6)


def _sine(tmp_path, **options):
    """The sine task at a small size, resolved like ``rnnx train`` does, and a fresh model."""
    from rnnx.training import TrainConfig
    from rnnx.training.runner import resolve
    from rnnx.training.tasks import get_task

    task = get_task("sine")
    cfg = resolve(TrainConfig(task="sine", out=str(tmp_path), progress=False, plots=False, **options), task)
    gen = torch.Generator().manual_seed(0)
    data = task.prepare(cfg, gen)
    torch.manual_seed(0)
    return task, data, cfg, gen, build(**data.model)


def test_state_is_carried_across_consecutive_windows(tmp_path):
    """README: "truncated backpropagation through time with the state carried across
    consecutive windows". Mutation caught: ``state = model.init_state(...)`` at the start of
    every window in ``_train_epoch`` (the state reset between windows)."""
    from rnnx.training.loop import fit

    task, data, cfg, gen, model = _sine(tmp_path, epochs=1, hidden_size=4, size=0.01)
    seen: list[bool] = []  # per training call: did the window start from a zero state?
    forward = model.forward

    def recording_forward(x, state):
        if model.training:
            seen.append(all(bool((s == 0).all()) for s in state))
        return forward(x, state)

    model.forward = recording_forward
    fit(model, task, data, cfg, gen)
    batches = len(list(_batches(data.train, cfg.batch_size, data.window, torch.Generator().manual_seed(0))))
    assert len(seen) > batches  # several windows per batch
    assert sum(seen) == batches  # only each batch's first window starts from zeros


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    """Mutation caught: the ``if stale >= cfg.patience: break`` removed (early stopping off).
    With lr 0 the validation loss never improves after epoch 1, so training stops at 1 + patience."""
    from rnnx.training.loop import fit

    task, data, cfg, gen, model = _sine(tmp_path, epochs=20, patience=2, lr=1e-12, hidden_size=4, size=0.01)
    result = fit(model, task, data, cfg, gen)
    assert [row["epoch"] for row in result.history] == [1, 2, 3] and result.best_epoch == 1
