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


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float = 0.0,
    maximum: float = math.inf,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """``value`` as a float when it is a finite real number (not a bool) in ``[minimum, maximum]``
    (``open_minimum``/``open_maximum``: that end excluded, e.g. a learning rate > 0).

    Raises:
        ConfigError: naming ``name``, the range and ``value``.
    """
    real = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    above = real and (value > minimum if open_minimum else value >= minimum)
    below = real and (value < maximum if open_maximum else value <= maximum)
    if not (real and above and below):
        raise ConfigError(
            f"{name}: expected a number {_range(minimum, maximum, open_minimum, open_maximum)}, got {value!r}"
        )
    return float(value)


def _range(minimum: float, maximum: float, open_minimum: bool, open_maximum: bool) -> str:
    """``>= 0``, ``> 0``, ``from 0 to 5`` or ``in [0, 1)``."""
    if maximum == math.inf:
        return f"{'>' if open_minimum else '>='} {minimum:g}"
    if not open_minimum and not open_maximum:
        return f"from {minimum:g} to {maximum:g}"
    return f"in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}{')' if open_maximum else ']'}"


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``.

    Raises:
        ConfigError: naming ``name``, every valid choice and ``value``.
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


__all__ = ["check_choice", "check_int", "check_number"]
