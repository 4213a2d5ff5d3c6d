"""Fixtures every test folder shares: the tiny models' exports, made once per run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnx.exporter import ExportResult
from tests.exports import ExportCache

torch.set_num_threads(1)  # tiny models: threads only add contention under `pytest -n 2`


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportCache]:
    """The run's exports: in a folder both pytest-xdist workers share (each export made once);
    at the end, each export this worker used is checked unchanged."""
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...: each has its own basetemp in the run's
    cache = ExportCache((base.parent if worker else base) / "rnnx-exports")
    yield cache
    cache.verify()


@pytest.fixture(scope="session")
def exported(export_cache: ExportCache) -> Callable[..., tuple[nn.Module, ExportResult]]:
    """``exported(name, "onnx" | "torchscript", strategy="auto") -> (model, ExportResult)``:
    a ``tests.zoo.make_model`` model, exported once per run."""
    return export_cache.get


@pytest.fixture(scope="session")
def onnx_file(export_cache: ExportCache) -> Callable[[str], tuple[Path, nn.Module]]:
    """``onnx_file(name) -> (the exported .onnx path, the eager model)``, exported once per run."""

    def get(name: str) -> tuple[Path, nn.Module]:
        model, result = export_cache.get(name)
        return result.path, model

    return get
