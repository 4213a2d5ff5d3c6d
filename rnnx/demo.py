"""``rnnx demo``: the whole path in one go -- train, export, check, stream, measure.

Stages (each prints one progress line):

1. train the ``sine`` LSTM (truncated BPTT, state carried) into ``DIR/run``;
2. export it to ONNX (``DIR/run/model.onnx``; no TorchScript, which PyTorch deprecates);
3. check the file's parity against the eager model;
4. stream a held-out sine wave through :class:`rnnx.runtime.StreamingSession`
   one step at a time, then in closed loop (predictions fed back as inputs);
5. benchmark eager PyTorch against ONNX Runtime per-step latency (1 thread each);
6. write ``DIR/report.md`` with the numbers and ``DIR/*.png``.

Example:
    >>> from rnnx.demo import run_demo
    >>> result = run_demo("demo", quick=True)     # doctest: +SKIP
    >>> result.numbers["stream_mae"] < result.numbers["baseline_mae"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Echo = Callable[[str], None]
WARMUP = 40  # closed loop: true inputs before predictions are fed back
BENCH_STEPS = 2000  # timed steps per engine (quick: 200)


@dataclass
class DemoResult:
    """What the demo produced."""

    out: Path  # the demo directory
    report: Path  # DIR/report.md
    numbers: dict[str, Any] = field(default_factory=dict)  # every number in the report


def run_demo(out: str | Path, *, quick: bool = False, echo: Echo = print, seed: int = 0) -> DemoResult:
    """Train, export, check, stream and benchmark the sine LSTM; write a report.

    Args:
        out: directory to write (created).
        quick: tiny training and benchmark (tests); the numbers are then not meaningful.
        echo: receives one progress line per stage.
        seed: training seed.

    Returns:
        The report path and its numbers.

    Raises:
        ParityError: an exported file disagrees with the eager model.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        numbers: dict[str, Any] = {"quick": quick}
        t0 = time.perf_counter()
        result = _train(out, quick, seed, echo, numbers)
        onnx_path = _export(result.model, out / "run", echo, numbers)
        _stream(result, onnx_path, out, echo, numbers)
        _bench(result.model, onnx_path, quick, echo, numbers)
        numbers["total_seconds"] = round(time.perf_counter() - t0, 1)
        report = _write_report(out, numbers, onnx_path)
        echo(f"[6/6] report: {report} ({numbers['total_seconds']} s in all)")
        return DemoResult(out=out, report=report, numbers=numbers)
    finally:
        torch.set_num_threads(threads)


def _train(out: Path, quick: bool, seed: int, echo: Echo, numbers: dict[str, Any]) -> Any:
    from rnnx.training import TrainConfig, train

    echo("[1/6] training the sine LSTM (truncated BPTT, state carried across windows)...")
    opts: dict[str, Any] = {"epochs": 3, "size": 0.25} if quick else {}
    result = train(TrainConfig(task="sine", out=str(out / "run"), seed=seed, **opts))
    m = result.metrics
    numbers.update(
        train_seconds=m["wall_seconds"],
        epochs=m["epochs_run"],
        val_loss=m["val_loss"],
        test_mae=m["mae"],
        baseline_mae=m["baseline_mae"],
        closed_loop_mae_eager=m["closed_loop_mae"],
    )
    echo(f"      test MAE {m['mae']:.4f} (persistence {m['baseline_mae']:.4f}) in {m['wall_seconds']:.1f} s")
    for name in ("loss.png", "predictions.png"):
        shutil.copy(out / "run" / name, out / name)
    return result


def _export(model: Any, run: Path, echo: Echo, numbers: dict[str, Any]) -> Path:
    from rnnx.exporter import export_onnx
    from rnnx.testing import assert_parity

    echo("[2/6] exporting to ONNX...")
    onnx_res = export_onnx(model, run / "model.onnx")
    numbers["onnx_strategy"] = onnx_res.strategy
    echo("[3/6] checking parity (batch 1 and 3; 1, 7 and 32 steps; streamed and whole)...")
    report = assert_parity(model, onnx_res.path)  # raises ParityError with the full table on a mismatch
    numbers["parity_onnx_max_abs"] = report.max_abs
    numbers["parity_onnx_table"] = report.table()
    echo(f"      onnx: ok, max |diff| {report.max_abs:.2e}")
    return Path(onnx_res.path)


def _stream(result: Any, onnx_path: Path, out: Path, echo: Echo, numbers: dict[str, Any]) -> None:
    from rnnx.runtime import RuntimeOptions, StreamingSession
    from rnnx.training import plots
    from rnnx.training.tasks.base import stream

    echo("[4/6] streaming the held-out sequence through onnxruntime, one step per call...")
    test = result.data.test
    x, y = test.x[0].numpy(), test.y[0].numpy()  # (T, 1) inputs and next-value targets
    sess = StreamingSession(onnx_path, options=RuntimeOptions(threads=1))
    steps = np.stack([sess.step(x[t][None])[0] for t in range(len(x))])  # (T, 1)
    eager = stream(result.model, test)[0].numpy()
    numbers.update(
        stream_steps=len(x),
        stream_mae=float(np.abs(steps - y).mean()),
        stream_vs_eager_max_abs=float(np.abs(steps - eager).max()),
        stream_baseline_mae=float(np.abs(x - y).mean()),
    )
    loop = _closed_loop(sess, x, WARMUP)
    truth = y[WARMUP - 1 : WARMUP - 1 + len(loop)]
    numbers.update(closed_loop_steps=len(loop), closed_loop_mae=float(np.abs(loop - truth).mean()))
    echo(
        f"      step-by-step MAE {numbers['stream_mae']:.4f} (persistence {numbers['stream_baseline_mae']:.4f}), "
        f"max |runtime - eager| {numbers['stream_vs_eager_max_abs']:.1e}; "
        f"closed loop MAE {numbers['closed_loop_mae']:.4f} over {len(loop)} steps"
    )
    curve = np.full(len(y), np.nan)
    curve[WARMUP - 1 : WARMUP - 1 + len(loop)] = loop[:, 0]
    plots.series(
        str(out / "streamed.png"),
        "onnxruntime, one step per call: one-step and closed loop",
        {"truth": y[:, 0], "runtime one-step": steps[:, 0], f"runtime closed loop (after {WARMUP})": curve},
        ylabel="sine value (unitless amplitude)",
    )


def _closed_loop(sess: Any, x: np.ndarray, warmup: int) -> np.ndarray:
    """Warm up on ``warmup`` true inputs, then feed every prediction back: (T - warmup, 1)."""
    sess.reset()
    for t in range(warmup - 1):
        sess.step(x[t][None])
    pred = sess.step(x[warmup - 1][None])  # predicts x[warmup]
    out = [pred[0]]
    for _ in range(len(x) - warmup - 1):
        pred = sess.step(pred)
        out.append(pred[0])
    return np.stack(out)


def _bench(model: Any, onnx_path: Path, quick: bool, echo: Echo, numbers: dict[str, Any]) -> None:
    import torch

    from rnnx.runtime import RuntimeOptions, StreamingSession

    n = 200 if quick else BENCH_STEPS
    echo(f"[5/6] benchmarking one-step latency over {n} steps (eager PyTorch vs ONNX Runtime, 1 thread)...")
    x = np.random.default_rng(0).standard_normal((n, 1, 1)).astype(np.float32)
    xt = torch.from_numpy(x)
    state = model.init_state(1)
    with torch.inference_mode():
        eager = _timed(n, lambda t: model(xt[t][None], state))  # (1, 1, 1) per call; same state: latency only
    sess = StreamingSession(onnx_path, options=RuntimeOptions(threads=1))
    runtime = _timed(n, lambda t: sess.step(x[t]))
    for name, times in (("eager", eager), ("onnx", runtime)):
        numbers[f"{name}_step_us_median"] = round(statistics.median(times), 1)
        numbers[f"{name}_step_us_p90"] = round(float(np.percentile(times, 90)), 1)
    numbers["speedup"] = round(numbers["eager_step_us_median"] / numbers["onnx_step_us_median"], 2)
    echo(
        f"      eager {numbers['eager_step_us_median']} us/step, onnxruntime {numbers['onnx_step_us_median']} "
        f"us/step (median), speed-up x{numbers['speedup']}"
    )


def _timed(n: int, call: Callable[[int], Any]) -> list[float]:
    for t in range(min(20, n)):  # warm-up
        call(t)
    times = []
    for t in range(n):
        start = time.perf_counter()
        call(t)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def _write_report(out: Path, n: dict[str, Any], onnx_path: Path) -> Path:
    rows = [
        ("training", f"{n['epochs']} epochs in {n['train_seconds']} s, best validation loss {n['val_loss']:.3g}"),
        ("test MAE (eager, streamed)", f"{n['test_mae']:.4f} vs persistence {n['baseline_mae']:.4f}"),
        ("ONNX export", f"`{onnx_path.name}` via strategy `{n['onnx_strategy']}`"),
        ("parity ONNX", f"max abs diff {n['parity_onnx_max_abs']:.2e}"),
        (
            "runtime one-step MAE",
            f"{n['stream_mae']:.4f} over {n['stream_steps']} steps (persistence {n['stream_baseline_mae']:.4f})",
        ),
        ("runtime vs eager", f"max abs diff {n['stream_vs_eager_max_abs']:.2e}"),
        ("closed loop MAE", f"{n['closed_loop_mae']:.4f} over {n['closed_loop_steps']} generated steps"),
        (
            "step latency, median (p90)",
            f"eager {n['eager_step_us_median']} us ({n['eager_step_us_p90']}), "
            f"onnxruntime {n['onnx_step_us_median']} us ({n['onnx_step_us_p90']})",
        ),
        ("total time", f"{n['total_seconds']} s"),
    ]
    lines = ["# rnnx demo: sine LSTM, train -> export -> check -> stream -> measure", ""]
    if n["quick"]:
        lines += ["_Quick mode: tiny training and benchmark; the numbers are not meaningful._", ""]
    lines += ["| stage | result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    lines += [
        "",
        "Files: `run/model.safetensors` (checkpoint), `run/model.onnx`,",
        "`loss.png`, `predictions.png` (eager), `streamed.png` (onnxruntime, step by step).",
        "",
        "![loss](loss.png)",
        "",
        "![predictions](predictions.png)",
        "",
        "![streamed](streamed.png)",
        "",
        "## ONNX parity",
        "",
        "```",
        n["parity_onnx_table"],
        "```",
        "",
        "Reproduce: `rnnx train --task sine --out run && rnnx export run --out run && "
        "rnnx bench run/model.onnx --torch run`",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
