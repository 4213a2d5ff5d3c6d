"""Benchmark the runtime on a model's step graph vs its main (Scan) graph, side by side.

Each model is exported with the ``scan`` strategy, which writes ``<stem>.step.onnx`` beside
the file (its Scans run once, inlined). The same file is then opened twice, with
``step_graph=True`` (single steps on the step graph) and ``step_graph=False`` (every call
on the Scan graph), and timed in alternating rounds, one intra-op thread, float32:
``StreamingSession.step`` at batch 1 and ``StreamPool.step_many`` over 16 streams. Outputs
of both are checked equal first. The ratio is step graph / main graph (below 1: faster).

    python benchmarks/bench_step_graph.py [--rounds 7] [--calls 1000] [--only convlstm] [--precision int8]
                                          [--json out.json]

``--precision int8|fp16`` times the quantized files instead (each with its own step graph).

Not a test; prints one table.
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
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from rnnx.exporter import export_onnx
from rnnx.models import build
from rnnx.onnx_tools.quantize import quantize
from rnnx.runtime import RuntimeOptions, StreamingSession, StreamPool

STREAMS = 16  # streams of the pool case


@dataclass(frozen=True)
class Row:
    """One model, one case: microseconds per call with and without the step graph."""

    model: str  # model label
    case: str  # "step" (StreamingSession.step, batch 1) or "step_many" (StreamPool, 16 streams)
    step_graph_us: float  # best round, on the step graph
    main_graph_us: float  # best round, on the Scan graph
    step_graph_median_us: float
    main_graph_median_us: float

    @property
    def ratio(self) -> float:
        return self.step_graph_us / self.main_graph_us

    @property
    def median_ratio(self) -> float:
        return self.step_graph_median_us / self.main_graph_median_us


def _rounds(calls: dict[str, Callable[[], Any]], rounds: int, n: int) -> dict[str, list[float]]:
    """Microseconds per call of each callable, in rounds whose order alternates."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(rounds):
        for name in list(calls) if r % 2 == 0 else list(calls)[::-1]:
            f = calls[name]
            f()
            start = time.perf_counter()
            for _ in range(n):
                f()
            times[name].append((time.perf_counter() - start) / n * 1e6)
    return times


def measure(label: str, path: Path, rounds: int, calls: int, rtol: float = 1e-4) -> list[Row]:
    """Both cases for one file; its two graphs are checked to agree first (``rtol``: looser for int8/fp16)."""
    opts = RuntimeOptions(threads=1)
    rows = []
    with StreamingSession(path, options=opts) as on, StreamingSession(path, options=opts, step_graph=False) as off:
        if on.step_graph is None:
            raise SystemExit(f"{label}: the export wrote no step graph beside {path.name}")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1,) + on.contract.spec.input.feature_shape).astype(np.float32)  # (1, F...)
        for t in range(8):  # both graphs agree, step after step
            np.testing.assert_allclose(on.step(x * t), off.step(x * t), rtol=rtol, atol=rtol / 10)
        t = _rounds({"on": lambda: on.step(x), "off": lambda: off.step(x)}, rounds, calls)
        rows.append(
            Row(label, "step", min(t["on"]), min(t["off"]), statistics.median(t["on"]), statistics.median(t["off"]))
        )
    with (
        StreamPool(path, options=opts, capacity=STREAMS) as on,
        StreamPool(path, options=opts, capacity=STREAMS, step_graph=False) as off,
    ):
        xs = {i: x[0] for i in range(STREAMS)}
        for pool in (on, off):
            for i in range(STREAMS):
                pool.open(i)
        np.testing.assert_allclose(on.step_many(xs).array, off.step_many(xs).array, rtol=rtol, atol=rtol / 10)
        t = _rounds({"on": lambda: on.step_many(xs), "off": lambda: off.step_many(xs)}, rounds, max(calls // 8, 10))
        rows.append(
            Row(
                label,
                f"step_many({STREAMS})",
                min(t["on"]),
                min(t["off"]),
                statistics.median(t["on"]),
                statistics.median(t["off"]),
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'model':<26} {'case':<14} {'step graph us':>14} {'main graph us':>14} {'ratio':>6} {'median':>7}"]
    lines += [
        f"{r.model:<26} {r.case:<14} {r.step_graph_us:>14.1f} {r.main_graph_us:>14.1f} "
        f"{r.ratio:>6.2f} {r.median_ratio:>7.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    ap.add_argument(
        "--calls", type=int, default=1000, help="step() calls per round (default 1000; step_many calls are 1/8 of it)"
    )
    ap.add_argument("--only", default="", help="time only the models whose label contains this (e.g. convlstm)")
    ap.add_argument(
        "--precision",
        choices=("fp32", "int8", "fp16"),
        default="fp32",
        help="time the files quantized to this precision (with their own step graphs)",
    )
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("torch").setLevel(logging.ERROR)
    torch.manual_seed(0)
    models = {
        "convlstm 2->4 6x6 k3": lambda: build(
            "convlstm", input_size=2, hidden_size=4, image_size=(6, 6), output_size=1
        ),
        "convlstm 2->8 12x12 k3": lambda: build(
            "convlstm", input_size=2, hidden_size=8, image_size=(12, 12), output_size=1
        ),
        "lstm 2l 16->64 (scan)": lambda: build("lstm", input_size=16, hidden_size=64, num_layers=2, output_size=1),
        "lstm 2l 16->64 proj 32": lambda: build(
            "lstm", input_size=16, hidden_size=64, num_layers=2, proj_size=32, output_size=1
        ),
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in models.items():
            if args.only not in label:
                continue
            path = Path(tmp) / (label.split(" ")[0] + f"-{len(rows)}.onnx")
            export_onnx(make().eval(), path, strategy="scan")
            if args.precision != "fp32":
                path = quantize(path, path.with_suffix(f".{args.precision}.onnx"), precision=args.precision).path
            rows += measure(label, path, args.rounds, args.calls, 1e-4 if args.precision == "fp32" else 2e-3)
    print(
        f"onnxruntime {ort.__version__}, {platform.machine()}, {args.precision}, 1 intra-op thread, "
        f"best of {args.rounds} alternating rounds; ratio = step graph / main graph"
    )
    print(table(rows))
    if args.json:
        env = {"python": platform.python_version(), "onnxruntime": ort.__version__, "machine": platform.machine()}
        args.json.write_text(
            json.dumps(
                {"env": env, "rows": [{**asdict(r), "ratio": r.ratio, "median_ratio": r.median_ratio} for r in rows]},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
