"""The torch versions rnnx supports, checked when ``rnnx.models`` or ``rnnx.exporter`` loads.

``torch.onnx.export(dynamo=...)`` (the scan strategy's one-step exporter and the legacy
path's explicit ``dynamo=False``) exists from torch 2.5; rnnx is tested with 2.13.0.

Example:
    >>> parse_version("2.13.0+cpu")
    (2, 13, 0)
    >>> check_torch_version("2.13.0")
"""

from __future__ import annotations

import re

from rnnx.errors import UnsupportedVersionError

MIN_TORCH = (2, 5)  # first torch with torch.onnx.export(dynamo=...)
TESTED_TORCH = "2.13.0"  # the version the test suite runs on (pinned in the Makefile)


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: ``"2.6.0a0+git1"`` -> ``(2, 6, 0)``."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    if match is None:
        raise UnsupportedVersionError(f"torch.__version__: expected a version like '2.13.0', got {text!r}")
    return tuple(int(p) for p in match.group(1).split("."))


def check_torch_version(version: str | None = None) -> None:
    """Raise unless ``version`` (default: the installed torch's) is supported.

    Raises:
        UnsupportedVersionError: torch is missing or older than :data:`MIN_TORCH`.
    """
    wanted = ".".join(map(str, MIN_TORCH))
    if version is None:
        try:
            import torch
        except ImportError as e:
            raise UnsupportedVersionError(
                f"torch: rnnx.models and rnnx.exporter need torch >= {wanted} (tested with "
                f"{TESTED_TORCH}), got none installed; pip install 'rnnx[export]'"
            ) from e
        version = str(torch.__version__)
    if parse_version(version) < MIN_TORCH:
        raise UnsupportedVersionError(
            f"torch: rnnx.models and rnnx.exporter need torch >= {wanted} (tested with "
            f"{TESTED_TORCH}), got {version}; pip install 'torch>={wanted}'"
        )
