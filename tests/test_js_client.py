"""examples/js: the JavaScript client reads rnnx.spec from the ONNX bytes and streams like Python.

The metadata reader needs only ``node``; the streaming test also needs the npm package
``onnxruntime-node`` resolvable by node (e.g. ``npm install --prefix ~/.cache/rnnx-js
onnxruntime-node --onnxruntime-node-install=skip`` and ``NODE_PATH=~/.cache/rnnx-js/node_modules``).
Nothing is downloaded at test time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from rnnx.exporter import export_onnx, quantize, read_spec
from rnnx.runtime import StreamingSession
from tests.zoo import TINY

JS = Path(__file__).resolve().parents[1] / "examples" / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _node(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NODE, "-e", script, *args], capture_output=True, text=True, timeout=timeout, cwd=JS, env=os.environ.copy()
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32, int8 and fp16 files of a tiny LSTM, ConvLSTM and GRU."""
    pytest.importorskip("onnxconverter_common")
    root = tmp_path_factory.mktemp("js")
    out = {}
    for name in ("lstm-2l", "convlstm-k3", "gru-1l"):
        src = export_onnx(TINY[name](), root / f"{name}.onnx").path
        out[f"{name}/fp32"] = src
        for p in ("int8", "fp16"):
            out[f"{name}/{p}"] = quantize(src, root / f"{name}.{p}.onnx", precision=p).path
    return out


READ = (
    "const fs = require('fs'); const m = require('./rnnx_spec.js');"
    "const b = fs.readFileSync(process.argv[1]);"
    "process.stdout.write(JSON.stringify({props: m.readMetadataProps(b), spec: m.readSpec(b),"
    " options: m.sessionOptionsFor(m.readSpec(b))}));"
)


@pytest.mark.parametrize("key", ["lstm-2l/fp32", "lstm-2l/int8", "convlstm-k3/fp16"])
def test_js_metadata_reader_matches_python(files, key: str) -> None:
    res = _node(READ, str(files[key]))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["props"] == {p.key: p.value for p in onnx.load(str(files[key])).metadata_props}
    assert got["spec"] == read_spec(files[key]).to_dict()
    want = {
        "fp32": {},
        "fp16": {"graphOptimizationLevel": "extended"},
        "int8": {"extra": {"session": {"disable_quant_qdq": "1"}}},
    }
    assert got["options"] == want[key.split("/")[1]]


def test_js_metadata_reader_rejects_foreign_and_corrupt_files(tmp_path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # a length-delimited field longer than the file
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString())
    for path, message in ((junk, "truncated protobuf field"), (foreign, "no 'rnnx.spec' metadata")):
        res = _node("require('./rnnx_spec.js').readSpec(require('fs').readFileSync(process.argv[1]))", str(path))
        assert res.returncode != 0 and message in res.stderr, res.stderr


def _has_onnxruntime_node() -> bool:
    return NODE is not None and _node("require.resolve('onnxruntime-node')").returncode == 0


@pytest.mark.skipif(
    not _has_onnxruntime_node(), reason="npm package onnxruntime-node is not resolvable by node (see module docstring)"
)
@pytest.mark.parametrize("key", ["lstm-2l/fp32", "lstm-2l/int8", "lstm-2l/fp16", "convlstm-k3/int8", "gru-1l/int8"])
def test_js_client_streams_like_python(files, tmp_path, key: str) -> None:
    spec = read_spec(files[key])
    x = np.random.default_rng(0).standard_normal((6, *spec.input.feature_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run(
        [NODE, str(JS / "stream.js"), str(files[key]), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert res.returncode == 0, res.stderr
    ys = [np.asarray(json.loads(line)["y"]) for line in res.stdout.splitlines()]
    state = json.loads(res.stderr.strip().splitlines()[-1])["state"]
    sess = StreamingSession(files[key])
    want = [sess.step(x[t][None]).ravel() for t in range(len(x))]
    np.testing.assert_allclose(np.stack(ys), np.stack(want), atol=1e-4, rtol=1e-4)
    for name, value in sess.get_state().items():
        np.testing.assert_allclose(np.asarray(state[name]), value.ravel(), atol=1e-4, rtol=1e-4)
