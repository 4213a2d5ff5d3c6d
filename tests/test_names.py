"""``rnnx.names``: one rule for names that become files, folders or archive entries."""

from __future__ import annotations

import pytest

from rnnx.errors import SpecError
from rnnx.names import check_name, name_problem

GOOD = ["h", "c_0", "layer.1.h", "encoder.onnx", "h:0", "état", "a b", "x" * 255]
BAD = [
    "",
    ".",
    "..",
    "../../x",
    "a/b",
    "a\\b",
    "x\n",
    "nul\0",
    "tab\t",
    "del\x7f",
    "x" * 256,
    "é" * 128,
    None,
    3,
    ["h"],
]


@pytest.mark.parametrize("name", GOOD, ids=range(len(GOOD)))
def test_plain_names_pass(name) -> None:
    assert name_problem(name) is None and check_name(name, "n") == name


@pytest.mark.parametrize("name", BAD, ids=range(len(BAD)))
def test_names_that_could_leave_their_folder_or_hide_bytes_are_refused(name) -> None:
    with pytest.raises(SpecError, match=r"^triton model name: expected a plain name.*got") as info:
        check_name(name, "triton model name", SpecError)
    assert name_problem(name) in str(info.value)
