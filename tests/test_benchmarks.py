"""The benchmark scripts keep working (they are run by hand and by `make bench`; no timing is asserted)."""

import contextlib
import importlib.util
import io
import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, tmp_path: Path, *args: str, codes: tuple[int, ...] = (0,)) -> tuple[dict, str]:
    """Run ``benchmarks/<name>``'s ``main`` with ``args`` and ``--json``; (its JSON report, its stdout).

    In this process, as ``python benchmarks/<name>`` would run it, minus the interpreter start and
    the imports the suite already paid for. ``codes``: the exit codes that are fine (1: a ratio
    missed its target on a tiny run).
    """
    out = tmp_path / "report.json"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{Path(name).stem}", BENCHMARKS / name)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclasses look their module up there
    spec.loader.exec_module(script)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = script.main([*args, "--json", str(out)])
    assert code in codes, stdout.getvalue()
    return (json.loads(out.read_text()) if out.exists() else {}), stdout.getvalue()


def test_bench_runtime_reports_every_row_and_ratio(tmp_path):
    report, stdout = run_script("bench_runtime.py", tmp_path, "--steps", "200", "--streams", "16", codes=(0, 1))
    names = [r["name"] for r in report["rows"]]
    for expected in (
        "StreamingSession.step",
        "bare ort.run loop",
        "StreamingSession.feed(64 steps)",
        "StreamPool.step_many(16 streams)",
        "StreamPool.step_batch(16 streams)",
        "16 solo sessions",
        "bare ort.run on 16 batched states",
        "PyTorch eager step",
        "TorchScript step",
    ):
        assert any(n.startswith(expected) for n in names), (expected, names)
    assert len(report["checks"]) == 7
    assert all(r["p50_us"] > 0 and r["steps_per_s"] > 0 for r in report["rows"])
    assert report["env"]["graph"] == "trace"
    assert "ratio" in stdout and "p50" in stdout


def test_bench_serving_reports_every_path_side_by_side(tmp_path):
    report, stdout = run_script(
        "bench_serving.py",
        tmp_path,
        "--streams",
        "8",
        "--rounds",
        "1",
        "--steps",
        "2",
        "--sizes",
        "1,4",
        "--held",
        "4",
        "--held-seconds",
        "0.2",
        codes=(0, 1),
    )
    names = [r["name"] for r in report["rows"]]
    for expected in (
        "step_batch",
        "asubmit",
        "submit (8 threads)",
        "submit burst",
        "submit_many burst",
        "floor: asyncio futures",
        "floor: 8 threads' futures",
        "in-loop step_batch",
    ):
        assert any(n.startswith(expected) for n in names), (expected, names)
    assert [r["name"] for r in report["scaling"]] == [
        "step_batch, 1 streams",
        "asubmit, 1 streams",
        "step_batch, 4 streams",
        "asubmit, 4 streams",
    ]
    assert all(r["p50_ms"] > 0 and r["steps_per_s"] > 0 for r in report["rows"] + report["scaling"])
    assert [r["streams"] for r in report["held"]["runs"]] == [4]
    assert [r["streams"] for r in report["held_no_model"]["runs"]] == [4]
    assert len(report["checks"]) == 5
    assert set(report["floor_bounds"]) == {"asubmit", "submit"} and all(b > 0 for b in report["floor_bounds"].values())
    assert "throughput / step_batch" in stdout and "p99" in stdout


def test_bench_export_paths_times_every_graph_and_fits_the_scan_cost(tmp_path):
    report, stdout = run_script(
        "bench_export_paths.py", tmp_path, "--only", "lstm 2l 16->64", "--rounds", "1", "--calls", "16"
    )
    rows = {(r["model"], r["path"], r["case"]) for r in report["rows"]}
    plain = "lstm 2l 16->64"
    for path in ("trace", "scan", "scan-legacy"):
        assert {(plain, path, "step"), (plain, path, "chunk")} <= rows
    # the scan export's step graph (what StreamingSession.step runs): step only
    assert (plain, "scan-step", "step") in rows and (plain, "scan-step", "chunk") not in rows
    assert any(r["paths"] == "scan-step/scan" for r in report["ratios"])
    cost = report["scan_cost"]
    assert cost["per_node_us"] > 0 and cost["lean_body_nodes"] > 10 and cost["trace_chunk_us"] > 0
    assert "onnxruntime Scan cost" in stdout


def test_bench_step_graph_times_both_graphs_of_an_export(tmp_path):
    report, stdout = run_script(
        "bench_step_graph.py", tmp_path, "--only", "convlstm 2->4", "--rounds", "1", "--calls", "16"
    )
    rows = report["rows"]
    assert [(r["model"], r["case"]) for r in rows] == [
        ("convlstm 2->4 6x6 k3", "step"),
        ("convlstm 2->4 6x6 k3", "step_many(16)"),
    ]
    assert all(r["step_graph_us"] > 0 and r["main_graph_us"] > 0 and r["ratio"] > 0 for r in rows)
    assert "ratio = step graph / main graph" in stdout


def test_bench_triton_times_the_server_beside_the_pool(tmp_path, capsys):
    """A real tritonserver (python flavour), both strategies, steps and chunks, beside the in-process pool."""
    report, stdout = run_script(
        "bench_triton.py", tmp_path, "--sizes", "1,2", "--requests", "2", "--chunk", "4", codes=(0, 3)
    )
    if not report:  # exit 3: no server here (a run that wrote no report for another reason fails)
        assert "no tritonserver" in capsys.readouterr().err, "bench_triton.py wrote no report"
        if os.environ.get("RNNX_REQUIRE_TRITON") == "1":
            pytest.fail("bench_triton.py found no tritonserver (RNNX_REQUIRE_TRITON=1)")
        pytest.skip("no tritonserver here (make triton-venv)")
    names = {(r["name"], r["sequences"], r["chunk"]) for r in report["rows"]}
    for n in (1, 2):
        for t in (1, 4):
            assert {("triton oldest", n, t), ("triton direct", n, t)} <= names
        assert ("in-process StreamPool.step_batch", n, 1) in names
        assert ("in-process StreamingSession.feed", n, 4) in names
    server_rows = [r for r in report["rows"] if r["name"].startswith("triton")]
    assert all(r["steps_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 and r["compute_us"] > 0 for r in server_rows)
    assert report["server_start_s"] > 0 and "compute us" in stdout


def test_bench_export_time_times_both_paths(tmp_path):
    report, stdout = run_script("bench_export_time.py", tmp_path, "--only", "gru 2l 16->64", "--rounds", "1")
    rows = {r["path"]: r for r in report["rows"]}
    assert set(rows) == {"legacy", "dynamo"} and rows["dynamo"]["strategy"] == "dynamo"
    assert rows["legacy"]["strategy"] == "trace" and all(r["best_s"] > 0 for r in rows.values())
    assert "dynamo / legacy export time" in stdout


def test_bench_batcher_times_two_backlogs_side_by_side(tmp_path):
    report, stdout = run_script("bench_batcher.py", tmp_path, "--steps", "2048", "--rounds", "1", codes=(0, 1))
    assert report["steps"] == 2048 and report["long_s"] > 0 and report["short_s"] > 0
    assert report["ratio"] == report["long_s"] / report["short_s"]
    assert "linear is 4" in stdout


def test_bench_artifacts_steps_every_artifact(tmp_path):
    report, stdout = run_script("bench_artifacts.py", tmp_path, "--rounds", "1", "--calls", "10")
    artifacts = {r["artifact"] for r in report["rows"]}
    assert {"onnx (trace)", "onnx (dynamo)", "pt2"} <= artifacts
    # make test installs rnnx[executorch]; make test-torch on a torch ExecuTorch was not built for has none
    has_executorch = importlib.util.find_spec("executorch") is not None
    assert any(a.startswith("pte (executorch-") for a in artifacts) == has_executorch
    assert {r["call"] for r in report["rows"]} == {"StreamingSession.step", "bare"}
    assert all(r["p50_us"] > 0 for r in report["rows"]) and "/ onnx (trace)" in stdout
