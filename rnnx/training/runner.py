"""``train(config)``: data -> model -> TBPTT training -> streamed test metrics -> run directory."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.spec import DataSpec
from rnnx.training import run_dir as rd
from rnnx.training.config import TrainConfig
from rnnx.training.loop import EpochHook, FitResult, fit, stream
from rnnx.training.tasks import Task, TaskData, get_task
from rnnx.training.tasks.series import SeriesTask

if TYPE_CHECKING:
    from rnnx.models._base import ZooModel


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: nn.Module  # the trained model (best weights, eval mode, on the CPU)
    metrics: dict[str, Any]  # the contents of metrics.json
    run_dir: Path  # where the run was written
    config: TrainConfig  # the resolved configuration (task defaults filled in)
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss
    data: TaskData  # the splits the model was trained and tested on


def train(config: TrainConfig, *, on_epoch: EpochHook | None = None) -> TrainResult:
    """Train a model on a built-in task or a CSV series and write the run directory.

    Args:
        config: the run options; ``None`` fields take the task's defaults.
        on_epoch: optional hook called after every epoch with its history row.

    Returns:
        The trained model, its metrics (test split, streamed) and the run directory.

    Raises:
        ConfigError: invalid options (unknown task, bad sizes, unusable CSV columns, ...).
        FileNotFoundError: the CSV file does not exist.

    Example:
        >>> from rnnx.training import TrainConfig, train
        >>> result = train(TrainConfig(task="sine", out="runs/sine", epochs=1, hidden_size=8,
        ...                            progress=False, plots=False))
        >>> sorted(k for k in result.metrics if "mae" in k)
        ['baseline_mae', 'closed_loop_mae', 'mae']
    """
    config.validate()
    task = _make_task(config)
    cfg = resolve(config, task)
    out = rd.prepare(cfg.out)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    try:
        return _train(task, cfg, out, on_epoch)
    finally:
        torch.set_num_threads(threads)


def resolve(config: TrainConfig, task: Task) -> TrainConfig:
    """A copy of ``config`` with every ``None`` option the task has a default for filled in."""
    filled = {k: v for k, v in task.defaults.items() if getattr(config, k) is None}
    cfg = dataclasses.replace(config, **filled)
    if cfg.model == "seq2seq" and not isinstance(task, SeriesTask):
        raise ConfigError(
            f"--model seq2seq: only for the series tasks (--task forecast, --csv), not for --task {task.name}"
        )
    if (cfg.cell is not None or cfg.attention) and cfg.model != "seq2seq":
        raise ConfigError(f"--cell/--attention: only with --model seq2seq, got --model {cfg.model}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda requested, but torch sees no CUDA device; use --device cpu")
    return cfg.validate()


def _make_task(config: TrainConfig) -> Task:
    if config.csv is not None:
        from rnnx.training.tasks.csv import CsvTask

        return CsvTask()
    return get_task(str(config.task))


def _train(task: Task, cfg: TrainConfig, out: Path, on_epoch: EpochHook | None) -> TrainResult:
    from rnnx.models import build

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = task.prepare(cfg, gen)
    model = build(**data.model)
    if data.normalization is not None:
        model.set_normalization(*data.normalization)
    model.to(cfg.device)
    start = time.perf_counter()
    fitted = fit(model, task, data, cfg, gen, on_epoch)
    seconds = time.perf_counter() - start
    model.cpu().eval()
    metrics = _metrics(task, model, data, cfg, fitted)
    metrics["wall_seconds"] = round(seconds, 2)  # the only non-deterministic entry
    _write(task, model, data, cfg, out, metrics, fitted)
    return TrainResult(model=model, metrics=metrics, run_dir=out, config=cfg, history=fitted.history, data=data)


def _metrics(task: Task, model: nn.Module, data: TaskData, cfg: TrainConfig, fitted: FitResult) -> dict[str, Any]:
    y = stream(model, data.test)
    metrics: dict[str, Any] = {"task": task.name, "model": model.kind, "val_loss": fitted.best_val_loss}
    metrics.update(task.metrics(y, data.test))
    metrics.update(task.extra_metrics(model, data))
    metrics.update(
        {
            "evaluation": "streamed: every test stream run from a zero state, state carried over all steps",
            "test_streams": int(data.test.x.shape[0]),
            "test_steps_per_stream": int(data.test.steps),
            "warmup_steps": int(data.test.warmup),
            "best_epoch": fitted.best_epoch,
            "epochs_run": len(fitted.history),
            "interrupted": fitted.interrupted,
            "seed": cfg.seed,
        }
    )
    return metrics


def data_contract(task: Task, data: TaskData, cfg: TrainConfig) -> DataSpec:
    """What the model's input and output mean, saved with the checkpoint and carried by
    ``rnnx export`` into the model file (``rnnx.spec`` field ``data``)."""
    info = data.info
    norm = None
    if data.normalization is not None:
        in_mean, in_std, out_mean, out_std = (t.tolist() for t in data.normalization)
        norm = {
            "inside_graph": True,
            "input_mean": in_mean,
            "input_std": in_std,
            "output_mean": out_mean,
            "output_std": out_std,
            "residual": bool(info.get("residual")),
        }
    target, horizon = info.get("target"), info.get("horizon")
    outputs = tuple(f"{target}+{k}" for k in range(1, horizon + 1)) if target and horizon else ()
    vocab = info.get("vocab")
    return DataSpec(
        task=task.name,
        features=tuple(info.get("features") or ()),
        target=target,
        horizon=horizon,
        outputs=outputs,
        missing=cfg.missing if cfg.csv else None,
        normalization=norm,
        vocab=vocab,
        window=data.window,
    )


def _write(
    task: Task, model: ZooModel, data: TaskData, cfg: TrainConfig, out: Path, metrics: dict[str, Any], fitted: FitResult
) -> None:
    extra = {"task": task.name, "window": data.window, **data.info, "data": data_contract(task, data, cfg).to_dict()}
    rd.save_checkpoint(model, out, extra)
    rd.write_json(out / rd.CONFIG, {"train": cfg.to_dict(), "model": model.config.to_dict(), "task": extra})
    rd.write_json(out / rd.METRICS, metrics)
    if cfg.plots:
        from rnnx.training import plots

        unit = (
            "cross-entropy (nats per token)"
            if task.classification
            else "MSE (squared, in target std units)"
            if data.loss_scale is not None
            else "MSE (squared data units)"
        )
        plots.loss_curves(fitted.history, str(out / rd.LOSS_PLOT), f"{task.name}: {model.kind}", ylabel=unit)
        task.plot(model, data, str(out / rd.PREDICTIONS_PLOT))
