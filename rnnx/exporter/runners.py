"""Run an exported file (ONNX or TorchScript) with the contract's ``(x, state) -> (y, state)`` signature."""

from __future__ import annotations

import os

import numpy as np
import torch

from rnnx.errors import ModelFileError
from rnnx.onnx_tools.runners import Runner, onnx_runner, session_runner
from rnnx.onnx_tools.spec_io import file_format, read_spec
from rnnx.spec import ModelSpec


def torchscript_runner(path: str) -> Runner:
    """A ``torch.jit.load``-ed module wrapped as a runner."""

    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as e:  # torch raises RuntimeError and friends for corrupt archives
        raise ModelFileError(f"{path}: torch.jit.load failed ({str(e).splitlines()[0]})") from None
    return module_runner(module)


def module_runner(module: torch.nn.Module) -> Runner:
    """A contract module (eager, scripted or traced) wrapped as a numpy runner."""

    def run(x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        with torch.no_grad(), torch.jit.optimized_execution(False):  # no re-profiling per shape
            y, new = module(torch.from_numpy(x), [torch.from_numpy(s) for s in state])
        return y.numpy(), [s.numpy() for s in new]

    return run


def open_runner(path: str | os.PathLike, spec: ModelSpec | None = None) -> tuple[Runner, ModelSpec]:
    """The runner and the spec of an exported file, by its format (``spec``: the file's, when
    the caller has read it already)."""
    spec = read_spec(path) if spec is None else spec
    p = os.fspath(path)
    return (torchscript_runner(p) if file_format(p) == "torchscript" else session_runner(p, spec)), spec


__all__ = ["Runner", "module_runner", "onnx_runner", "open_runner", "session_runner", "torchscript_runner"]
