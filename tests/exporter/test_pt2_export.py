"""``--format pt2``: torch.export step (and chunk) programs with the contract inside, streamed by the runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnx.errors import ExportError
from rnnx.exporter import check_parity, read_spec
from rnnx.exporter.bundle import export_files
from rnnx.exporter.pt2_export import chunk_file_name, export_pt2
from rnnx.onnx_tools.spec_io import file_format
from rnnx.runtime import StreamingSession, StreamPool
from tests.programs import STREAM_MODELS, eager_steps, example, export_each
from tests.zoo import make_model

CHUNK_KEPT = {"lstm-2l": True, "gru-2l": True, "convlstm-k3": False, "hand-cell": False}  # dynamic time in torch.export


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return export_each(export_pt2, tmp_path_factory.mktemp("pt2"), "pt2")


@pytest.mark.parametrize("name", list(STREAM_MODELS))
def test_streams_equal_to_eager_at_two_batch_sizes(programs, name: str) -> None:
    model, result = programs[name]
    assert file_format(result.path) == "pt2" and read_spec(result.path).exporter == "torch.export"
    for batch in (1, 3):  # the example was batch 2
        x = example(model, batch, 6)
        want = eager_steps(model, x)
        with StreamingSession(result.path, batch_size=batch) as sess:
            steps = np.stack([sess.step(x[:, t].numpy()) for t in range(x.shape[1])], 1)
            sess.reset()
            chunk = sess.feed(x.numpy())
        np.testing.assert_allclose(steps, want, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(chunk, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(STREAM_MODELS))
def test_parity_check_and_chunk_program(programs, name: str) -> None:
    model, result = programs[name]
    report = check_parity(model, result.path)
    assert report.ok, report.table()
    chunk = result.path.with_name(chunk_file_name(result.path))
    assert [a.strategy for a in result.attempts] == ["step", "chunk"]
    assert chunk.is_file() == result.attempts[1].ok == CHUNK_KEPT[name], result.attempts[1].reason
    if not chunk.is_file():
        assert "time" in result.attempts[1].reason  # why: the time axis would be frozen


def test_pool_steps_streams_of_a_pt2(programs) -> None:
    model, result = programs["gru-2l"]
    x = example(model, 3, 4)
    want = eager_steps(model, x)
    with StreamPool(result.path, max_batch=4) as pool:
        for k in range(3):
            pool.open(k)
        got = np.stack([pool.step_batch([0, 1, 2], x[:, t].numpy()).array for t in range(4)], 1)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_loads_with_plain_torch(programs, tmp_path) -> None:
    """A user with only torch: torch.export.load, the spec from extra_files, one step called by hand."""
    model, result = programs["lstm-2l"]
    code = (
        "import json, sys, torch\n"
        "extra = {'rnnx.spec': ''}\n"
        "step = torch.export.load(sys.argv[1], extra_files=extra).module()\n"
        "spec = json.loads(extra['rnnx.spec'])\n"
        "x = torch.zeros(4, spec['input']['shape'][2])\n"
        "state = [torch.zeros([4 if d == 'batch' else d for d in s['shape']]) for s in spec['state']]\n"
        "y, *new = step(x, *state)\n"
        "print(json.dumps({'y': list(y.shape), 'rnnx': 'rnnx' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(result.path)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"y": [4, read_spec(result.path).output.shape[2]], "rnnx": False}


def test_bidirectional_model_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"step program needs a streamable model"):
        export_pt2(make_model("gru-bi"), tmp_path / "m.pt2")


def test_export_files_writes_pt2(tmp_path) -> None:
    files = export_files(make_model("lstm-1l"), tmp_path, formats=("pt2",))
    assert [(f.format, f.result.path.name) for f in files] == [("pt2", "model.pt2")]
    assert files[0].report.ok and (tmp_path / "model.chunk.pt2").is_file()
    torch.export.load(str(tmp_path / "model.chunk.pt2"))  # the chunk program loads too
