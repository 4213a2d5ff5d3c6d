"""graph: structural checks and clean-up of candidate graphs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from rnnx.errors import ExportError, ModelFileError
from rnnx.onnx_tools.graph import check_io, finalize, load_onnx, remove_unused_initializers, unused_initializers
from rnnx.spec import IOSpec, ModelSpec, StateSpec

SPEC = ModelSpec(
    IOSpec("x", ("batch", "time", 2), batch_axis=0, time_axis=1),
    IOSpec("y", ("batch", "time", 2), batch_axis=0, time_axis=1),
    (StateSpec("h", ("batch", 2), input="h_in", output="h_out"),),
)


def _model(x_batch: int | str = "batch", extra_init: bool = True) -> onnx.ModelProto:
    f = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("Add", ["x", "w"], ["y"]), helper.make_node("Identity", ["h_in"], ["h_out"])]
    inits = [numpy_helper.from_array(np.ones(2, np.float32), "w")]
    if extra_init:
        inits.append(numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", f, [x_batch, "time", 2]),
            helper.make_tensor_value_info("h_in", f, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info("y", f, [x_batch, "time", 2]),
            helper.make_tensor_value_info("h_out", f, ["batch", 2]),
        ],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_unused_initializers_are_removed() -> None:
    model = _model()
    assert unused_initializers(model.graph) == ["unused"]
    assert remove_unused_initializers(model.graph) == 1
    assert [t.name for t in model.graph.initializer] == ["w"]


def test_initializers_used_inside_subgraphs_are_kept() -> None:
    model = _model(extra_init=False)
    body = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["o"])],
        "body",
        [],
        [helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, [2])],
    )
    model.graph.node.append(helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body))
    assert unused_initializers(model.graph) == []


def test_fixed_batch_axis_is_rejected() -> None:
    with pytest.raises(ExportError, match=r"x: axis 0 \(batch\) is fixed to 2 in the graph"):
        check_io(_model(x_batch=2).graph, SPEC)


def test_missing_output_name_is_rejected() -> None:
    model = _model()
    model.graph.output[1].name = "state"
    with pytest.raises(ExportError, match=r"graph has no input/output 'h_out'"):
        check_io(model.graph, SPEC)


def test_finalize_stores_the_spec_and_checks_the_graph() -> None:
    model = finalize(_model(), SPEC)
    meta = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(meta["rnnx.spec"]) == SPEC
    assert [t.name for t in model.graph.initializer] == ["w"]


@pytest.mark.parametrize(("what", "expected"), [("missing", "no file"), ("folder", "a directory"), ("fifo", "a FIFO")])
def test_the_onnx_tools_name_a_path_that_is_not_a_file(tmp_path: Path, what: str, expected: str) -> None:
    """A missing file or a folder raised OSError from onnx.load; a FIFO blocked the call forever."""
    from rnnx.onnx_tools import export_triton, make_stateful
    from rnnx.onnx_tools.ort_format import to_ort

    path = tmp_path / "model.onnx"
    if what == "folder":
        path.mkdir()
    if what == "fifo":
        os.mkfifo(path)
    with pytest.raises(
        ModelFileError, match=rf"^{re.escape(str(path))}: expected an ONNX file, got {re.escape(expected)}"
    ):
        load_onnx(path)
    for tool in (
        lambda: make_stateful(path, tmp_path / "out.onnx"),
        lambda: export_triton(path, tmp_path / "repo"),
        lambda: to_ort(path, tmp_path / "out.ort"),
    ):
        with pytest.raises(ModelFileError, match=re.escape(str(path))):
            tool()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if what == "missing" else ["model.onnx"])
