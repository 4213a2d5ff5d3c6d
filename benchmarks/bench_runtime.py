"""Benchmark the streaming runtime against bare onnxruntime and PyTorch (one intra-op thread).

Model: 2-layer LSTM, 16 inputs, 64 hidden, head of 1, batch 1, float32, exported by rnnx.

    python benchmarks/bench_runtime.py [--streams 256] [--steps 3000] [--json out.json]

Prints one table with every measurement and the ratio targets; not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch

from rnnx.bench import reference_model, run_all, table
from rnnx.exporter import export_onnx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=256, help="pool size (default 256)")
    ap.add_argument("--steps", type=int, default=3000, help="timed single-step calls (default 3000)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    model = reference_model()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lstm.onnx"
        result = export_onnx(model, path)
        rows, checks = run_all(str(path), streams=args.streams, steps=args.steps, threads=1, torch_model=model)
    env = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "graph": result.strategy,
    }
    print(f"2-layer LSTM 16->64->1, batch 1, float32, 1 intra-op thread, graph: {result.strategy}")
    print(table(rows, checks))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"env": env, "rows": [r.to_dict() for r in rows], "checks": [c.to_dict() for c in checks]}, indent=2
            )
        )
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
