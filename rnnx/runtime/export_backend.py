"""torch.export ``.pt2`` step programs behind the backend seam (see :mod:`rnnx.runtime.program_backend`).

torch is imported here only when a ``.pt2`` file is opened (``importlib``: the runtime's
import contract forbids a static torch import, and a runtime-only install never reaches this).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnx.errors import ModelFileError
from rnnx.runtime.program_backend import StepProgramBackend, require_file
from rnnx.spec import METADATA_KEY, ModelSpec


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ModelFileError('a .pt2 program needs torch, which is not installed: pip install "rnnx[export]"') from None


def open_pt2(path: Path) -> StepProgramBackend:
    """Load ``path`` with ``torch.export.load`` and run its step program on the CPU.

    Raises:
        ModelFileError: torch is missing or cannot load the file, or it carries no ``rnnx.spec``.
    """
    require_file(path, "a torch.export .pt2")
    torch = _torch()
    extra = {METADATA_KEY: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as e:  # torch raises many types for a bad archive
        raise ModelFileError(
            f"model {path}: not a loadable torch.export program ({' '.join(str(e).split())[:200]})"
        ) from None
    if not extra[METADATA_KEY]:
        raise ModelFileError(f"model {path}: no {METADATA_KEY!r} in the program's extra files (not exported by rnnx)")
    spec = ModelSpec.from_json(extra[METADATA_KEY])
    module = program.module()

    def step(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(np.require(a, requirements="W")) for a in arrays))
        return [o.numpy() for o in out]

    return StepProgramBackend(path, spec, step, "torch.export")
