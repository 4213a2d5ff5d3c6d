"""The training loop: truncated backpropagation through time with carried state.

Models are trained the way they are deployed: each batch row is a long stream, cut
into consecutive windows of ``window`` steps; the state a window ends with is detached
and fed to the next window, so the model learns to use (and to live with) state carried
over an unbounded stream. Validation streams each held-out stream whole from a zero
state. The best weights by validation loss are kept; Ctrl-C stops training and keeps
them too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnx.progress import Progress
from rnnx.training.config import TrainConfig, require
from rnnx.training.tasks.base import Split, Task, TaskData, init_state, stream, to_device

EpochHook = Callable[[dict[str, Any]], None]  # called after every epoch with its history row
GRAD_CLIP = 1.0  # max global gradient norm per optimiser step


@dataclass
class FitResult:
    """What :func:`fit` did."""

    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, train_loss, val_loss
    best_epoch: int = 0  # 1-based epoch of the kept weights (0: interrupted before the first epoch ended)
    best_val_loss: float = math.inf  # validation loss of the kept weights
    interrupted: bool = False  # True when Ctrl-C ended training early


def fit(
    model: nn.Module,
    task: Task,
    data: TaskData,
    cfg: TrainConfig,
    gen: torch.Generator,
    on_epoch: EpochHook | None = None,
) -> FitResult:
    """Train ``model`` in place with TBPTT and early stopping; leave the best weights loaded.

    Args:
        model: any model following the rnnx contract (``init_state``, ``forward(x, state)``).
        task: supplies the loss.
        data: the task's splits and window length.
        cfg: epochs, lr, batch_size, patience, device, progress are read.
        gen: seeded generator for batching order and window offsets.
        on_epoch: optional hook called with each epoch's history row.

    Returns:
        The loss history, the best epoch and whether Ctrl-C interrupted training.
    """
    epochs, lr, patience = require(cfg.epochs, "epochs"), require(cfg.lr, "lr"), require(cfg.patience, "patience")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * 0.05)
    result, best_state, stale = FitResult(), None, 0
    bar = Progress(epochs, f"train {task.name}", "epoch", enabled=cfg.progress)  # plain lines off a terminal
    try:
        for epoch in range(1, epochs + 1):
            train_loss = _train_epoch(model, task, data, cfg, gen, opt, bar)
            sched.step()
            val_loss = evaluate_loss(model, task, data, data.val, cfg.device)
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
            result.history.append(row)
            if val_loss < result.best_val_loss:
                result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{val_loss:.4g}", best=f"{result.best_val_loss:.4g}")
            if on_epoch is not None:
                on_epoch(row)
            if stale >= patience:
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:  # interrupted inside the first epoch: keep what we have, but score it
        result.best_val_loss = evaluate_loss(model, task, data, data.val, cfg.device)
    model.eval()
    return result


def _train_epoch(
    model: nn.Module,
    task: Task,
    data: TaskData,
    cfg: TrainConfig,
    gen: torch.Generator,
    opt: torch.optim.Optimizer,
    bar: Any,
) -> float:
    model.train()
    total, count = 0.0, 0
    for xb, yb in _batches(data.train, require(cfg.batch_size, "batch_size"), data.window, gen):
        state = to_device(init_state(model, xb.shape[0]), cfg.device)
        xb, yb = xb.to(cfg.device), yb.to(cfg.device)
        for start in range(0, xb.shape[1], data.window):
            y, state = model(xb[:, start : start + data.window], state)
            loss = task.loss(y, yb[:, start : start + data.window], data)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            state = [s.detach() for s in state]  # truncate backprop, keep the state itself
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4g}")
    return total / max(count, 1)


def _batches(split: Split, batch_size: int, window: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x, y) batches of streams, folding few long streams into more shorter ones."""
    x, y = split.x, split.y
    streams, steps = x.shape[0], x.shape[1]
    pieces = max(1, min(math.ceil(batch_size / streams), steps // window))
    if pieces > 1:
        length = steps // pieces
        offset = int(torch.randint(0, steps - pieces * length + 1, (1,), generator=gen))
        x = _fold(x[:, offset : offset + pieces * length], pieces)
        y = _fold(y[:, offset : offset + pieces * length], pieces)
    order = torch.randperm(x.shape[0], generator=gen)
    for i in range(0, x.shape[0], batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


def _fold(t: Tensor, pieces: int) -> Tensor:
    """(S, P*L, ...) -> (S*P, L, ...): cut every stream into P consecutive pieces."""
    s, steps = t.shape[0], t.shape[1]
    return t.reshape(s, pieces, steps // pieces, *t.shape[2:]).reshape(s * pieces, steps // pieces, *t.shape[2:])


@torch.no_grad()
def evaluate_loss(model: nn.Module, task: Task, data: TaskData, split: Split, device: str = "cpu") -> float:
    """The task loss of ``split`` streamed whole (scored steps only)."""
    y = stream(model, split, device)
    return float(task.loss(y, split.y[:, split.warmup :], data))
