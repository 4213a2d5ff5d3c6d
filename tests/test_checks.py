"""rnnx.checks: one option checker for every layer, one error type (ConfigError), one message shape
(the option, what was expected, what was received)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from rnnx.checks import check_choice, check_int, check_number
from rnnx.errors import ConfigError


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (0, {}, "n: expected an int >= 1, got 0"),
        (True, {}, "n: expected an int >= 1, got True"),
        (2.0, {}, "n: expected an int >= 1, got 2.0"),
        ("3", {}, "n: expected an int >= 1, got '3'"),
        (None, {}, "n: expected an int >= 1, got None"),
        (-1, {"minimum": 0}, "n: expected an int >= 0, got -1"),
        (9, {"maximum": 8}, "n: expected an int from 1 to 8, got 9"),
        (0, {"optional": True}, "n: expected an int >= 1 or None, got 0"),
    ],
    ids=["below", "bool", "float", "string", "none", "minimum-0", "above-maximum", "optional"],
)
def test_check_int_refuses_with_a_config_error_naming_the_option(value: Any, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_int("n", value, **kwargs)
    assert str(caught.value) == message


def test_check_int_accepts_ints_numpy_ints_and_none_when_optional() -> None:
    assert check_int("n", 1) == 1 and check_int("n", 8, maximum=8) == 8 and check_int("n", 0, minimum=0) == 0
    got = check_int("n", np.int64(4))
    assert got == 4 and type(got) is int
    assert check_int("n", None, optional=True) is None


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (-0.5, {}, "x: expected a number >= 0, got -0.5"),
        (0.0, {"open_minimum": True}, "x: expected a number > 0, got 0.0"),
        (math.nan, {}, "x: expected a number >= 0, got nan"),
        (math.inf, {}, "x: expected a number >= 0, got inf"),
        (False, {}, "x: expected a number >= 0, got False"),
        ("1", {}, "x: expected a number >= 0, got '1'"),
        (1.5, {"maximum": 1.0}, "x: expected a number from 0 to 1, got 1.5"),
        (1.0, {"maximum": 1.0, "open_maximum": True}, "x: expected a number in [0, 1), got 1.0"),
        (0.0, {"maximum": 1.0, "open_minimum": True}, "x: expected a number in (0, 1], got 0.0"),
    ],
    ids=["negative", "open-minimum", "nan", "inf", "bool", "string", "above", "open-maximum", "open-minimum-range"],
)
def test_check_number_refuses_with_a_config_error_naming_the_option(value: Any, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_number("x", value, **kwargs)
    assert str(caught.value) == message


def test_check_number_accepts_the_ends_it_includes() -> None:
    assert check_number("x", 0) == 0.0 and type(check_number("x", 0)) is float
    assert check_number("x", 1.0, maximum=1.0) == 1.0
    assert check_number("x", 1e-9, open_minimum=True) == 1e-9
    assert check_number("x", 0.999, maximum=1.0, open_maximum=True) == 0.999


def test_check_choice_lists_every_valid_choice() -> None:
    assert check_choice("mode", "b", ("a", "b")) == "b"
    for bad in ("c", None, 1):
        with pytest.raises(ConfigError) as caught:
            check_choice("mode", bad, ("a", "b"))
        assert str(caught.value) == f"mode: expected one of a, b, got {bad!r}"


def test_config_error_is_a_value_error() -> None:
    """Callers catching ValueError (the built-in for a bad argument) catch these too."""
    with pytest.raises(ValueError):
        check_int("n", 0)
