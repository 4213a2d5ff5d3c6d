"""An exported file's task metric against its float model's, on the run's own test split.

``rnnx check RUN_DIR model.int8.onnx`` uses it: the run directory's ``config.json``
regenerates the exact test split (same seed), both models stream every test stream from
a zero state, and the task's metric (MAE, or accuracy) of each is reported with their
difference, so a quantized file's cost is stated in the task's own units.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnx.errors import ConfigError
from rnnx.training import run_dir as rd
from rnnx.training.config import TrainConfig


@dataclass(frozen=True)
class TaskComparison:
    """The task metric of the float model and of the exported file on the test split."""

    task: str  # task name ("sine", ...)
    metric: str  # "mae" (regression) or "accuracy" (classification)
    float_model: float  # the eager checkpoint's metric
    exported: float  # the exported file's metric
    max_abs_output_diff: float  # max |exported - float| over every scored output

    @property
    def delta(self) -> float:
        """exported - float (positive MAE delta: the file is worse)."""
        return self.exported - self.float_model

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta}

    def line(self) -> str:
        return (
            f"task {self.task}: {self.metric} {self.exported:.6g} (exported) vs "
            f"{self.float_model:.6g} (float), delta {self.delta:+.3g}; "
            f"max |output diff| {self.max_abs_output_diff:.3g}"
        )


def _run_config(ckpt: str | os.PathLike) -> TrainConfig | None:
    path = Path(ckpt)
    config = (path if path.is_dir() else path.parent) / rd.CONFIG
    if not config.is_file():
        return None
    try:
        train = json.loads(config.read_text())["train"]
        return TrainConfig(**{**train, "progress": False, "plots": False})
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{config}: expected the config.json of `rnnx train`, got unreadable content ({e})") from None


def compare_on_task(ckpt: str | os.PathLike, exported_path: str | os.PathLike) -> TaskComparison | None:
    """Score the float checkpoint and the exported file on the run's test split.

    Args:
        ckpt: a run directory of ``rnnx train`` (or its ``model.safetensors``).
        exported_path: the exported ``.onnx``/``.ort`` file to score.

    Returns:
        The comparison, or None when ``ckpt`` is not from a training run (no task known).

    Raises:
        ConfigError: the run's config cannot be read or its data regenerated.
    """
    cfg = _run_config(ckpt)
    if cfg is None:
        return None
    from rnnx.exporter.runners import open_runner
    from rnnx.models import load
    from rnnx.training.runner import _make_task, resolve
    from rnnx.training.tasks.base import stream

    task = _make_task(cfg)
    cfg = resolve(cfg, task)
    data = task.prepare(cfg, torch.Generator().manual_seed(cfg.seed))
    split = data.test
    model = load(ckpt)
    y_float = stream(model, split)
    run, spec = open_runner(exported_path)
    state = [np.zeros(s.concrete_shape(split.x.shape[0]), s.dtype) for s in spec.state]
    out, _ = run(split.x.numpy().astype(spec.input.dtype), state)
    y_file = torch.from_numpy(np.asarray(out))[:, split.warmup :]
    name = "accuracy" if task.classification else "mae"
    return TaskComparison(
        task.name,
        name,
        float(task.metrics(y_float, split)[name]),
        float(task.metrics(y_file, split)[name]),
        float((y_file - y_float).abs().max()),
    )
