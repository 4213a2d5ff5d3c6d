"""rnnx.runtime.precision: the session options a file's precision needs, read before loading."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

from rnnx.runtime import RuntimeOptions, StreamingSession
from rnnx.runtime.backend import session_options
from rnnx.runtime.precision import file_precision, onnx_metadata
from rnnx.spec import METADATA_KEY

LEVEL = ort.GraphOptimizationLevel


def test_metadata_reader_matches_onnx(onnx_file) -> None:
    path, _ = onnx_file("lstm-2l")
    want = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert onnx_metadata(path) == want and METADATA_KEY in want
    assert file_precision(path) == "fp32"


def test_metadata_reader_returns_nothing_for_non_onnx(tmp_path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xff\xff\xff\x0fnot protobuf")
    assert onnx_metadata(junk) == {} and file_precision(junk) == "fp32"
    assert onnx_metadata(tmp_path / "missing.onnx") == {}


def test_fp32_files_keep_the_callers_options() -> None:
    so = session_options(RuntimeOptions(threads=2, optimization="basic"), "fp32")
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_BASIC and so.intra_op_num_threads == 2
    assert session_options(RuntimeOptions(), "fp32").graph_optimization_level == LEVEL.ORT_ENABLE_ALL


def test_int8_folds_stored_int8_weights_at_load() -> None:
    so = session_options(RuntimeOptions(), "int8")
    assert so.get_session_config_entry("session.disable_quant_qdq") == "1"
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_ALL


def test_fp16_caps_the_optimisation_level_and_keeps_the_rest() -> None:
    so = session_options(RuntimeOptions(threads=3), "fp16")
    assert so.graph_optimization_level == LEVEL.ORT_ENABLE_EXTENDED and so.intra_op_num_threads == 3
    low = session_options(RuntimeOptions(optimization="basic"), "fp16")  # already low enough: left alone
    assert low.graph_optimization_level == LEVEL.ORT_ENABLE_BASIC


def test_users_config_entries_and_log_level_reach_onnxruntime() -> None:
    so = session_options(RuntimeOptions(log_level="error", session_config=(("session.intra_op.allow_spinning", "0"),)))
    assert so.log_severity_level == 3
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_fp16_file_loads_with_default_options(onnx_file, tmp_path) -> None:
    """Without the cap onnxruntime crashes the process while creating this session."""
    pytest.importorskip("onnxconverter_common")
    from rnnx.exporter import quantize

    path, _ = onnx_file("lstm-2l")
    q = quantize(path, tmp_path / "m.fp16.onnx", precision="fp16")
    assert file_precision(q.path) == "fp16"
    sess = StreamingSession(q.path)  # default level "all": lowered for the fp16 file
    assert sess.spec.precision == "fp16"
    assert sess.backend.session.get_session_options().graph_optimization_level == LEVEL.ORT_ENABLE_EXTENDED
