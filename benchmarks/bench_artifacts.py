"""Step latency of one model through every artifact rnnx writes, side by side in one run.

One 2-layer LSTM 16->64->1 (and a GRU with ``--kind gru``) is exported as ONNX (``trace``:
native LSTM op; and ``dynamo``: the TorchScript-free graph), a torch.export step program
(``.pt2``) and an ExecuTorch step program (``.pte``, XNNPACK where it lowers; skipped
without ``rnnx[executorch]``). Each is stepped one time step per call, batch 1, one thread:

- through :class:`rnnx.runtime.StreamingSession` (what users deploy: validation, state carried);
- bare: the engine's own call on the same program (``ort.InferenceSession.run``,
  ExecuTorch ``Method.execute``, the ``torch.export`` module), the floor under the session.

Rounds alternate between the artifacts so that machine noise hits them alike; the best
round's median counts. Export times are reported too.

    python benchmarks/bench_artifacts.py [--kind lstm] [--rounds 5] [--calls 2000] [--json out.json]

Prints one table and the ratios to onnxruntime's; not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rnnx.exporter import export_onnx
from rnnx.exporter.pt2_export import export_pt2
from rnnx.models import build
from rnnx.runtime import RuntimeOptions, StreamingSession
from rnnx.table import render


@dataclass(frozen=True)
class Row:
    """One artifact, one way of calling it: microseconds per step."""

    artifact: str  # "onnx (trace)", "pt2", "pte (executorch-xnnpack)", ...
    call: str  # "StreamingSession.step" or "bare"
    p50_us: float  # best round's median
    p90_us: float  # that round's 90th percentile
    export_s: float  # seconds the export took (parity probe included)


def _timed(fn: Callable[[], object], calls: int) -> list[float]:
    fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _exports(kind: str, tmp: Path) -> tuple[torch.nn.Module, dict[str, tuple[Path, float]]]:
    model = build(kind, input_size=16, hidden_size=64, num_layers=2, output_size=1)
    files: dict[str, tuple[Path, float]] = {}
    for label, strategy in (("onnx (trace)", "auto"), ("onnx (dynamo)", "dynamo")):
        start = time.perf_counter()
        r = export_onnx(model, tmp / f"{strategy}.onnx", strategy=strategy)
        files[f"onnx ({r.strategy})" if label.endswith("(dynamo)") else label] = (r.path, time.perf_counter() - start)
    start = time.perf_counter()
    files["pt2"] = (export_pt2(model, tmp / "model.pt2", chunk=False).path, time.perf_counter() - start)
    try:
        from rnnx.exporter.pte_export import export_pte

        start = time.perf_counter()
        r = export_pte(model, tmp / "model.pte")
        files[f"pte ({r.strategy})"] = (r.path, time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 (no executorch here, or it failed: say so and go on)
        logging.warning("no .pte row: %s", e)
    return model, files


def _bare(sess: StreamingSession, x: np.ndarray) -> Callable[[], object]:
    """The engine's own call of the program the session steps (no rnnx validation or state handling)."""
    spec = sess.contract.spec
    feeds = {
        spec.input.name: x[:, None],  # (1, 1, F): one step of the main graph
        **{s.input: np.zeros(s.concrete_shape(1), s.dtype) for s in sess.contract.states},
    }
    backend = sess.step_backend
    step = getattr(backend, "_step", None)
    if step is not None:  # a step program: its engine call on x_t and the state
        args = [x, *(feeds[s.input] for s in spec.state)]
        return lambda: step(args)
    outputs = [o.name for o in backend.outputs()]
    return lambda: backend.run(outputs, feeds)


def measure(files: dict[str, tuple[Path, float]], rounds: int, calls: int) -> list[Row]:
    options = RuntimeOptions(threads=1)
    sessions = {name: StreamingSession(path, options=options) for name, (path, _) in files.items()}
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    cases = {}
    for name, sess in sessions.items():
        cases[(name, "StreamingSession.step")] = lambda s=sess: s.step(x)
        cases[(name, "bare")] = _bare(sess, x)
    best: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for key, fn in cases.items():
            t = _timed(fn, calls)
            if key not in best or statistics.median(t) < statistics.median(best[key]):
                best[key] = t
    for sess in sessions.values():
        sess.close()
    return [
        Row(name, call, statistics.median(t), float(np.percentile(t, 90)), files[name][1])
        for (name, call), t in best.items()
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="lstm", choices=["lstm", "gru"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        _, files = _exports(args.kind, Path(tmp))
        rows = measure(files, args.rounds, args.calls)
    print(
        render(
            ("artifact", "call", "p50 us/step", "p90", "export s"),
            [(r.artifact, r.call, f"{r.p50_us:.1f}", f"{r.p90_us:.1f}", f"{r.export_s:.1f}") for r in rows],
        )
    )
    base = {r.call: r.p50_us for r in rows if r.artifact == "onnx (trace)"}
    ratios = {
        f"{r.artifact} / onnx (trace), {r.call}": r.p50_us / base[r.call] for r in rows if r.artifact != "onnx (trace)"
    }
    print("\n" + "\n".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    if args.json:
        env = {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "kind": args.kind,
        }
        Path(args.json).write_text(
            json.dumps({"env": env, "rows": [asdict(r) for r in rows], "ratios": ratios}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
