"""examples/ort_client.py: the README's dependency-free client streams an exported model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnx.exporter import export_onnx
from tests.zoo import TINY

CLIENT = Path(__file__).resolve().parents[1] / "examples" / "ort_client.py"


def test_client_imports_only_onnxruntime_numpy_json() -> None:
    imports = {line.split()[1] for line in CLIENT.read_text().splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"json", "sys", "numpy", "onnxruntime"}


@pytest.mark.parametrize("name", ["lstm-2l-proj", "convlstm-k3", "gru-1l"])
def test_client_streams_like_eager_full_sequence(tmp_path: Path, name: str) -> None:
    model = TINY[name]()
    path = export_onnx(model, tmp_path / "m.onnx").path
    x = model.example_input(1, 12)
    y_ref, _ = model(x, model.init_state(1))
    np.save(tmp_path / "x.npy", x[0].numpy())
    argv = [str(CLIENT), str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    code = f"import sys; sys.modules['rnnx'] = None; sys.argv = {argv!r}; exec(open({str(CLIENT)!r}).read())"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == tuple(y_ref.shape[1:])
    np.testing.assert_allclose(y, y_ref[0].detach().numpy(), atol=1e-5, rtol=0)
