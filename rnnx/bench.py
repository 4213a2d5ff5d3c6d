"""Latency and throughput measurements shared by ``rnnx bench`` and ``benchmarks/``.

Imports numpy, onnxruntime and rnnx.runtime only; torch is imported lazily for the
PyTorch eager / TorchScript rows. Every measurement times individual calls with
``perf_counter_ns`` after a warm-up and reports per-step p50/p90/p99 and steps/s.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import numpy as np
import onnxruntime as ort

from rnnx.runtime import StreamingSession, StreamPool
from rnnx.runtime.contract import Contract


@dataclass
class Row:
    """One measured configuration."""

    name: str  # what was timed
    p50_us: float  # median latency per step (µs)
    p90_us: float
    p99_us: float
    steps_per_s: float  # throughput in stream-steps per second
    steps_per_call: int  # stream-steps done by one timed call

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    """A performance target: ``value`` (a ratio) compared with ``target``."""

    name: str  # e.g. "session.step vs bare ort.run (time ratio)"
    value: float
    target: float
    higher_is_better: bool  # True: value >= target passes

    @property
    def ok(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def time_calls(name: str, fn: Callable[[], Any], calls: int, steps_per_call: int = 1,
               warmup: int = 20) -> Row:
    """Time ``calls`` calls of ``fn`` (after ``warmup``); latencies are per stream-step."""
    for _ in range(warmup):
        fn()
    lat = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        lat[i] = time.perf_counter_ns() - t0
    per_step = lat / 1e3 / steps_per_call  # µs per stream-step
    p50, p90, p99 = np.percentile(per_step, [50, 90, 99])
    return Row(name, float(p50), float(p90), float(p99), float(steps_per_call * 1e9 / np.median(lat)), steps_per_call)


def session_options(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime options with ``threads`` intra-op threads and one inter-op thread."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return so


def example_step(contract: Contract, batch: int, seed: int = 0) -> np.ndarray:
    """Random data for one step ``(batch, features...)`` of the model's input dtype."""
    io = contract.input
    shape = tuple(batch if i == io.batch_axis else (d or 1) for i, d in enumerate(io.dims)
                  if i != io.time_axis)
    if contract.context:
        shape = shape[:-1] + (shape[-1] - contract.context,)
    rng = np.random.default_rng(seed)
    if io.dtype.kind in "iu":
        return np.zeros(shape, io.dtype)
    return rng.standard_normal(shape).astype(io.dtype)


def _bare_feeds(sess: StreamingSession, batch: int, steps: int = 1) -> dict[str, np.ndarray]:
    c = sess.contract
    x = example_step(c, batch)
    if c.input.time_axis is not None:
        x = np.repeat(np.expand_dims(x, c.input.time_axis), steps, axis=c.input.time_axis)
    feeds = {c.input.name: x, **c.constants}
    feeds.update({s.input: np.zeros(s.concrete(batch), s.dtype) for s in c.states})
    return feeds


def bench_bare_ort(sess: StreamingSession, calls: int) -> Row:
    """A hand-written ``InferenceSession.run`` loop that carries the state itself."""
    c, ort_sess = sess.contract, sess.session
    feeds = _bare_feeds(sess, 1)
    outputs = [c.output.name] + [s.output for s in c.states]
    pairs = [(i + 1, s.input) for i, s in enumerate(c.states)]

    def step() -> None:
        outs = ort_sess.run(outputs, feeds)
        for i, name in pairs:
            feeds[name] = outs[i]

    return time_calls("bare ort.run loop (state carried by hand)", step, calls)


def bench_session(path: str, calls: int, providers: Any, threads: int, chunk: int) -> tuple[Row, Row, Row, StreamingSession]:
    """``StreamingSession.step``, ``feed(chunk)`` and the bare loop on the same graph."""
    sess = StreamingSession(path, providers=providers, session_options=session_options(threads))
    x = example_step(sess.contract, 1)
    step = time_calls("StreamingSession.step", lambda: sess.step(x), calls)
    bare = bench_bare_ort(sess, calls)
    feed_rows = []
    if sess.contract.input.time_axis is not None:
        chunk_x = np.repeat(np.expand_dims(x, sess.contract.input.time_axis), chunk, axis=sess.contract.input.time_axis)
        feed_rows.append(time_calls(f"StreamingSession.feed({chunk} steps)", lambda: sess.feed(chunk_x),
                                    max(10, calls // chunk), chunk, warmup=3))
    return step, bare, (feed_rows[0] if feed_rows else step), sess


def bench_pool(path: str, streams: int, calls: int, providers: Any, threads: int) -> tuple[Row, Row, Row]:
    """Pool ``step_many`` over N streams, N solo sessions in turn, one bare batched call."""
    so = session_options(threads)
    pool = StreamPool(path, providers=providers, session_options=so, capacity=streams)
    c = pool.contract
    xs = example_step(c, streams)
    inputs = {i: xs[i] for i in range(streams)}
    for i in range(streams):
        pool.open(i)
    many = time_calls(f"StreamPool.step_many({streams} streams)", lambda: pool.step_many(inputs),
                      calls, streams, warmup=3)
    pool.close()
    solo = [StreamingSession(path, providers=providers, session_options=so) for _ in range(streams)]

    def round_robin() -> None:
        for i, s in enumerate(solo):
            s.step(xs[i:i + 1])

    solos = time_calls(f"{streams} solo sessions stepping in turn", round_robin, max(3, calls // 4),
                       streams, warmup=1)
    feeds = _bare_feeds(solo[0], streams)
    outputs = [c.output.name] + [s.output for s in c.states]
    bare = time_calls(f"bare ort.run on {streams} batched states", lambda: solo[0].session.run(outputs, feeds),
                      calls, streams, warmup=3)
    return many, solos, bare


def bench_torch(model: Any, calls: int, threads: int) -> list[Row]:
    """PyTorch eager and TorchScript, one step per call, on the same model."""
    import torch  # lazy: only for the --torch rows

    torch.set_num_threads(threads)
    model = model.eval()
    x = model.example_input(1, 1) if hasattr(model, "example_input") else None
    if x is None:
        raise ValueError("--torch: the model has no example_input(batch, steps); use a zoo checkpoint")
    rows = []
    for name, m in (("PyTorch eager step", model), ("TorchScript step", torch.jit.script(model))):
        state = [m.init_state(1)]

        def step(m: Any = m, state: list = state) -> None:
            with torch.inference_mode():
                _, state[0] = m(x, state[0])

        rows.append(time_calls(name, step, calls))
    return rows


def table(rows: list[Row], checks: list[Check]) -> str:
    """A plain-text table of the rows, then the checks with their targets."""
    head = f"{'measurement':<46} {'p50 µs/step':>12} {'p90':>9} {'p99':>9} {'steps/s':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<46} {r.p50_us:>12.2f} {r.p90_us:>9.2f} {r.p99_us:>9.2f} {r.steps_per_s:>12,.0f}")
    if checks:
        lines += ["", f"{'ratio':<58} {'value':>8} {'target':>9}  ok"]
        for c in checks:
            cmp = ">=" if c.higher_is_better else "<="
            lines.append(f"{c.name:<58} {c.value:>8.2f} {cmp + format(c.target, '.2f'):>9}  {'yes' if c.ok else 'NO'}")
    return "\n".join(lines)


def run_all(path: str, *, streams: int = 256, steps: int = 2000, providers: Any = "cpu",
            threads: int = 1, chunk: int = 64, torch_model: Optional[Any] = None) -> tuple[list[Row], list[Check]]:
    """Every measurement side by side, with the ratio checks.

    Args:
        path: the exported ``.onnx`` file.
        streams: pool size for the batched rows.
        steps: timed calls for per-step rows.
        providers: runtime providers.
        threads: intra-op threads (1 for the published numbers).
        chunk: steps per ``feed`` call.
        torch_model: an eager model for the PyTorch/TorchScript rows, or None.

    Returns:
        (rows, checks).
    """
    step, bare, feed, _ = bench_session(path, steps, providers, threads, chunk)
    many, solos, batched = bench_pool(path, streams, max(20, steps // 50), providers, threads)
    rows = [step, bare, feed, many, solos, batched]
    checks = [
        Check("session.step time / bare ort.run loop time", step.p50_us / bare.p50_us, 1.05, False),
        Check(f"feed({chunk}) speed-up over {chunk} step() calls", step.p50_us / feed.p50_us, 5.0, True),
        Check(f"pool throughput / {streams} solo sessions", many.steps_per_s / solos.steps_per_s, 20.0, True),
        Check("pool throughput / bare batched ort.run", many.steps_per_s / batched.steps_per_s, 0.85, True),
    ]
    if torch_model is not None:
        eager, script = bench_torch(torch_model, max(200, steps // 4), threads)
        rows += [eager, script]
        checks += [Check("session.step speed-up over PyTorch eager", eager.p50_us / step.p50_us, 5.0, True),
                   Check("session.step speed-up over TorchScript", script.p50_us / step.p50_us, 1.0, True)]
    return rows, checks
