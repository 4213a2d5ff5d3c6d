"""``rnnx bench``: the side-by-side table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import export_onnx
from rnnx.models import save
from tests.commands import user_error
from tests.runtime.conftest import FOREIGN_K, foreign  # noqa: F401
from tests.zoo import TINY


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    model = TINY["gru-1l"]()
    root = tmp_path_factory.mktemp("bench")
    export_onnx(model, root / "gru.onnx")
    save(model, root / "gru.safetensors")
    return root


def test_bench_table_and_json_with_torch_rows(gru):
    res = CliRunner().invoke(
        main,
        [
            "bench",
            str(gru / "gru.onnx"),
            "--streams",
            "4",
            "--steps",
            "30",
            "--json",
            str(gru / "b.json"),
            "--torch",
            str(gru / "gru.safetensors"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "StreamingSession.step" in res.output and "PyTorch eager step" in res.output
    data = json.loads((gru / "b.json").read_text())
    names = [r["name"] for r in data["rows"]]
    assert "StreamPool.step_many(4 streams)" in names and "TorchScript step" in names
    assert all(r["p50_us"] > 0 and r["steps_per_s"] > 0 for r in data["rows"])
    assert {c["name"] for c in data["checks"]} >= {"pool throughput / bare batched ort.run"}


def test_bench_without_torch_flag_does_not_import_torch(gru):
    code = (
        f"import sys; from rnnx.cli import main\n"
        f"main(['bench', {str(gru / 'gru.onnx')!r}, '--streams', '2', '--steps', '10'], standalone_mode=False)\n"
        f"sys.exit('torch imported' if 'torch' in sys.modules else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_bench_missing_model_is_one_line():
    res = CliRunner().invoke(main, ["bench", "/nonexistent/model.onnx"])
    assert res.exit_code == 2 and "Error: model: expected an ONNX file" in res.output


def test_bench_foreign_model_with_state_map_constant_and_context(foreign):
    res = CliRunner().invoke(
        main,
        [
            "bench",
            str(foreign[0]),
            "--streams",
            "2",
            "--steps",
            "20",
            "--state-map",
            "state=stateN",
            "--constant",
            "sr=16000",
            "--context",
            str(FOREIGN_K),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "StreamingSession.step" in res.output and "StreamPool.step_many(2 streams)" in res.output
    assert "bare ort.run loop" in res.output


def test_bench_torch_refuses_a_checkpoint_of_another_model(gru, tmp_path):
    """Speed-ups against a different model would be meaningless: refused, one line."""
    save(TINY["gru-nobias"](), tmp_path / "other.safetensors")  # same shapes, another model
    res = CliRunner().invoke(
        main,
        [
            "bench",
            str(gru / "gru.onnx"),
            "--streams",
            "2",
            "--steps",
            "10",
            "--torch",
            str(tmp_path / "other.safetensors"),
        ],
    )
    line = user_error(res)
    assert (
        "--torch" in line
        and "not the checkpoint MODEL was exported from" in line
        and "bias: model False, file True" in line
    )


def test_bench_threads_has_an_upper_bound(gru):
    """--threads 100000 segfaulted onnxruntime."""
    res = CliRunner().invoke(main, ["bench", str(gru / "gru.onnx"), "--threads", "100000", "--steps", "10"])
    assert "threads: expected an int from 0 to 1024 or None, got 100000" in user_error(res)


def test_bench_torch_takes_a_factory_with_weights_and_targets_are_opt_in(gru, tmp_path):
    import torch

    (tmp_path / "mine.py").write_text("from tests.zoo import TINY\n\n\ndef make():\n    return TINY['gru-1l']()\n")
    model = TINY["gru-1l"]()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    export_onnx(model, tmp_path / "m.onnx")
    args = ["bench", str(tmp_path / "m.onnx"), "--streams", "2", "--steps", "20"]
    res = CliRunner().invoke(
        main, [*args, "--torch", f"{tmp_path / 'mine.py'}:make", "--weights", str(tmp_path / "w.pt")]
    )
    assert res.exit_code == 0, res.output
    assert "PyTorch eager step" in res.stdout and "target" not in res.stdout and " NO" not in res.stdout
    with_targets = CliRunner().invoke(main, [*args, "--targets"])
    assert with_targets.exit_code == 0 and "target" in with_targets.stdout
    assert "--weights: only with --torch" in user_error(CliRunner().invoke(main, [*args, "--weights", "w.pt"]))
