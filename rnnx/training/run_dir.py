"""The run directory: everything ``rnnx train`` leaves behind.

Layout::

    RUN_DIR/
      model.safetensors   checkpoint (config + task info in its metadata); `rnnx export RUN_DIR` takes it
      config.json         the resolved training config and the model config
      metrics.json        task, val_loss, test metrics (streamed) and the baseline's, interrupted
      loss.png            train and validation loss per epoch
      predictions.png     predictions against truth on the test split
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from rnnx.atomic import write_text_atomic
from rnnx.errors import ConfigError

CHECKPOINT = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
LOSS_PLOT = "loss.png"
PREDICTIONS_PLOT = "predictions.png"


def prepare(out: str | Path) -> Path:
    """Create the run directory (parents included) and return it.

    Raises:
        ConfigError: ``out`` exists and is a file.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: expected a directory, got the existing file {str(path)!r}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_checkpoint(model: nn.Module, run_dir: Path, extra: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` through ``rnnx.models.save`` with the task info as ``extra``."""
    from rnnx.models import save

    path = run_dir / CHECKPOINT
    save(model, path, extra=extra)
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (non-finite floats become null)."""
    write_text_atomic(path, json.dumps(_finite(data), indent=2, sort_keys=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
