"""``--format pte``: ExecuTorch step programs (explicit state, contract inside) streamed by the runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip(
    "executorch.exir", reason="ExecuTorch is the optional extra rnnx[executorch] (make test installs it)"
)

from rnnx.errors import ExportError, ShapeError  # noqa: E402
from rnnx.exporter import check_parity, read_spec  # noqa: E402
from rnnx.exporter.bundle import export_files  # noqa: E402
from rnnx.exporter.pte_export import MAX_BATCH, _chunk, _split, export_pte  # noqa: E402
from rnnx.onnx_tools.spec_io import file_format  # noqa: E402
from rnnx.runtime import StreamingSession, StreamPool  # noqa: E402
from tests.programs import STREAM_MODELS, eager_steps, example, export_each  # noqa: E402
from tests.zoo import make_model  # noqa: E402


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return export_each(export_pte, tmp_path_factory.mktemp("pte"), "pte")


@pytest.mark.parametrize("name", list(STREAM_MODELS))
def test_streams_equal_to_eager_at_two_batch_sizes(programs, name: str) -> None:
    """Batch 1 and 3 (the example was 2): a dropped dynamic batch fails here."""
    model, result = programs[name]
    assert file_format(result.path) == "pte" and read_spec(result.path).exporter == result.strategy
    assert result.strategy == "executorch-xnnpack", result.attempts
    for batch in (1, 3):
        x = example(model, batch, 6)
        want = eager_steps(model, x)
        with StreamingSession(result.path, batch_size=batch) as sess:
            steps = np.stack([sess.step(x[:, t].numpy()) for t in range(x.shape[1])], 1)
            snap = sess.get_state()
            sess.reset()
            chunk = sess.feed(x.numpy())
            assert all(np.allclose(snap[k], v, atol=1e-5) for k, v in sess.get_state().items())
        np.testing.assert_allclose(steps, want, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(chunk, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(STREAM_MODELS))
def test_parity_check(programs, name: str) -> None:
    model, result = programs[name]
    report = check_parity(model, result.path)
    assert report.ok, report.table()


def test_pool_and_batch_bound(programs) -> None:
    model, result = programs["hand-cell"]
    x = example(model, 3, 4)
    want = eager_steps(model, x)
    with StreamPool(result.path, max_batch=4) as pool:
        for k in range(3):
            pool.open(k)
        got = np.stack([pool.step_batch([0, 1, 2], x[:, t].numpy()).array for t in range(4)], 1)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    with StreamingSession(result.path, batch_size=MAX_BATCH + 1) as sess:
        with pytest.raises(ShapeError, match=rf"batch of at most {MAX_BATCH}.*got {MAX_BATCH + 1}"):
            sess.feed(np.zeros((MAX_BATCH + 1, 1, 3), np.float32))


def test_slicing_rewrite_matches_chunk_and_split() -> None:
    import torch

    t = torch.arange(2 * 11, dtype=torch.float32).reshape(2, 11)
    for chunks in (1, 3, 4, 11):
        assert [p.tolist() for p in _chunk(t, chunks, 1)] == [p.tolist() for p in torch.chunk(t, chunks, 1)]
    for size in (3, [4, 7], 11):
        assert [p.tolist() for p in _split(t, size, 1)] == [p.tolist() for p in t.split(size, 1)]


def test_bidirectional_model_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"step program needs a streamable model"):
        export_pte(make_model("gru-bi"), tmp_path / "m.pte")


def test_export_files_and_the_runtime_import_nothing_until_a_pte_opens(tmp_path) -> None:
    files = export_files(make_model("lstm-1l"), tmp_path, formats=("pte",))
    assert [(f.format, f.result.path.name) for f in files] == [("pte", "model.pte")] and files[0].report.ok
    code = (
        "import sys; import rnnx.runtime\n"
        "assert 'torch' not in sys.modules and 'executorch' not in sys.modules\n"
        "s = rnnx.runtime.StreamingSession(sys.argv[1]); s.step(__import__('numpy').zeros((1, 5), 'float32'))\n"
        "print('executorch.runtime' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.pte")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
