"""Fixtures for the runtime tests: exported tiny models and their eager references.

rnnx models come from the shared ``onnx_file`` fixture (``tests/conftest.py``); the
foreign model (no ``rnnx.spec``, Silero-VAD style left context and an ``sr`` constant)
is exported by hand with ``torch.onnx.export``. ``write_step_graph`` writes a model with a
step graph beside it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.zoo import example_input

FOREIGN_N, FOREIGN_K, FOREIGN_H = 8, 4, 16  # samples per call, left context, state width
STEP = "m.step.onnx"  # file name of the step graphs write_step_graph writes


def reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The eager model's full-sequence output from zero state."""
    xt = torch.from_numpy(np.asarray(x))
    with torch.no_grad():
        y, _ = model(xt, model.init_state(xt.shape[0]))
    return y.numpy()


def sequence(model: nn.Module, batch: int, steps: int, seed: int = 0) -> np.ndarray:
    """Deterministic random input of the right shape and dtype for a zoo model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return example_input(model, batch, steps).numpy()


class ForeignModel(nn.Module):
    """A streaming audio-style model rnnx did not export: (input, state, sr) -> (output, stateN).

    It sees ``FOREIGN_K`` samples of left context before the ``FOREIGN_N`` new ones.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.proj = nn.Linear(FOREIGN_K + FOREIGN_N, FOREIGN_H)
        self.cell = nn.GRUCell(FOREIGN_H, FOREIGN_H)
        self.head = nn.Linear(FOREIGN_H, 1)

    def forward(self, input: torch.Tensor, state: torch.Tensor, sr: torch.Tensor):
        z = torch.tanh(self.proj(input)) * (sr.to(torch.float32) / 16000.0)  # (B, H)
        h0 = self.cell(z, state[0])
        h1 = self.cell(h0, state[1])
        return torch.sigmoid(self.head(h1)), torch.stack([h0, h1])  # (B, 1), (2, B, H)


class ForeignReference:
    """The python wrapper the foreign model ships with: keeps context and state itself."""

    def __init__(self, model: ForeignModel, batch: int, sr: int = 16000) -> None:
        self.model, self.sr = model, torch.tensor(sr)
        self.state = torch.zeros(2, batch, FOREIGN_H)
        self.ctx = torch.zeros(batch, FOREIGN_K)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        full = torch.cat([self.ctx, torch.from_numpy(x)], dim=1)  # (B, K + N)
        with torch.no_grad():
            y, self.state = self.model(full, self.state, self.sr)
        self.ctx = full[:, -FOREIGN_K:]
        return y.numpy()


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ForeignModel]:
    """A hand-exported foreign ONNX model (no rnnx.spec) and its eager module."""
    model = ForeignModel().eval()
    path = export_foreign(model, tmp_path_factory.mktemp("foreign") / "vad.onnx")
    return path, model


def export_foreign(model: ForeignModel, path: Path, *, dynamic_batch: bool = True) -> Path:
    """``model`` exported as a third party would (no rnnx.spec): inputs (input, state, sr), outputs
    (output, stateN); without ``dynamic_batch`` every shape is static (the batch axis is ambiguous)."""
    args = (torch.zeros(1, FOREIGN_K + FOREIGN_N), torch.zeros(2, 1, FOREIGN_H), torch.tensor(16000))
    axes = {"input": {0: "batch"}, "state": {1: "batch"}, "output": {0: "batch"}, "stateN": {1: "batch"}}
    torch.onnx.export(
        model,
        args,
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input", "state", "sr"],
        output_names=["output", "stateN"],
        dynamic_axes=axes if dynamic_batch else None,
    )
    return path


def make_batcher_wait(pool, xs: np.ndarray, ids: list) -> None:
    """Run one batch over ``ids`` (stream k gets ``xs[k]``) so the pool's batcher then waits for
    that many streams (up to ``max_wait_ms``) before it runs the next batch: steps submitted
    for fewer streams stay queued meanwhile."""
    for f in pool.submit_many({i: x for i, x in zip(ids, xs)}):
        f.result(timeout=60)


def started_threads(before: list[threading.Thread], name: str) -> list[threading.Thread]:
    """The live threads called ``name`` (``rnnx-batcher``, ``rnnx-handoff``) not in ``before``,
    a ``threading.enumerate()`` taken earlier: the threads a pool started since then."""
    return [t for t in threading.enumerate() if t.name == name and t not in before]


def write_step_graph(
    main: Path, folder: Path, add: float = 1.0, edit: Callable | None = None, name: str = STEP
) -> Path:
    """Write ``folder/m.onnx`` (``main`` whose spec names ``folder/name``) and that step graph.

    The step graph is ``main``'s graph with ``y + add`` as its output and no metadata: valid
    at T=1, as a real step graph is, and every ``y + add`` shows that it ran.
    ``edit(graph)`` may change it further before it is saved and hashed.
    """
    import onnx
    from onnx import helper, numpy_helper

    step = onnx.load(str(main))
    graph = step.graph
    for node in graph.node:
        node.output[:] = ["y/main" if o == "y" else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(add, np.float32), "step/add"))
    graph.node.append(helper.make_node("Add", ["y/main", "step/add"], ["y"], name="step/add"))
    del step.metadata_props[:]  # a step graph carries no rnnx.spec of its own
    if edit is not None:
        edit(graph)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(step, str(folder / name))
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    model = onnx.load(str(main))
    for prop in model.metadata_props:
        if prop.key == "rnnx.spec":
            spec = json.loads(prop.value)
            spec["step_graph"] = {"file": name, "sha256": digest}
            prop.value = json.dumps(spec)
    onnx.save(model, str(folder / "m.onnx"))
    return folder / "m.onnx"
