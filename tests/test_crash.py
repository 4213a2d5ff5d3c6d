"""Kill -9 at random points of writing: every artifact is the old one or the new one, bit for bit.

For each kind (export with its step graph, quantize with its step graph, a Triton
repository, a state file), ``tests/crash_driver.py`` writes the old artifact A, then starts
writing B over it and is SIGKILLed at a random line of the file-writing code (temporaries,
fsyncs, renames, the commit, the cleanup); at least 20 kills per kind. After every kill the
artifact must open and equal A or B exactly: each file the reader uses, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnx.onnx_tools.spec_io import read_spec

KILLS = 20
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver forks its writers (POSIX)")


def _sources(root: Path, kind: str) -> None:
    """Two fp32 models A and B (other weights): Scan LSTMs with a step graph for quantize, GRUs for Triton."""
    import torch

    from rnnx.exporter import export_onnx
    from tests.zoo import TINY, example_input

    (root / "sources").mkdir(parents=True)
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        model = TINY["lstm-1l" if kind == "quantize" else "gru-1l"]()
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.3)
        if kind == "quantize":
            export_onnx(
                model, root / "sources" / f"{name}.onnx", example_input=example_input(model, 2, 5), strategy="scan"
            )
        else:
            export_onnx(model, root / "sources" / f"{name}.onnx")


def _content(kind: str, folder: Path) -> dict[str, bytes]:
    """The bytes a reader of the artifact in ``folder`` uses, by role."""
    if kind == "state":
        return {"state": (folder / "s.npz").read_bytes()}
    if kind == "triton":
        model = folder / "repo" / "m"
        return {"config": (model / "config.pbtxt").read_bytes(), "graph": (model / "1" / "model.onnx").read_bytes()}
    path = folder / ("m.onnx" if kind == "export" else "q.onnx")
    spec = read_spec(path)
    assert spec.step_graph is not None, f"{path}: no step graph"
    return {
        "model": _without_member_name(path.read_bytes(), spec.step_graph.file),
        "step": (path.parent / spec.step_graph.file).read_bytes(),
    }


def _without_member_name(model: bytes, name: str) -> bytes:
    """The model file's bytes with its step graph's file name blanked: a re-export may record
    ``m.step.<sha12>.onnx`` where a fresh one records ``m.step.onnx`` (same content, same hash)."""
    import onnx

    proto = onnx.load_from_string(model)
    for prop in proto.metadata_props:
        prop.value = prop.value.replace(json.dumps(name), '"<step graph>"')
    return proto.SerializeToString()


def _opens(kind: str, folder: Path) -> None:
    if kind == "state":
        from rnnx.runtime.state_io import load_state_file

        assert sorted(load_state_file(folder / "s.npz")) == ["c", "h"]
    elif kind == "triton":
        import onnxruntime as ort

        ort.InferenceSession(str(folder / "repo" / "m" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    else:
        from rnnx.runtime import StreamingSession

        with StreamingSession(folder / ("m.onnx" if kind == "export" else "q.onnx")) as sess:
            assert sess.step_graph is not None


@pytest.mark.parametrize("kind", ["state", "triton", "quantize", "export"])
def test_a_kill_at_any_point_leaves_the_old_or_the_new_artifact(tmp_path: Path, kind: str) -> None:
    if kind in ("quantize", "triton"):
        _sources(tmp_path, kind)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", kind, str(tmp_path), str(KILLS), "16"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["kills"] >= KILLS, summary
    old, new = _content(kind, tmp_path / "refA"), _content(kind, tmp_path / "refB")
    assert old != new
    seen = {"old": 0, "new": 0}
    for folder in sorted(tmp_path.glob("r*")):
        if not (folder / "killed").exists():
            continue
        got = _content(kind, folder)
        assert got in (old, new), f"{folder.name} (killed at line {(folder / 'killed').read_text()}): a mix"
        seen["old" if got == old else "new"] += 1
        _opens(kind, folder)
    print(
        f"{kind}: {summary['kills']} kills in {summary['rounds']} rounds over {summary['lines']} lines: "
        f"{seen['old']} old, {seen['new']} new"
    )
    assert seen["old"] > 0 and seen["new"] > 0, seen  # kills landed before and after the commit
