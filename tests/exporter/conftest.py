"""Shared fixtures for exporter tests: tiny models and a per-session export cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnx.exporter import ExportResult, export_onnx, export_torchscript
from tests.zoo import TINY, example_input, parity_matrix

torch.set_num_threads(1)  # tiny models: threads only add contention under `pytest -n 2`

MATRIX = dict(parity_matrix())


def make_model(name: str) -> nn.Module:
    """A tiny model by id: a ``TINY`` entry or a ``parity_matrix()`` entry."""
    if name in TINY:
        return TINY[name]()
    from rnnx.models import build

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build(**MATRIX[name]).eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[nn.Module, ExportResult]]:
    """``exported(name, "onnx" | "torchscript", strategy="auto") -> (model, ExportResult)``,
    each exported once (``strategy``: an ONNX export strategy)."""
    cache: dict[tuple[str, str, str], tuple[nn.Module, ExportResult]] = {}
    root = tmp_path_factory.mktemp("exported")

    def get(name: str, fmt: str, strategy: str = "auto") -> tuple[nn.Module, ExportResult]:
        key = (name, fmt, strategy)
        if key not in cache:
            model = make_model(name)
            path = Path(root) / f"{name}-{strategy}.{'onnx' if fmt == 'onnx' else 'pt'}"
            if fmt == "onnx":
                result = export_onnx(model, path, example_input=example_input(model), strategy=strategy)
            else:
                result = export_torchscript(model, path, example_input=example_input(model))
            cache[key] = (model, result)
        return cache[key]

    return get
