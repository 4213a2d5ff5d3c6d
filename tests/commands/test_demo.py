"""``rnnx demo`` end to end in quick mode: train, export, check, stream, bench, report."""

from __future__ import annotations

from click.testing import CliRunner

from rnnx.cli import main


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for stage in range(1, 7):
        assert f"[{stage}/6]" in res.output
    assert "onnx: ok" in res.output
    assert "torchscript" not in res.output.lower() and not (out / "run" / "model.pt").exists()  # opt-in only
    report = (out / "report.md").read_text()
    assert "| runtime vs eager | max abs diff" in report and "onnxruntime" in report
    for name in ("loss.png", "predictions.png", "streamed.png", "run/model.onnx", "run/model.safetensors"):
        assert (out / name).stat().st_size > 0, name
