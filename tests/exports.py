"""The tiny models' exports, made once per test run and shared by the pytest-xdist workers.

``ExportCache.get(name, fmt, strategy)`` exports a :func:`tests.zoo.make_model` model the first
time any worker asks for it (a file lock per export: the other worker waits, then reads the
files), and returns the model (rebuilt in each worker: the factories are seeded) with its
:class:`~rnnx.exporter.ExportResult`. A worker that reads another's export gets the same files,
spec, strategy and attempts (each attempt's exception stays with the worker that exported).
Tests must not modify the files: copy them first. Each export's folder is checked against the
hashes recorded with it when another worker reads it and when the run ends (:meth:`ExportCache.verify`),
so a test that writes into a shared export fails the run instead of corrupting the tests after it.
"""

from __future__ import annotations

import hashlib
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
                    _check(folder)
                else:
                    self.results[key] = self._export(name, fmt, strategy, folder)
        return self.model(name), self.results[key]

    def verify(self) -> None:
        """Fail when a test changed, added or removed a file in an export this worker used."""
        for name, fmt, strategy in self.results:
            _check(self.root / f"{name}-{fmt}-{strategy}")

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
            "files": _hashes(folder),
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


def _hashes(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of an export's files (result.json aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.name != RESULT and p.is_file()
    }


def _check(folder: Path) -> None:
    want = json.loads((folder / RESULT).read_text())["files"]
    got = _hashes(folder)
    changed = sorted(n for n in want.keys() & got.keys() if want[n] != got[n])
    added, removed = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
    assert not (changed or added or removed), (
        f"a test wrote into the shared export {folder.name}: changed {changed}, added {added}, removed {removed} "
        "(copy the files into tmp_path before writing beside them)"
    )
