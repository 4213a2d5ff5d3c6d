"""chars: hello -> ohlol pairs, --text, and the text length check."""

from __future__ import annotations

import pytest

from rnnx.errors import ConfigError
from rnnx.training import TrainConfig, train
from rnnx.training.tasks.chars import pairs


def test_default_pairs_are_the_tutorial():
    assert pairs(None) == ("hello", "ohlol")


def test_text_is_next_character_prediction():
    assert pairs("abcd") == ("abcd", "bcda")


def test_text_trains_to_accuracy_one(tmp_path):
    result = train(TrainConfig(task="chars", text="banana", out=str(tmp_path), progress=False, epochs=150))
    assert result.metrics["accuracy"] == 1.0
    assert result.data.info["vocab"] == "abn"


@pytest.mark.parametrize("text", ["x", "y" * 201], ids=["too-short", "too-long"])
def test_text_length_checked(text, tmp_path):
    with pytest.raises(ConfigError, match=r"--text: expected 2 to 200 characters, got \d+"):
        train(TrainConfig(task="chars", text=text, out=str(tmp_path), progress=False))


def test_validation_is_not_the_test_split():
    """The chars task used to validate (early stopping, best epoch) on its test split."""
    import torch

    from rnnx.training.runner import resolve
    from rnnx.training.tasks import get_task

    task = get_task("chars")
    cfg = resolve(TrainConfig(task="chars", out="unused", progress=False), task)
    data = task.prepare(cfg, torch.Generator().manual_seed(0))
    assert data.val is not data.test
    assert not torch.equal(data.val.x[0, :10], data.test.x[0, :10])
