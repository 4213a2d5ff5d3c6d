"""Benchmark a real tritonserver serving the python flavour, beside the in-process StreamPool.

Model: the benchmarks' 2-layer LSTM 16->64 (head of 1), exported by rnnx, served by
``export_triton(..., backend="python")`` (rnnx.runtime inside Triton's python backend) with
the ``oldest`` and the ``direct`` sequence batcher, one instance each. Closed-loop clients
(asyncio, gRPC): N concurrent sequences (1, 8, 64), each sending one request after the
other, one time step per request or chunks of 16 steps. Beside them, in the same run:
the same N streams stepped in process (StreamPool.step_batch for one step, a batch-N
StreamingSession.feed for chunks).

Where the time goes: Triton's own statistics split each request's server time into queue
(waiting for the batcher) and compute (the python backend: IPC to the stub, model.py,
onnxruntime); what remains of the client's latency is the client, gRPC and the network stack.

    python benchmarks/bench_triton.py [--sizes 1,8,64] [--requests 40] [--chunk 16] [--json out.json]

Needs the server venv (``make triton-venv``). Prints a table; exit 3 when no server can run.
Not a test: tests/test_benchmarks.py runs it tiny.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: its server harness

from rnnx.bench import reference_model
from rnnx.exporter import export_onnx
from rnnx.onnx_tools.triton import TritonConfig, export_triton
from rnnx.runtime import StreamingSession, StreamPool
from rnnx.table import render
from tests.triton_server import server as triton

clock = time.perf_counter


def _stats(client: Any, model: str) -> dict[str, float]:
    """Triton's cumulative counters for ``model``: requests, executions, queue and compute ns."""
    s = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    inf = s["inference_stats"]
    return {
        "requests": float(inf["success"].get("count", 0)),
        "executions": float(s.get("execution_count", 0)),
        "queue_ns": float(inf["queue"].get("ns", 0)),
        "compute_ns": sum(float(inf[k].get("ns", 0)) for k in ("compute_input", "compute_infer", "compute_output")),
    }


async def _closed_loop(url: str, model: str, xs: np.ndarray, first_id: int) -> tuple[list[float], float]:
    """Every sequence sends its requests one after the other; returns (latencies s, wall s)."""
    from tritonclient.grpc import aio

    client = aio.InferenceServerClient(url)
    n, requests = xs.shape[0], xs.shape[1]
    lat: list[float] = []

    async def one(i: int) -> None:
        for r in range(requests):
            inp = aio.InferInput("x", list(xs[i, r].shape), "FP32")
            inp.set_data_from_numpy(xs[i, r])
            t0 = clock()
            await client.infer(
                model, [inp], sequence_id=first_id + i, sequence_start=r == 0, sequence_end=r == requests - 1
            )
            lat.append(clock() - t0)

    t0 = clock()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = clock() - t0
    await client.close()
    return lat, wall


def _row(name: str, n: int, chunk: int, lat: list[float], wall: float, steps: int, **extra: Any) -> dict[str, Any]:
    lat_ms = np.array(lat) * 1e3
    return {
        "name": name,
        "sequences": n,
        "chunk": chunk,
        "steps_per_s": steps / wall,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        **extra,
    }


def _server_rows(
    server: Any, strategy: str, n: int, chunk: int, requests: int, rng: np.random.Generator, first_id: int
) -> dict[str, Any]:
    import tritonclient.grpc as grpcclient

    xs = rng.standard_normal((n, requests, 1, chunk, 16)).astype(np.float32)  # (seq, request, 1, T, F)
    stats = grpcclient.InferenceServerClient(server.grpc_url)
    before = _stats(stats, strategy)
    lat, wall = asyncio.run(_closed_loop(server.grpc_url, strategy, xs, first_id))
    after = _stats(stats, strategy)
    d = {k: after[k] - before[k] for k in after}
    per = max(d["requests"], 1.0)
    return _row(
        f"triton {strategy}",
        n,
        chunk,
        lat,
        wall,
        n * requests * chunk,
        queue_us=d["queue_ns"] / per / 1e3,
        compute_us=d["compute_ns"] / per / 1e3,
        batch=d["requests"] / max(d["executions"], 1.0),
    )


def _in_process(path: Path, n: int, chunk: int, requests: int, rng: np.random.Generator) -> dict[str, Any]:
    lat: list[float] = []
    if chunk == 1:
        xs = rng.standard_normal((requests, n, 16)).astype(np.float32)
        with StreamPool(path, max_batch=max(n, 1)) as pool:
            ids = list(range(n))
            for i in ids:
                pool.open(i)
            t0 = clock()
            for r in range(requests):
                t1 = clock()
                pool.step_batch(ids, xs[r])
                lat.append(clock() - t1)
            wall = clock() - t0
        name = "in-process StreamPool.step_batch"
    else:
        xs = rng.standard_normal((requests, n, chunk, 16)).astype(np.float32)
        with StreamingSession(path, batch_size=n) as sess:
            t0 = clock()
            for r in range(requests):
                t1 = clock()
                sess.feed(xs[r])
                lat.append(clock() - t1)
            wall = clock() - t0
        name = "in-process StreamingSession.feed"
    return _row(name, n, chunk, lat, wall, n * requests * chunk)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,8,64", help="concurrent sequences, comma-separated")
    ap.add_argument("--requests", type=int, default=40, help="requests per sequence and row")
    ap.add_argument("--chunk", type=int, default=16, help="time steps per request of the chunk rows")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        path = export_onnx(reference_model(), Path(tmp) / "model" / "model.onnx").path
        repo = Path(tmp) / "repo"
        batch = max(sizes)
        for strategy in ("oldest", "direct"):
            export_triton(
                path,
                repo,
                TritonConfig(
                    name=strategy, strategy=strategy, max_batch_size=batch, max_queue_delay_us=100, backend="python"
                ),
            )
        try:
            server = triton.start(repo)
        except triton.Unavailable as e:
            print(f"no tritonserver: {e}", file=sys.stderr)
            return 3
        rows: list[dict[str, Any]] = []
        try:
            sid = 1
            for chunk in (1, args.chunk):
                for n in sizes:
                    for strategy in ("oldest", "direct"):
                        rows.append(_server_rows(server, strategy, n, chunk, args.requests, rng, sid))
                        sid += n
                    rows.append(_in_process(path, n, chunk, args.requests, rng))
        finally:
            stop_s = server.stop()
    head = ["path", "seqs", "T", "steps/s", "p50 ms", "p99 ms", "queue us", "compute us", "req/exec"]
    table = [
        [
            r["name"],
            str(r["sequences"]),
            str(r["chunk"]),
            f"{r['steps_per_s']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r.get('queue_us', 0):.0f}" if "queue_us" in r else "-",
            f"{r.get('compute_us', 0):.0f}" if "compute_us" in r else "-",
            f"{r['batch']:.1f}" if "batch" in r else "-",
        ]
        for r in rows
    ]
    print(render(head, table, "<>>>>>>>>"))
    print(f"server start {server.started_s:.2f} s, stop {stop_s:.2f} s")
    report = {
        "rows": rows,
        "server_start_s": server.started_s,
        "server_stop_s": stop_s,
        "env": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "requests": args.requests,
            "sizes": sizes,
            "chunk": args.chunk,
        },
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
