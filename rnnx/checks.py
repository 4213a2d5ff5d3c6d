"""Checks of user options, one place for every layer: one mistake, one error type, one message.

An option that is out of range or of the wrong type is a :class:`~rnnx.errors.ConfigError`
naming the option, the expected and the received value, wherever it is passed (a session,
a pool, the CLI, an exporter)::

    >>> check_int("batch_size", 0, minimum=1)
    Traceback (most recent call last):
    ...
    rnnx.errors.ConfigError: batch_size: expected an int >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, overload

from rnnx.errors import ConfigError


@overload
def check_int(
    name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, optional: Literal[False] = False
) -> int: ...


@overload
def check_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, optional: bool) -> int | None: ...


def check_int(
    name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, optional: bool = False
) -> int | None:
    """``value`` when it is an int (not a bool) in ``[minimum, maximum]``; None passes when ``optional``.

    numpy integers are accepted and returned as ``int``.

    Raises:
        ConfigError: naming ``name``, the range and ``value``.
    """
    if value is None and optional:
        return None
    is_int = isinstance(value, int) or type(value).__module__ == "numpy" and hasattr(value, "__index__")
    if isinstance(value, bool) or not is_int or value < minimum or (maximum is not None and value > maximum):
        expected = f"an int >= {minimum}" if maximum is None else f"an int from {minimum} to {maximum}"
        raise ConfigError(f"{name}: expected {expected}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    """``value`` as a float when it is a finite real number (not a bool) in ``[minimum, maximum]``.

    Raises:
        ConfigError: naming ``name``, the range and ``value``.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and minimum <= value <= maximum)
    ):
        bound = f">= {minimum:g}" if maximum == math.inf else f"from {minimum:g} to {maximum:g}"
        raise ConfigError(f"{name}: expected a number {bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``.

    Raises:
        ConfigError: naming ``name``, every valid choice and ``value``.
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


__all__ = ["check_choice", "check_int", "check_number"]
