"""Benchmark the export paths side by side: native-op graph (trace) vs Scan graphs.

Models: a 2-layer LSTM 16->64->1 exported by ``trace`` (native LSTM op), ``scan`` (one
lean Scan per layer, input projections hoisted out of the time loop, the rest of the
model built by torch's dynamo exporter) and ``scan-legacy`` (one Scan over the whole
step, built by the TorchScript-based exporter: the graph every model whose cells rnnx
does not know gets); an LSTM with ``proj_size`` through ``proj-native`` (plain native LSTM
ops, the projection folded into the weights), ``scan`` and ``scan-legacy``, timed in the
same rounds as the plain LSTM's ``trace`` graph (``trace-noproj``: the floor a native-op
graph sets); a ConvLSTM (``scan`` and ``scan-legacy``: the native ops cannot express it); and
each ``scan`` export's step graph (``scan-step``: its Scans run once, inlined, what
``StreamingSession.step`` runs; T=1 only, so step case only). Each graph runs in bare onnxruntime
(one intra-op thread, batch 1, float32) as ``step`` (T=1 per call) and ``chunk`` (T=64 per
call, time per step). Candidates of one model are timed in alternating rounds so that
machine noise hits them alike; the best round counts.

    python benchmarks/bench_export_paths.py [--rounds 7] [--calls 400] [--only lstm] [--json out.json]

Prints one table and the ratios: scan vs trace (targets: step <= 1.3x, chunk <= 2x; the step
target also for scan-step, the graph ``step()`` runs),
scan vs the one-step Scan graph (scan-legacy), and for the projected LSTM proj-native vs
scan and vs the plain LSTM's trace graph; not a test.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from rnnx.exporter import export_onnx
from rnnx.models import build

CHUNK = 64  # steps per call of the chunk case
TARGETS = {"step": (1.3, 1.5), "chunk": (2.0, 3.0)}  # scan/trace ratio: target, never above
BASELINES = {
    "scan": ("trace", "scan-legacy"),
    "proj-native": ("scan", "trace-noproj"),
    "scan-step": ("scan", "trace"),
}  # path -> ratios to
STEP_ONLY = {"scan-step"}  # the scan export's step graph (its Scans run once, inlined): T=1 only


@dataclass(frozen=True)
class Row:
    """One graph, one case: microseconds per time step over the rounds."""

    model: str  # model label
    path: str  # export strategy
    case: str  # "step" (T=1 per call) or "chunk" (T=64 per call)
    best_us: float  # best round, wall time per time step
    median_us: float  # median round, wall time per time step
    cpu_us: float  # best round, process CPU time per time step (less distorted by a busy machine)
    nodes: int  # nodes of the graph, Scan bodies included


def _session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return opts


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), _session_options(), providers=["CPUExecutionProvider"])


def _feeds(sess: ort.InferenceSession, steps: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for inp in sess.get_inputs():
        shape = [1 if d == "batch" else steps if d == "time" else d for d in inp.shape]
        out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _count_nodes(path: Path) -> int:
    import onnx

    def count(graph: onnx.GraphProto) -> int:
        n = 0
        for node in graph.node:
            n += 1
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    n += count(a.g)
        return n

    return count(onnx.load(str(path)).graph)


def _time(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], calls: int, steps: int) -> tuple[float, float]:
    """(wall, CPU) microseconds per time step."""
    sess.run(None, feeds)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        sess.run(None, feeds)
    per = calls * steps / 1e6
    return (time.perf_counter() - start) / per, (time.process_time() - cpu) / per


def measure(label: str, paths: dict[str, Path], rounds: int, calls: int) -> list[Row]:
    """Time every graph of one model, step and chunk, in alternating rounds."""
    sessions = {name: _session(p) for name, p in paths.items()}
    rows = []
    for case, steps, n in (("step", 1, calls), ("chunk", CHUNK, max(calls // 16, 5))):
        cased = {name: s for name, s in sessions.items() if case == "step" or name not in STEP_ONLY}
        feeds = {name: _feeds(s, steps) for name, s in cased.items()}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cased}
        for _ in range(rounds):
            for name, sess in cased.items():
                times[name].append(_time(sess, feeds[name], n, steps))
        rows += [
            Row(
                label,
                name,
                case,
                min(w for w, _ in t),
                statistics.median(w for w, _ in t),
                min(c for _, c in t),
                _count_nodes(paths[name]),
            )
            for name, t in times.items()
        ]
    return rows


# -- what a Scan costs in onnxruntime, whatever its body: the floor under every scan chunk -------
@dataclass(frozen=True)
class ScanCost:
    """onnxruntime's price of one Scan iteration (fitted from Add-chain bodies of two sizes) beside
    the plain LSTM's trace and scan chunks, all timed in the same rounds (us per step)."""

    per_iteration_us: float  # fixed cost of an iteration (a body of 0 nodes, extrapolated)
    per_node_us: float  # each body node on a (1, 64) float tensor
    lean_body_nodes: int  # nodes per step in the scan graph's body
    scan_chunk_us: float  # the scan graph's chunk, per step
    trace_chunk_us: float  # the native-op graph's chunk, per step (the ratio's denominator)

    @property
    def node_budget(self) -> float:
        """Body nodes of this Add-chain price that fit in the chunk target (2x the native graph)."""
        return (TARGETS["chunk"][0] * self.trace_chunk_us - self.per_iteration_us) / self.per_node_us

    def summary(self) -> str:
        return (
            f"onnxruntime Scan cost: {self.per_iteration_us:.2f} us per iteration + {self.per_node_us:.2f} us "
            f"per body node (Add-chain bodies on (1, 64)). In the same rounds the native graph's chunk "
            f"took {self.trace_chunk_us:.2f} us/step, so the {TARGETS['chunk'][0]:g}x target leaves "
            f"{TARGETS['chunk'][0] * self.trace_chunk_us:.2f} us per iteration: room for "
            f"{max(self.node_budget, 0):.1f} such nodes; the lean 2-layer LSTM body has "
            f"{self.lean_body_nodes} and its chunk took {self.scan_chunk_us:.2f} us/step "
            f"({self.scan_chunk_us / self.trace_chunk_us:.1f}x)"
        )


def _add_chain_scan(nodes: int) -> bytes:
    """A Scan over (T, 1, 64) whose body adds the step to the state ``nodes`` times."""
    import onnx
    from onnx import TensorProto, helper

    def vi(name: str, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    body_nodes, cur = [], "s"
    for k in range(nodes):
        body_nodes.append(helper.make_node("Add", [cur, "x_t"], [f"a{k}"]))
        cur = f"a{k}"
    body_nodes += [helper.make_node("Identity", [cur], ["s_next"]), helper.make_node("Identity", [cur], ["y_t"])]
    body = helper.make_graph(
        body_nodes, "body", [vi("s", [1, 64]), vi("x_t", [1, 64])], [vi("s_next", [1, 64]), vi("y_t", [1, 64])]
    )
    scan = helper.make_node("Scan", ["s0", "x"], ["s1", "y"], body=body, num_scan_inputs=1)
    graph = helper.make_graph(
        [scan],
        "add_chain",
        [vi("s0", [1, 64]), vi("x", ["time", 1, 64])],
        [vi("s1", [1, 64]), vi("y", ["time", 1, 64])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _scan_body_nodes(path: Path) -> int:
    import onnx

    return sum(
        len(a.g.node)
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Scan"
        for a in n.attribute
        if a.name == "body"
    )


def scan_cost(rounds: int, calls: int, trace_path: Path, scan_path: Path) -> ScanCost:
    """Fit an iteration's cost = fixed + per node (bodies of 1 and 25 Adds; T=64 minus T=1 per call)
    and time the two LSTM chunks in the same alternating rounds (best round each)."""
    sizes = (1, 25)
    cases: dict[str, tuple[ort.InferenceSession, dict[str, np.ndarray], int]] = {}
    for n in sizes:
        sess = ort.InferenceSession(_add_chain_scan(n), _session_options(), providers=["CPUExecutionProvider"])
        for t in (1, CHUNK):
            cases[f"{n}x{t}"] = (sess, {"s0": np.zeros((1, 64), np.float32), "x": np.ones((t, 1, 64), np.float32)}, 1)
    for name, path in (("trace", trace_path), ("scan", scan_path)):
        sess = _session(path)
        cases[name] = (sess, _feeds(sess, CHUNK), CHUNK)
    best = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, (sess, feeds, steps) in cases.items():
            best[name] = min(best[name], _time(sess, feeds, calls, steps)[0])  # us per step (per call for Adds)
    per_iter = {n: (best[f"{n}x{CHUNK}"] - best[f"{n}x1"]) / (CHUNK - 1) for n in sizes}
    per_node = (per_iter[sizes[1]] - per_iter[sizes[0]]) / (sizes[1] - sizes[0])
    return ScanCost(
        per_iter[sizes[0]] - per_node * sizes[0], per_node, _scan_body_nodes(scan_path), best["scan"], best["trace"]
    )


def _export(model: torch.nn.Module, folder: Path, label: str, strategies: tuple[str, ...]) -> dict[str, Path]:
    """Each strategy's file; a graph with a time loop also gives its step graph (``<strategy>-step``)."""
    out = {}
    for s in strategies:
        result = export_onnx(model, folder / f"{label}-{s}.onnx", strategy=s)
        out[s] = result.path
        if s == "scan" and result.step_graph_path is not None:
            out["scan-step"] = result.step_graph_path
    return out


def ratios(rows: list[Row]) -> list[tuple[str, str, str, float, float, float, float | None]]:
    """(model, case, "path/baseline", best wall ratio, median wall ratio, best CPU ratio, target):
    scan over each baseline measured in the same rounds (trace, scan-legacy), proj-native over
    scan and trace-noproj."""
    by = {(r.model, r.path, r.case): r for r in rows}
    out = []
    for (model, path, case), r in by.items():
        for base_path in BASELINES.get(path, ()):
            base = by.get((model, base_path, case))
            if base is not None:
                # scan/trace: the Scan graph itself; scan-step/trace: what step() runs on a scan export
                target = TARGETS[case][0] if (path, base_path) in (("scan", "trace"), ("scan-step", "trace")) else None
                out.append(
                    (
                        model,
                        case,
                        f"{path}/{base_path}",
                        r.best_us / base.best_us,
                        r.median_us / base.median_us,
                        r.cpu_us / base.cpu_us,
                        target,
                    )
                )
    return out


def table(rows: list[Row]) -> str:
    lines = [
        f"{'model':<26} {'path':<12} {'case':<6} {'best us/step':>13} {'median':>9} {'cpu us/step':>12} {'nodes':>6}"
    ]
    lines += [
        f"{r.model:<26} {r.path:<12} {r.case:<6} {r.best_us:>13.2f} {r.median_us:>9.2f} {r.cpu_us:>12.2f} {r.nodes:>6}"
        for r in rows
    ]
    lines.append("")
    for model, case, base, best, median, cpu, target in ratios(rows):
        goal = f" (target <= {target}x, never above {TARGETS[case][1]}x)" if target else ""
        lines.append(f"ratio {base} {model} {case}: {best:.2f}x best, {median:.2f}x median, {cpu:.2f}x CPU time{goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    ap.add_argument(
        "--calls", type=int, default=400, help="step calls per round (default 400; chunk calls are 1/16 of it)"
    )
    ap.add_argument("--only", default="", help="time only the models whose label contains this (e.g. lstm)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("torch").setLevel(logging.ERROR)
    torch.manual_seed(0)
    models = {
        "lstm 2l 16->64": (
            build("lstm", input_size=16, hidden_size=64, num_layers=2, output_size=1),
            ("trace", "scan", "scan-legacy"),
        ),
        "lstm 2l 16->64 proj 32": (
            build("lstm", input_size=16, hidden_size=64, num_layers=2, proj_size=32, output_size=1),
            ("proj-native", "scan", "scan-legacy"),
        ),
        "convlstm 2->8 12x12 k3": (
            build("convlstm", input_size=2, hidden_size=8, image_size=(12, 12), output_size=1),
            ("scan", "scan-legacy"),
        ),
    }
    rows: list[Row] = []
    cost: ScanCost | None = None  # measured beside the plain LSTM
    plain: dict[str, Path] = {}  # the plain LSTM's graphs, timed again beside the projected one
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, strategies) in models.items():
            if args.only not in label:
                continue
            paths = _export(model.eval(), Path(tmp), label.replace(" ", "_").replace(">", ""), strategies)
            if label == "lstm 2l 16->64":
                plain = paths
            elif "proj" in label and "trace" in plain:
                paths["trace-noproj"] = plain["trace"]
            rows += measure(label, paths, args.rounds, args.calls)
            if label == "lstm 2l 16->64" and {"trace", "scan"} <= set(paths):
                cost = scan_cost(args.rounds, max(args.calls // 16, 5), paths["trace"], paths["scan"])
    print(
        f"onnxruntime {ort.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"batch 1, float32, 1 intra-op thread, best of {args.rounds} alternating rounds"
    )
    print(table(rows))
    if cost is not None:
        print("\n" + cost.summary())
    if args.json:
        env = {
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
            "machine": platform.machine(),
        }
        args.json.write_text(
            json.dumps(
                {
                    "env": env,
                    "rows": [asdict(r) for r in rows],
                    "scan_cost": None if cost is None else {**asdict(cost), "node_budget": cost.node_budget},
                    "ratios": [
                        dict(zip(("model", "case", "paths", "best", "median", "cpu", "target"), r))
                        for r in ratios(rows)
                    ],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
