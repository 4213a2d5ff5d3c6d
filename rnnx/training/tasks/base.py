"""The small interface every training task implements, and the data it hands the loop.

A task produces three :class:`Split` s of *streams*: ``x`` holds ``S`` independent
sequences of ``T`` steps, ``y`` the target of every step. The loop trains with
truncated backpropagation through time over those streams (state carried, detached,
across consecutive windows) and evaluates by streaming each held-out stream from a
zero state, exactly as a deployed model sees it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnx.errors import ConfigError
from rnnx.training.config import TrainConfig


@dataclass
class Split:
    """One part of the data as streams."""

    x: Tensor  # (S, T, ...) inputs: float (S, T, F), int64 (S, T) tokens, or (S, T, C, H, W)
    y: Tensor  # (S, T, ...) per-step targets (int64 (S, T) for classification)
    warmup: int = 0  # first steps of every stream that are context only, never scored

    @property
    def steps(self) -> int:
        """Scored steps per stream."""
        return self.x.shape[1] - self.warmup


@dataclass
class TaskData:
    """Everything a task prepares for one run."""

    train: Split  # streams to train on
    val: Split  # streams for early stopping
    test: Split  # held-out streams for the reported metrics
    model: dict[str, Any]  # rnnx.models.build keyword options (kind included)
    window: int  # truncated-BPTT window length (steps per optimiser step)
    info: dict[str, Any] = field(default_factory=dict)  # task facts saved with the checkpoint
    normalization: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # in_mean, in_std, out_mean, out_std
    loss_scale: Tensor | None = None  # per-output scale dividing regression errors (None = 1)


class Task(ABC):
    """A built-in problem: data generator, default model, loss, metric, baseline, plot."""

    name: str = ""  # what --task takes
    classification: bool = False  # token targets scored by accuracy (else regression, scored by MAE)
    defaults: dict[str, Any] = {}  # TrainConfig fields this task fills in when left as None

    @abstractmethod
    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        """Generate (or read) the data and choose the model options.

        Args:
            cfg: the run's configuration, task defaults already applied.
            gen: the seeded generator to draw every random number from.

        Returns:
            The three splits, the model options and the task info.
        """

    def loss(self, y: Tensor, t: Tensor, data: TaskData) -> Tensor:
        """Training loss of outputs ``y`` against targets ``t`` (both (B, T, ...))."""
        if self.classification:
            return nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]), t.reshape(-1))
        err = y - t
        if data.loss_scale is not None:
            err = err / data.loss_scale.to(err.device)
        return err.pow(2).mean()

    def metrics(self, y: Tensor, split: Split) -> dict[str, float]:
        """Test metrics of streamed outputs ``y`` (scored steps only) and the baseline's.

        Regression: ``mae`` and ``baseline_mae`` in the data's raw units.
        Classification: ``accuracy`` and ``baseline_accuracy``.
        """
        t = split.y[:, split.warmup :]
        if self.classification:
            acc = (y.argmax(-1) == t).float().mean().item()
            return {"accuracy": acc, "baseline_accuracy": self.baseline(split)}
        return {"mae": (y - t).abs().mean().item(), "baseline_mae": self.baseline(split)}

    @abstractmethod
    def baseline(self, split: Split) -> float:
        """The trivial baseline's score on ``split`` (MAE, or accuracy for classification)."""

    def extra_metrics(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Task-specific numbers added to metrics.json (e.g. closed-loop error)."""
        return {}

    @abstractmethod
    def plot(self, model: nn.Module, data: TaskData, path: str) -> None:
        """Write predictions against truth on the test split to ``path`` (PNG)."""


def model_options(cfg: TrainConfig, **fixed: Any) -> dict[str, Any]:
    """rnnx.models.build options from the run config plus the task's fixed ones.

    Args:
        cfg: the run configuration (model kind and sizes already defaulted).
        **fixed: options the data dictates (input_size, output_size, vocab_size, ...).

    Returns:
        Keyword options for ``rnnx.models.build``, ``kind`` included.
    """
    opts: dict[str, Any] = {"kind": cfg.model, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers}
    if cfg.dropout is not None:
        opts["dropout"] = cfg.dropout
    if cfg.proj_size:
        opts["proj_size"] = cfg.proj_size
    opts.update(fixed)
    return opts


@torch.no_grad()
def stream(model: nn.Module, split: Split, device: str = "cpu") -> Tensor:
    """Stream every stream of ``split`` from a zero state; return outputs of the scored steps.

    One forward over the whole stream equals stepping it one step at a time with the
    state carried (that equivalence is the model contract), so this is the deployed
    behaviour.

    Returns:
        Outputs ``(S, T - warmup, ...)`` on the CPU.
    """
    was_training = model.training
    model.eval()
    state = to_device(init_state(model, split.x.shape[0]), device)
    y, _ = model(split.x.to(device), state)
    model.train(was_training)
    return y[:, split.warmup :].cpu()


def init_state(model: nn.Module, batch_size: int) -> list[Tensor]:
    """``model.init_state(batch_size)``: the zero state of a model following the rnnx contract.

    Raises:
        ConfigError: ``model`` has no ``init_state``.
    """
    make = getattr(model, "init_state", None)
    if not callable(make):
        raise ConfigError(f"model: expected an rnnx model with init_state(batch_size), got {type(model).__name__}")
    return list(make(batch_size))


def to_device(state: list[Tensor], device: str) -> list[Tensor]:
    return [s.to(device) for s in state]
