"""Fixtures of the real-server tests: tiny rnnx exports, made once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rnnx.exporter import export_onnx
from tests.zoo import TINY


@pytest.fixture(scope="session")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``export_file(tiny_name) -> model.onnx`` (with its step graph when it has one), once each."""
    root = tmp_path_factory.mktemp("triton_exports")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            torch.set_num_threads(1)
            folder = root / name
            cache[name] = export_onnx(TINY[name](), folder / "model.onnx").path
        return cache[name]

    return get
