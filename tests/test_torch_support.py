"""torch_support: the declared torch versions and the import-time check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rnnx.errors import UnsupportedVersionError
from rnnx.torch_support import MIN_TORCH, TESTED_TORCH, check_torch_version, parse_version


@pytest.mark.parametrize(
    "text,want", [("2.13.0", (2, 13, 0)), ("2.13.0+cpu", (2, 13, 0)), ("2.6.0a0+git1234", (2, 6, 0)), ("3", (3,))]
)
def test_parse_version(text: str, want: tuple[int, ...]) -> None:
    assert parse_version(text) == want


def test_the_installed_torch_passes() -> None:
    check_torch_version()
    check_torch_version(torch.__version__)


@pytest.mark.parametrize("old", ["2.4.1", "2.3.0+cu121", "1.13.1"])
def test_an_old_torch_is_named_with_the_required_version(old: str) -> None:
    with pytest.raises(
        UnsupportedVersionError,
        match=rf"need torch >= 2\.5 \(tested with {TESTED_TORCH}\), "
        rf"got {re.escape(old)}",
    ):
        check_torch_version(old)


def test_garbage_version_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"expected a version like '2.13.0', got 'dev'"):
        check_torch_version("dev")


def test_pyproject_declares_the_same_minimum() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.findall(r'"torch>=([\d.]+)"', text) == [".".join(map(str, MIN_TORCH))]
