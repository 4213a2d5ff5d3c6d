"""ExecuTorch ``.pte`` step programs behind the backend seam (see :mod:`rnnx.runtime.program_backend`).

ExecuTorch (``pip install "rnnx[executorch]"``) is imported only when a ``.pte`` file is
opened (through ``importlib``: the runtime's import contract forbids a static import of
torch, which ExecuTorch's Python runtime brings). The program's ``forward`` is one time
step with explicit state, ``(x_t, *state) -> (y_t, *new_state)``; the contract is carried
inside the program as the constant method ``rnnx_spec`` (the spec's JSON as uint8 bytes).
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

SPEC_METHOD = "rnnx_spec"  # constant method holding the spec's JSON bytes (uint8)
_runtime: Any = None  # executorch.runtime.Runtime, created once (its import takes seconds)


def _executorch() -> tuple[Any, Any]:
    """(``torch``, ``executorch.runtime.Runtime.get()``), imported on first use."""
    global _runtime
    try:
        torch = importlib.import_module("torch")
        if _runtime is None:
            _runtime = importlib.import_module("executorch.runtime").Runtime.get()
    except ImportError:
        raise ModelFileError(
            'a .pte program needs ExecuTorch, which is not installed: pip install "rnnx[executorch]"'
        ) from None
    return torch, _runtime


def _load(path: Path) -> Any:
    require_file(path, "an ExecuTorch .pte")
    _, runtime = _executorch()
    try:
        return runtime.load_program(path)
    except Exception as e:  # ExecuTorch raises RuntimeError/ValueError for a bad program
        raise ModelFileError(
            f"model {path}: not a loadable ExecuTorch program ({' '.join(str(e).split())[:200]})"
        ) from None


def _spec_text(program: Any, path: Path) -> str:
    if SPEC_METHOD not in program.method_names:
        raise ModelFileError(
            f"model {path}: no {SPEC_METHOD!r} method holding its {METADATA_KEY} (not exported by rnnx)"
        )
    (data,) = program.load_method(SPEC_METHOD).execute([])
    return bytes(data.numpy().astype(np.uint8)).decode("utf-8")


def pte_spec_text(path: Path) -> str:
    """The ``rnnx.spec`` JSON a ``.pte`` program carries.

    Raises:
        ModelFileError: ExecuTorch is missing, the program does not load, or it has no spec.
    """
    return _spec_text(_load(path), path)


def open_pte(path: Path) -> StepProgramBackend:
    """Load ``path`` in ExecuTorch's runtime and run its ``forward`` (one step) on the CPU.

    Raises:
        ModelFileError: as :func:`pte_spec_text`, or no ``forward`` method.
    """
    torch, _ = _executorch()
    program = _load(path)
    spec = ModelSpec.from_json(_spec_text(program, path))
    if "forward" not in program.method_names:
        raise ModelFileError(f"model {path}: no 'forward' method (has {sorted(program.method_names)})")
    method = program.load_method("forward")

    def step(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = method.execute([torch.from_numpy(np.require(a, requirements=["C", "W"])) for a in arrays])
        return [o.numpy().copy() for o in out]  # ExecuTorch reuses its output memory

    bound = spec.extra.get("max_batch") if isinstance(spec.extra, dict) else None
    return StepProgramBackend(path, spec, step, "ExecuTorch", bound if isinstance(bound, int) else None)
