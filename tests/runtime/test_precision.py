"""rnnx.runtime.precision: the session options a file's precision needs, read before loading."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

from rnnx.runtime import StreamingSession
from rnnx.runtime.precision import file_precision, onnx_metadata, session_options_for
from rnnx.spec import METADATA_KEY

LEVEL = ort.GraphOptimizationLevel


def test_metadata_reader_matches_onnx(exported) -> None:
    path, _ = exported("lstm-2l")
    want = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert onnx_metadata(path) == want and METADATA_KEY in want
    assert file_precision(path) == "fp32"


def test_metadata_reader_returns_nothing_for_non_onnx(tmp_path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xff\xff\xff\x0fnot protobuf")
    assert onnx_metadata(junk) == {} and file_precision(junk) == "fp32"
    assert onnx_metadata(tmp_path / "missing.onnx") == {}


def test_fp32_files_keep_the_callers_options() -> None:
    assert session_options_for("fp32", None) is None
    so = ort.SessionOptions()
    assert session_options_for("fp32", so) is so
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_ALL


def test_int8_folds_stored_int8_weights_at_load() -> None:
    so = ort.SessionOptions()
    assert session_options_for("int8", so) is so
    assert so.get_session_config_entry("session.disable_quant_qdq") == "1"
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_ALL
    assert session_options_for("int8", so) is so  # applying twice is harmless


def test_fp16_caps_the_optimisation_level_and_keeps_the_rest() -> None:
    fresh = session_options_for("fp16", None)
    assert fresh.graph_optimization_level == LEVEL.ORT_ENABLE_EXTENDED
    so = ort.SessionOptions()
    so.intra_op_num_threads = 3
    assert session_options_for("fp16", so) is so
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_EXTENDED and so.intra_op_num_threads == 3
    so.graph_optimization_level = LEVEL.ORT_ENABLE_BASIC  # already low enough: left alone
    assert session_options_for("fp16", so).graph_optimization_level == LEVEL.ORT_ENABLE_BASIC


def test_fp16_file_loads_with_default_options(exported, tmp_path) -> None:
    """Without the cap onnxruntime crashes the process while creating this session."""
    pytest.importorskip("onnxconverter_common")
    from rnnx.exporter import quantize

    path, _ = exported("lstm-2l")
    q = quantize(path, tmp_path / "m.fp16.onnx", precision="fp16")
    assert file_precision(q.path) == "fp16"
    so = ort.SessionOptions()  # default level: ORT_ENABLE_ALL
    sess = StreamingSession(q.path, session_options=so)
    assert sess.spec.precision == "fp16" and so.graph_optimization_level == LEVEL.ORT_ENABLE_EXTENDED
