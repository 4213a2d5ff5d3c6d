"""Tests of ``rnnx <command>``; :func:`user_error` checks the CLI's user-error convention."""

from __future__ import annotations

from typing import Any


def user_error(res: Any, code: int = 2) -> str:
    """Assert ``res`` (a CliRunner result) is a user error: exit ``code``, no traceback, and
    exactly one ``Error:`` line on stderr, its last line (progress lines may precede it).

    Returns:
        The ``Error: ...`` line.
    """
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output, res.output
    lines = res.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    return errors[0]
