"""A backend's report of a graph tensor, and how it is described."""

from rnnx.runtime.tensor_info import TensorInfo
from rnnx.spec import StateSpec


def test_a_contract_tensor_reports_under_its_graph_name_with_the_backend_type():
    state = StateSpec("h", (2, "batch", 8), input="h_in", output="h_out")
    info = TensorInfo.of(state, state.input)
    assert info == TensorInfo("h_in", (2, "batch", 8), "float32", "tensor(float)")


def test_description_row_marks_unknown_dims_and_unsupported_types():
    known = TensorInfo("x", ("batch", None, 3), "float32", "tensor(float)")
    odd = TensorInfo("z", (4,), None, "tensor(complex64)")
    assert known.to_dict() == {"name": "x", "shape": ["batch", "?", 3], "dtype": "float32"}
    assert odd.to_dict() == {"name": "z", "shape": [4], "dtype": "tensor(complex64)"}
