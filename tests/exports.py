"""The tiny models' exports, made once per test run and shared by the pytest-xdist workers.

``ExportCache.get(name, fmt, strategy)`` exports a :func:`tests.zoo.make_model` model the first
time any worker asks for it (a file lock per export: the other worker waits, then reads the
files), and returns the model (rebuilt in each worker: the factories are seeded) with its
:class:`~rnnx.exporter.ExportResult`. A worker that reads another's export gets the same files,
spec, strategy and attempts (each attempt's exception stays with the worker that exported).
Tests must not modify the files: copy them first.
"""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock
from torch import nn

from rnnx.exporter import Attempt, ExportResult, export_onnx, export_torchscript
from rnnx.spec import ModelSpec
from tests.zoo import example_input, make_model

RESULT = "result.json"  # written last: its presence means the export is complete


class ExportCache:
    """Exports under ``root`` (a folder every worker of the run shares), one folder per export."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models: dict[str, nn.Module] = {}
        self.results: dict[tuple[str, str, str], ExportResult] = {}

    def model(self, name: str) -> nn.Module:
        if name not in self.models:
            self.models[name] = make_model(name)
        return self.models[name]

    def get(self, name: str, fmt: str = "onnx", strategy: str = "auto") -> tuple[nn.Module, ExportResult]:
        """``(model, ExportResult)`` of ``name`` exported as ``fmt`` ("onnx" or "torchscript")."""
        key = (name, fmt, strategy)
        if key not in self.results:
            folder = self.root / f"{name}-{fmt}-{strategy}"
            folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(folder) + ".lock"):
                if (folder / RESULT).exists():
                    self.results[key] = _read(folder)
                else:
                    self.results[key] = self._export(name, fmt, strategy, folder)
        return self.model(name), self.results[key]

    def _export(self, name: str, fmt: str, strategy: str, folder: Path) -> ExportResult:
        model = self.model(name)
        if fmt == "onnx":
            result = export_onnx(model, folder / f"{name}.onnx", example_input=example_input(model), strategy=strategy)
        else:
            result = export_torchscript(model, folder / f"{name}.pt", example_input=example_input(model))
        record = {
            "path": result.path.name,
            "spec": result.spec.to_json(),
            "strategy": result.strategy,
            "step_graph": None if result.step_graph_path is None else result.step_graph_path.name,
            "attempts": [[a.strategy, a.ok, a.reason, a.seconds] for a in result.attempts],
        }
        (folder / RESULT).write_text(json.dumps(record))
        return result


def _read(folder: Path) -> ExportResult:
    record = json.loads((folder / RESULT).read_text())
    path = folder / record["path"]
    return ExportResult(
        path,
        ModelSpec.from_json(record["spec"]),
        record["strategy"],
        tuple(Attempt(*a) for a in record["attempts"]),
        None if record["step_graph"] is None else folder / record["step_graph"],
    )
