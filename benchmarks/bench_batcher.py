"""Benchmark StreamPool's batcher draining one stream's deep backlog: linear, not quadratic.

One stream gets N queued steps (``submit`` N times, ``max_wait_ms=0``), then every future is
awaited; the time of a backlog of ``--steps`` is compared with one four times shorter in the
same run. A batcher that takes the next step without rescanning the backlog scales about
linearly (ratio near 4); one that rescans it per batch is quadratic (ratio near 16: a 16k
backlog took 37.7 s that way). The target is ratio <= 6.

A lone client (one stream, one step at a time, ``max_wait_ms=1000``) must not wait for
company: its mean latency per step over ``max_wait_ms`` is the second ratio (target <= 0.1;
a batcher that waited would be near 1). Exit status 1 when a target is missed.

    python benchmarks/bench_batcher.py [--steps 16384] [--rounds 3] [--json out.json]

Not a test; prints one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnx.exporter import export_onnx
from rnnx.models import build
from rnnx.runtime import RuntimeOptions, StreamPool

TARGET = 6.0  # time(N) / time(N/4): linear is 4, quadratic 16
LONE_TARGET = 0.1  # a lone client's mean step latency / max_wait_ms
LONE_WAIT_MS = 1000.0


def drain(path: Path, steps: np.ndarray) -> float:
    """Seconds to queue and await ``steps`` (T, F) on one stream of a fresh pool."""
    with StreamPool(path, max_wait_ms=0, options=RuntimeOptions(threads=1)) as pool:
        pool.open("a")
        t0 = time.perf_counter()
        futs = [pool.submit("a", x) for x in steps]
        for f in futs:
            f.result(timeout=600)
        return time.perf_counter() - t0


def lone_client(path: Path, steps: np.ndarray) -> float:
    """Mean seconds per step of one stream submitting and awaiting one step at a time."""
    with StreamPool(path, max_wait_ms=LONE_WAIT_MS, options=RuntimeOptions(threads=1)) as pool:
        pool.open(0)
        t0 = time.perf_counter()
        for x in steps:
            pool.submit(0, x).result(timeout=600)
        return (time.perf_counter() - t0) / len(steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16_384, help="the long backlog (default 16384)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(build("lstm", input_size=4, hidden_size=8), Path(tmp) / "m.onnx").path
        rng = np.random.default_rng(0)
        long_steps = rng.standard_normal((args.steps, 4)).astype(np.float32)  # (T, F)
        short, long = [], []
        for _ in range(args.rounds):
            short.append(drain(path, long_steps[: args.steps // 4]))
            long.append(drain(path, long_steps))
        lone = lone_client(path, long_steps[:5])
    ratio, lone_ratio = min(long) / min(short), lone / (LONE_WAIT_MS / 1000)
    print(f"{'backlog':>10} {'best s':>8} {'us/step':>8}")
    for n, t in ((args.steps // 4, min(short)), (args.steps, min(long))):
        print(f"{n:>10} {t:>8.3f} {t / n * 1e6:>8.1f}")
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"time({args.steps}) / time({args.steps // 4}) = {ratio:.2f} (target <= {TARGET:g}: linear is 4): {verdict}")
    lone_verdict = "ok" if lone_ratio <= LONE_TARGET else "MISSED"
    print(
        f"lone client: {lone * 1e3:.2f} ms per step / max_wait_ms {LONE_WAIT_MS:g} = {lone_ratio:.4f} "
        f"(target <= {LONE_TARGET:g}: waiting for company is near 1): {lone_verdict}"
    )
    ok = ratio <= TARGET and lone_ratio <= LONE_TARGET
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "steps": args.steps,
                    "short_s": min(short),
                    "long_s": min(long),
                    "ratio": ratio,
                    "target": TARGET,
                    "lone_step_s": lone,
                    "lone_ratio": lone_ratio,
                    "lone_target": LONE_TARGET,
                    "ok": ok,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
