"""TEST-ONLY stand-in for Triton's onnxruntime backend, written as a python-based backend.

No build of Triton's onnxruntime backend exists on this project's package registries. A
folder ``backends/onnxruntime/`` holding this ``model.py`` lets a real tritonserver load the
UNMODIFIED repositories ``rnnx export --format triton`` writes (``backend: "onnxruntime"``):
the server's core parses, auto-completes and validates the config (inputs, outputs,
control inputs, ``state``, ``initial_state``, instance groups) before this file runs.

It then runs the repository's ``model.onnx`` with onnxruntime and emulates implicit state
as Triton's documentation specifies it (sequence batcher, "Implicit State Management"):
at START a sequence's state inputs take their ``initial_state``; otherwise they take the
state outputs of that sequence's previous request; the state is dropped at END. Requests
of one ``execute()`` with the same shape are stacked on the batch axis into one run, empty
slots (READY=0, direct strategy) included, as Triton's onnxruntime backend does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {
    "TYPE_FP32": np.float32,
    "TYPE_FP16": np.float16,
    "TYPE_FP64": np.float64,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_UINT64": np.uint64,
    "TYPE_BOOL": np.bool_,
}


class TritonPythonModel:
    """One model instance: an onnxruntime session and each live sequence's states."""

    def initialize(self, args: dict[str, str]) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        file = config.get("default_model_filename") or "model.onnx"
        path = Path(args["model_repository"]) / args["model_version"] / file
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        seq = config["sequence_batching"]
        self.states = [(s["input_name"], s["output_name"], self._initial(s)) for s in seq.get("state", [])]
        self.controls = [c["name"] for c in seq.get("control_input", [])]
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.live: dict[int, dict[str, np.ndarray]] = {}  # correlation id -> state input -> (dims...)

    @staticmethod
    def _initial(state: dict[str, Any]) -> np.ndarray:
        (init,) = state["initial_state"]
        if not init.get("zero_data"):
            raise ValueError(f"state {state['input_name']}: only zero_data initial states are emulated")
        return np.zeros([int(d) for d in init["dims"]], _DTYPES[init["data_type"]])

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        rows = []
        for r in requests:
            tensors = {n: pb_utils.get_input_tensor_by_name(r, n) for n in self.inputs + self.controls}
            rows.append({n: t.as_numpy() for n, t in tensors.items() if t is not None})
        groups: dict[tuple, list[int]] = {}
        for k, row in enumerate(rows):  # Triton's onnxruntime backend stacks same-shaped requests
            groups.setdefault(tuple(row[n].shape for n in self.inputs), []).append(k)
        answers: list[Any] = [None] * len(requests)
        for ks in groups.values():
            for k, ys in zip(ks, self._run([requests[k] for k in ks], [rows[k] for k in ks]), strict=True):
                answers[k] = pb_utils.InferenceResponse([pb_utils.Tensor(n, y) for n, y in ys.items()])
        return answers

    def _run(self, requests: list, rows: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        cids = [int(r.correlation_id()) for r in requests]
        ready = [bool(row.get("READY", np.ones(1))[0].reshape(-1)[0]) for row in rows]
        start = [bool(row.get("START", np.zeros(1))[0].reshape(-1)[0]) for row in rows]
        end = [bool(row.get("END", np.zeros(1))[0].reshape(-1)[0]) for row in rows]
        feeds = {n: np.concatenate([row[n] for row in rows]) for n in self.inputs + self.controls}
        for name, _, init in self.states:
            carried = [
                init if (s or not r or c not in self.live) else self.live[c][name]
                for c, r, s in zip(cids, ready, start, strict=True)
            ]
            feeds[name] = np.stack(carried)  # (batch, dims...)
        outs = self.session.run(self.outputs + [o for _, o, _ in self.states], feeds)
        ys, new = outs[: len(self.outputs)], outs[len(self.outputs) :]
        for b, (c, r, e) in enumerate(zip(cids, ready, end, strict=True)):
            if not r or c == 0:
                continue  # an empty slot: no sequence's state
            if e:
                self.live.pop(c, None)
            else:
                self.live[c] = {name: new[k][b].copy() for k, (name, _, _) in enumerate(self.states)}
        return [{n: y[b : b + 1] for n, y in zip(self.outputs, ys, strict=True)} for b in range(len(rows))]

    def finalize(self) -> None:
        self.live.clear()
