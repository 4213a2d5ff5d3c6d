"""Shared plumbing for CLI commands: user errors become one line and a non-zero exit."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

from rnnx.errors import ParityError, RnnxError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAIL = 1  # the command ran and its verdict is negative (parity failed)
EXIT_USAGE = 2  # bad usage or bad input (click uses 2 for usage errors too)


def fail(message: str, code: int = EXIT_USAGE) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
    """Print ``Error: message`` on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def user_errors(func: F) -> F:
    """Turn the errors a user can cause into one line on stderr and exit code 2 (1 for parity).

    Anything else is a bug in rnnx and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ParityError as e:
            fail(str(e).splitlines()[0] if str(e) else "parity check failed", EXIT_FAIL)
        except (RnnxError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
            fail(_one_line(e))
        except (ValueError, TypeError, KeyError) as e:
            fail(_one_line(e))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def _one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)) and e.filename:
        text = f"{e.strerror}: {e.filename}"
    line = " ".join(text.split())
    return line or type(e).__name__
