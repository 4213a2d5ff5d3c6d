"""fp32 vs fp16 vs int8 side by side: file size, step time, feed time, max error, parity.

Models: 2-layer LSTM and GRU 16 -> H -> 1, and a 1-layer ConvLSTM 2 -> H channels on an
8x8 grid with a 1x1 head, for each H given. Each is exported by rnnx (float32), then
written at fp16 and int8 by ``rnnx.onnx_tools.quantize``. Per model the three files are
timed in alternating rounds (``rnnx.bench.time_side_by_side``, 1 intra-op thread, batch 1)
so machine load hits them alike; each timed call is budgeted so a case stays short.

    python benchmarks/bench_precision.py [--hidden 64 256] [--kinds lstm gru convlstm]
                                         [--repeat 2] [--json out.json]

Max error: max |y - y_eager_fp32| over a 64-step stream from a zero state; parity:
``check_parity`` at the precision's tolerance (batch 1 and 2, T 1 and 16). Not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from rnnx.bench import time_side_by_side
from rnnx.exporter import check_parity, export_onnx, quantize
from rnnx.models import build
from rnnx.runtime import RuntimeOptions, StreamingSession

PRECISIONS = ("fp32", "fp16", "int8")
CHUNK = 64  # steps per feed() call
BUDGET_S = 1.5  # rough wall time per timed case and round set


def make_model(kind: str, hidden: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "convlstm":
        return build("convlstm", input_size=2, hidden_size=hidden, image_size=(8, 8), output_size=1).eval()
    return build(kind, input_size=16, hidden_size=hidden, num_layers=2, output_size=1).eval()


def write_files(model: torch.nn.Module, tmp: Path, name: str) -> dict[str, Path]:
    src = export_onnx(model, tmp / f"{name}.onnx").path
    files = {"fp32": src}
    for p in PRECISIONS[1:]:
        files[p] = quantize(src, tmp / f"{name}.{p}.onnx", precision=p).path
    return files


def max_error(model: torch.nn.Module, path: Path, x: np.ndarray) -> float:
    with torch.no_grad():
        ref, _ = model(torch.from_numpy(x), model.init_state(1))
    sess = StreamingSession(path, options=RuntimeOptions(threads=1))
    return float(np.abs(sess.feed(x) - ref.numpy()).max())


def _calls(fn, per_call_steps: int) -> int:
    start = time.perf_counter()
    fn()
    took = max(time.perf_counter() - start, 1e-6)
    return int(min(2000, max(10, BUDGET_S / took)))


def measure(kind: str, hidden: int, tmp: Path) -> list[dict]:
    model = make_model(kind, hidden)
    files = write_files(model, tmp, f"{kind}{hidden}")
    rng = np.random.default_rng(0)
    feat = (16,) if kind != "convlstm" else (2, 8, 8)
    x_step = rng.standard_normal((1, *feat)).astype(np.float32)
    x_chunk = rng.standard_normal((1, CHUNK, *feat)).astype(np.float32)
    sessions = {p: StreamingSession(f, options=RuntimeOptions(threads=1)) for p, f in files.items()}
    cases = []
    for p, s in sessions.items():
        step, feed = partial(s.step, x_step), partial(s.feed, x_chunk)
        cases.append((f"{p} step", step, 1, _calls(step, 1)))
        cases.append((f"{p} feed", feed, CHUNK, _calls(feed, CHUNK)))
    rows = {r.name: r for r in time_side_by_side(cases, rounds=10, warmup=3)}
    x_err = rng.standard_normal((1, 64, *feat)).astype(np.float32)
    out = []
    for p, f in files.items():
        report = check_parity(model, f, batch_sizes=(1, 2), steps=(1, 16))
        out.append(
            {
                "kind": kind,
                "hidden": hidden,
                "precision": p,
                "bytes": f.stat().st_size,
                "step_us": rows[f"{p} step"].p50_us,
                "feed_us_per_step": rows[f"{p} feed"].p50_us,
                "max_err": max_error(model, f, x_err),
                "parity": report.ok,
                "tolerance": f"{report.tolerance.atol:g}/{report.tolerance.rtol:g}",
            }
        )
    return out


def table(results: list[dict]) -> str:
    head = (
        "model",
        "H",
        "precision",
        "size",
        "x fp32",
        "step µs",
        "x fp32",
        "feed µs/step",
        "x fp32",
        "max |err|",
        "parity (atol/rtol)",
    )
    lines = [head]
    base = {(r["kind"], r["hidden"]): r for r in results if r["precision"] == "fp32"}
    for r in results:
        b = base[(r["kind"], r["hidden"])]
        lines.append(
            (
                r["kind"],
                str(r["hidden"]),
                r["precision"],
                f"{r['bytes'] / 1024:.0f} KiB",
                f"{r['bytes'] / b['bytes']:.2f}",
                f"{r['step_us']:.1f}",
                f"{r['step_us'] / b['step_us']:.2f}",
                f"{r['feed_us_per_step']:.1f}",
                f"{r['feed_us_per_step'] / b['feed_us_per_step']:.2f}",
                f"{r['max_err']:.2g}",
                f"{'pass' if r['parity'] else 'FAIL'} ({r['tolerance']})",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 256], help="hidden sizes (default 64 256)")
    ap.add_argument("--kinds", nargs="+", default=["lstm", "gru", "convlstm"], help="model kinds")
    ap.add_argument("--repeat", type=int, default=1, help="measure every model this many times")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            for kind in args.kinds:
                for hidden in args.hidden:
                    for r in measure(kind, hidden, Path(tmp)):
                        results.append({**r, "repeat": rep})
    env = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    print(
        f"batch 1, 1 intra-op thread, onnxruntime {ort.__version__} CPU; ratios against fp32 "
        f"measured in the same alternating rounds"
    )
    for rep in range(args.repeat):
        print(f"\nround {rep + 1} of {args.repeat}")
        print(table([r for r in results if r["repeat"] == rep]))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
