"""Training: built-in tasks and CSV series, TBPTT with carried state, run directories.

Example:
    >>> from rnnx.training import TrainConfig, train
    >>> result = train(TrainConfig(task="chars", out="runs/chars", epochs=2, progress=False, plots=False))
    >>> result.metrics["task"], sorted(p.name for p in result.run_dir.iterdir())
    ('chars', ['config.json', 'metrics.json', 'model.safetensors'])
"""

from rnnx.training.config import TrainConfig
from rnnx.training.runner import TrainResult, train
from rnnx.training.tasks import TASKS, get_task

__all__ = ["TrainConfig", "TrainResult", "train", "TASKS", "get_task"]
