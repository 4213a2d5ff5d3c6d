"""Latency and throughput measurements shared by ``rnnx bench`` and ``benchmarks/``.

Imports numpy, onnxruntime and rnnx.runtime only; torch is imported lazily for the
PyTorch eager / TorchScript rows. Every measurement times individual calls with
``perf_counter_ns`` after a warm-up and reports per-step p50/p90/p99 and steps/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rnnx.runtime import RuntimeOptions, StreamingSession, StreamPool
from rnnx.runtime.contract import Contract, ForeignModel
from rnnx.table import render


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


def _row(name: str, lat_ns: np.ndarray, steps_per_call: int) -> Row:
    per_step = lat_ns / 1e3 / steps_per_call  # µs per stream-step
    p50, p90, p99 = np.percentile(per_step, [50, 90, 99])
    return Row(
        name, float(p50), float(p90), float(p99), float(steps_per_call * 1e9 / np.median(lat_ns)), steps_per_call
    )


Case = tuple[str, Callable[[], Any], int, int]  # (name, fn, stream-steps per call, timed calls)


def time_side_by_side(cases: list[Case], rounds: int = 10, warmup: int = 3) -> list[Row]:
    """Time several candidates in alternating rounds, so load on the machine hits all alike.

    Args:
        cases: (name, fn, stream-steps done by one call of fn, timed calls of fn in all).
        rounds: how many times the candidates take turns (each round times calls/rounds).
        warmup: untimed calls of each fn before the first round.

    Returns:
        One row per case, in the order given.
    """
    for _, fn, _, _ in cases:
        for _ in range(warmup):
            fn()
    per_round = [max(1, calls // rounds) for *_, calls in cases]
    lat = [np.empty(n * rounds) for n in per_round]
    clock = time.perf_counter_ns
    for r in range(rounds):
        for (_, fn, _, _), n, out in zip(cases, per_round, lat):
            for i in range(r * n, (r + 1) * n):
                t0 = clock()
                fn()
                out[i] = clock() - t0
    return [_row(name, times, steps) for (name, _, steps, _), times in zip(cases, lat)]


def reference_model() -> Any:
    """The model the benchmarks measure: a seeded 2-layer LSTM 16->64 with a 1-value head (eval)."""
    import torch  # deferred: `rnnx bench` on an exported file needs no torch

    from rnnx.models import build

    torch.manual_seed(0)
    return build("lstm", input_size=16, hidden_size=64, num_layers=2, output_size=1).eval()


def example_step(contract: Contract, batch: int, seed: int = 0) -> np.ndarray:
    """Random data for one step ``(batch, features...)`` of the model's input dtype."""
    io = contract.input
    shape = tuple(batch if i == io.batch_axis else (d or 1) for i, d in enumerate(io.dims) if i != io.time_axis)
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
    if c.context:  # the graph takes K context values more on the last axis
        x = np.concatenate([np.zeros(x.shape[:-1] + (c.context,), x.dtype), x], axis=-1)
    feeds = {c.input.name: x, **c.constants}
    feeds.update({s.input: np.zeros(s.concrete_shape(batch), s.dtype) for s in c.states})
    return feeds


def bare_ort_case(sess: StreamingSession, calls: int) -> Case:
    """A hand-written ``InferenceSession.run`` loop that carries the state itself, on the graph
    ``sess.step`` runs (the file's step graph when the session uses one)."""
    c = sess.contract
    backend = sess.step_backend  # the graph single steps run on
    feeds = _bare_feeds(sess, 1)
    outputs = [c.output.name] + [s.output for s in c.states]
    pairs = [(i + 1, s.input) for i, s in enumerate(c.states)]

    def step() -> list[np.ndarray]:
        outs = backend.run(outputs, feeds)
        for i, name in pairs:
            feeds[name] = outs[i]
        return outs

    return ("bare ort.run loop (state carried by hand)", step, 1, calls)


def session_cases(
    path: str,
    calls: int,
    providers: Any,
    threads: int,
    chunk: int,
    stack: ExitStack,
    foreign: ForeignModel | None = None,
) -> list[Case]:
    """``StreamingSession.step``, the bare loop and ``feed(chunk)`` on the same graph.

    ``stack`` closes the session; ``foreign``: state_map/constants/context for ONNX files
    rnnx did not write.
    """
    sess = stack.enter_context(
        StreamingSession(path, providers=providers, options=RuntimeOptions(threads=threads), foreign=foreign)
    )
    x = example_step(sess.contract, 1)
    cases = [("StreamingSession.step", lambda: sess.step(x), 1, calls), bare_ort_case(sess, calls)]
    if sess.contract.input.time_axis is not None:
        chunk_x = np.repeat(np.expand_dims(x, sess.contract.input.time_axis), chunk, axis=sess.contract.input.time_axis)
        cases.append(
            (f"StreamingSession.feed({chunk} steps)", lambda: sess.feed(chunk_x), chunk, max(10, calls // chunk))
        )
    return cases


def pool_cases(
    path: str,
    streams: int,
    calls: int,
    providers: Any,
    threads: int,
    stack: ExitStack,
    foreign: ForeignModel | None = None,
) -> list[Case]:
    """Pool ``step_many`` over N streams, N solo sessions in turn, one bare batched call (``stack`` closes them)."""
    so = RuntimeOptions(threads=threads)
    pool = stack.enter_context(StreamPool(path, providers=providers, options=so, capacity=streams, foreign=foreign))
    c = pool.contract
    xs = example_step(c, streams)
    inputs: dict[Hashable, Any] = {i: xs[i] for i in range(streams)}
    for i in range(streams):
        pool.open(i)
    solo = [
        stack.enter_context(StreamingSession(path, providers=providers, options=so, foreign=foreign))
        for _ in range(streams)
    ]

    def round_robin() -> None:
        for i, s in enumerate(solo):
            s.step(xs[i : i + 1])

    feeds = _bare_feeds(solo[0], streams)
    outputs = [c.output.name] + [s.output for s in c.states]
    ids = list(range(streams))
    return [
        (f"StreamPool.step_many({streams} streams)", lambda: pool.step_many(inputs), streams, calls),
        (f"StreamPool.step_batch({streams} streams)", lambda: pool.step_batch(ids, xs), streams, calls),
        (f"{streams} solo sessions stepping in turn", round_robin, streams, max(10, calls // 4)),
        (
            f"bare ort.run on {streams} batched states",
            lambda: pool.backend.run(outputs, feeds),
            streams,
            calls,
        ),  # the graph the pool steps on (its step graph when the file has one)
    ]


def torch_cases(model: Any, calls: int, threads: int) -> list[Case]:
    """PyTorch eager and TorchScript, one step per call, on the same model."""
    import torch  # lazy: only for the --torch rows

    torch.set_num_threads(threads)
    model = model.eval()
    if not hasattr(model, "example_input"):
        raise ValueError("--torch: the model has no example_input(batch, steps); use a zoo checkpoint")
    x = model.example_input(1, 1)
    cases: list[Case] = []
    for name, m in (("PyTorch eager step", model), ("TorchScript step", torch.jit.script(model))):
        state = [m.init_state(1)]

        def step(m: Any = m, state: list = state) -> None:
            with torch.inference_mode():
                _, state[0] = m(x, state[0])

        cases.append((name, step, 1, calls))
    return cases


def table(rows: list[Row], checks: list[Check]) -> str:
    """A plain-text table of the rows, then the checks with their targets."""
    text = render(
        ("measurement", "p50 µs/step", "p90", "p99", "steps/s"),
        [(r.name, f"{r.p50_us:.2f}", f"{r.p90_us:.2f}", f"{r.p99_us:.2f}", f"{r.steps_per_s:,.0f}") for r in rows],
        align="<>>>>",
    )
    if checks:
        text += "\n\n" + render(
            ("ratio", "value", "target", "ok"),
            [
                (
                    c.name,
                    f"{c.value:.2f}",
                    (">=" if c.higher_is_better else "<=") + f"{c.target:.2f}",
                    "yes" if c.ok else "NO",
                )
                for c in checks
            ],
            align="<>><",
        )
    return text


def run_all(
    path: str,
    *,
    streams: int = 256,
    steps: int = 2000,
    providers: Any = "cpu",
    threads: int = 1,
    chunk: int = 64,
    torch_model: Any | None = None,
    foreign: ForeignModel | None = None,
) -> tuple[list[Row], list[Check]]:
    """Every measurement side by side, with the ratio checks.

    Args:
        path: the exported ``.onnx`` file.
        streams: pool size for the batched rows.
        steps: timed calls for per-step rows.
        providers: runtime providers.
        threads: intra-op threads (1 for the published numbers).
        chunk: steps per ``feed`` call.
        torch_model: an eager model for the PyTorch/TorchScript rows, or None.
        foreign: the sessions' :class:`~rnnx.runtime.ForeignModel` (state_map/constants/context)
            and the pool, for ONNX files rnnx did not write.

    Returns:
        (rows, checks).
    """
    with ExitStack() as stack:  # closes every session and pool opened for the measurements
        cases = session_cases(path, steps, providers, threads, chunk, stack, foreign)
        n_session = len(cases)  # step, bare loop, and feed when the model has a time axis
        if torch_model is not None:
            cases += torch_cases(torch_model, max(200, steps // 4), threads)
        single = time_side_by_side(cases)
    step, bare = single[0], single[1]
    with ExitStack() as stack:
        many, stacked, solos, batched = time_side_by_side(
            pool_cases(path, streams, max(40, steps // 10), providers, threads, stack, foreign)
        )
    rows = single[:n_session] + [many, stacked, solos, batched] + single[n_session:]
    checks = [Check("session.step time / bare ort.run loop time", step.p50_us / bare.p50_us, 1.05, False)]
    if n_session == 3:
        checks.append(
            Check(f"feed({chunk}) speed-up over {chunk} step() calls", step.p50_us / single[2].p50_us, 5.0, True)
        )
    checks += [
        Check(f"pool throughput / {streams} solo sessions", many.steps_per_s / solos.steps_per_s, 20.0, True),
        Check("pool throughput / bare batched ort.run", many.steps_per_s / batched.steps_per_s, 0.9, True),
        Check(
            "pool step_batch throughput / bare batched ort.run", stacked.steps_per_s / batched.steps_per_s, 0.85, True
        ),
    ]
    if torch_model is not None:
        eager, script = single[n_session : n_session + 2]
        checks += [
            Check("session.step speed-up over PyTorch eager", eager.p50_us / step.p50_us, 5.0, True),
            Check("session.step speed-up over TorchScript", script.p50_us / step.p50_us, 1.0, True),
        ]
    return rows, checks
