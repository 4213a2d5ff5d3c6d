"""TrainConfig validation and task lookup errors."""

from __future__ import annotations

import pytest

from rnnx.errors import ConfigError
from rnnx.training import TrainConfig, get_task, train


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of --task NAME or --csv FILE, got neither"),
        ({"task": "sine", "csv": "a.csv", "target": "x"}, "got both"),
        ({"csv": "a.csv"}, "needs --target"),
        ({"task": "sine", "device": "tpu"}, r"--device: expected one of cpu, cuda, got 'tpu'"),
        ({"task": "sine", "epochs": 0}, r"--epochs: expected an int >= 1, got 0"),
        ({"task": "sine", "lr": -1.0}, r"--lr: expected a number > 0, got -1.0"),
        ({"task": "sine", "window": 0}, r"--window: expected an int >= 1, got 0"),
        ({"task": "sine", "lr": "0.1"}, r"--lr: expected a number > 0, got '0.1'"),
        ({"task": "sine", "size": None}, r"size: expected a number > 0, got None"),
    ],
    ids=["neither", "both", "csv-no-target", "device", "epochs", "lr", "window", "lr-str", "size-none"],
)
def test_invalid_options(kwargs, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(out=str(tmp_path), **kwargs).validate()


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"--task: expected one of sine, chars, forecast, blobs, got 'nope'"):
        get_task("nope")


def test_bad_model_option_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="proj_size: only valid for lstm"):
        train(TrainConfig(task="sine", out=str(tmp_path), model="gru", proj_size=2, epochs=1, progress=False))


def test_cuda_without_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="--device: cuda requested"):
        train(TrainConfig(task="sine", out=str(tmp_path), device="cuda", progress=False))


def test_fit_on_an_unresolved_config_names_the_option(tmp_path):
    """fit() reads epochs/lr/patience that resolve() fills in; None is a ConfigError, not a TypeError."""
    import dataclasses

    import torch

    from rnnx.models import build
    from rnnx.training.loop import fit
    from rnnx.training.runner import resolve

    task = get_task("sine")
    cfg = resolve(TrainConfig(task="sine", out=str(tmp_path), epochs=1, progress=False, size=0.1), task)
    data = task.prepare(cfg, torch.Generator().manual_seed(0))
    model = build(**data.model)
    with pytest.raises(ConfigError, match="--lr: expected a value"):
        fit(model, task, data, dataclasses.replace(cfg, lr=None), torch.Generator())
