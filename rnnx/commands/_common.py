"""Conventions every ``rnnx`` command shares: errors, exit codes, ``--json``, ``-v/-q``.

Build a command with :func:`command` instead of ``click.command``::

    @command(json_report=True, exit_codes={EXIT_FAIL: "parity failed"})
    @click.argument("model")
    def check(model: str) -> dict:
        ...
        return report            # becomes the --json document; text goes through echo()

What the decorator adds:

- ``-v/--verbose`` and ``-q/--quiet`` set the level of the ``rnnx`` logger (INFO by default,
  ``-v`` DEBUG with tracebacks, ``-q`` WARNING, ``-qq`` ERROR); log lines go to stderr.
- ``--json [FILE|-]`` (with ``json_report=True``): the dict the command returns is written,
  with ``"command"`` and ``"rnnx"`` keys, to FILE (atomically) or to stdout (``-``: stdout then
  holds only the JSON document, and the human text is not printed).
- Errors: :class:`rnnx.errors.RnnxError` and the operating system's file errors are the user's
  mistakes: one ``Error: ...`` line on stderr and exit :data:`EXIT_USAGE`
  (:class:`~rnnx.errors.ParityError`: :data:`EXIT_FAIL`). A missing optional dependency names
  the extra to install. Anything else is a bug in rnnx and keeps its traceback (exit 1).
- Exit codes and at least one example in ``--help`` (the docstring holds the example).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from rnnx.atomic import write_text_atomic
from rnnx.errors import ParityError, RnnxError
from rnnx.version import __version__

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0  # the command did what was asked and its verdict (if any) is positive
EXIT_FAIL = 1  # the command ran and its verdict is negative (parity failed); also bugs, with a traceback
EXIT_USAGE = 2  # bad usage, bad input, or a missing optional dependency (click uses 2 for usage too)
EXIT_INTERRUPTED = 130  # Ctrl-C

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

logger = logging.getLogger("rnnx")

# top-level module -> the pip extra that installs it
EXTRAS = {
    "torch": "export",
    "onnx": "cpu",
    "onnxconverter_common": "cpu",
    "onnxscript": "export",
    "safetensors": "export",
    "onnxruntime": "cpu",
    "matplotlib": "train",
    "tqdm": "train",
}

# OSError numbers that mean "this path can't be used", reported even when no file name is attached
_FILE_ERRNOS = {
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
    errno.EACCES,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOENT,
    errno.EPERM,
}


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def exit_codes_epilog(extra: dict[int, str] | None = None) -> str:
    """The ``Exit codes:`` block shown at the end of every command's ``--help``."""
    codes = {
        EXIT_OK: "success",
        EXIT_FAIL: "an internal error (printed with its traceback)",
        EXIT_USAGE: "bad usage or input, or a missing optional dependency (one Error: line)",
        EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    }
    for code, meaning in (extra or {}).items():
        codes[code] = f"{meaning}; {codes[code]}" if code == EXIT_FAIL else meaning
    lines = ["\b", "Exit codes:"] + [f"  {code:<4}{meaning}" for code, meaning in sorted(codes.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------- logging (-v / -q)


class _EchoHandler(logging.Handler):
    """Writes records to the *current* stderr through click (so CliRunner captures them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno != logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(verbose: int = 0, quiet: int = 0) -> int:
    """Point the ``rnnx`` logger at stderr: INFO by default, -v DEBUG, -q WARNING, -qq ERROR.

    Records still propagate to the root logger, which has no handler in the CLI.

    Args:
        verbose: how many ``-v`` were given.
        quiet: how many ``-q`` were given.

    Returns:
        The level set.
    """
    level = max(logging.DEBUG, min(logging.CRITICAL, logging.INFO + 10 * (quiet - verbose)))
    _remove_handler()
    handler = _EchoHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return level


def _remove_handler() -> None:
    for h in [h for h in logger.handlers if isinstance(h, _EchoHandler)]:
        logger.removeHandler(h)


def _logging_for(ctx: click.Context) -> None:
    """Configure logging for this command run; undo it when the command ends (in-process callers)."""
    if "rnnx.log_restore" not in ctx.meta:
        previous = logger.level
        ctx.meta["rnnx.log_restore"] = previous

        def restore() -> None:
            _remove_handler()
            logger.setLevel(previous)

        ctx.call_on_close(restore)
    configure_logging(ctx.meta.get("rnnx.verbose", 0), ctx.meta.get("rnnx.quiet", 0))


def _verbosity_callback(ctx: click.Context, param: click.Parameter, value: int) -> int:
    ctx.meta[f"rnnx.{param.name}"] = value
    _logging_for(ctx)
    return value


def verbosity_options(func: F) -> F:
    """``-v/--verbose`` and ``-q/--quiet`` (both repeatable)."""
    func = click.option(
        "-q",
        "--quiet",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_verbosity_callback,
        help="Less output: -q warnings only, -qq errors only.",
    )(func)
    func = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_verbosity_callback,
        help="More output: debug messages and tracebacks.",
    )(func)
    return func


# ---------------------------------------------------------------- --json [FILE|-]


def _json_target(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "-":
        return value
    if not value.lower().endswith(".json"):
        raise click.BadParameter(
            f"expected a .json file or '-' (stdout), got {value!r}; put --json after the arguments or write --json -",
            param_hint="--json",
        )
    folder = os.path.dirname(value) or "."
    if not os.path.isdir(folder):  # fail before the work, not after it
        raise click.BadParameter(
            f"expected a file in an existing folder, got {value!r} ({folder!r} is not a folder)", param_hint="--json"
        )
    return value


def factory_options(func: F) -> F:
    """``--weights``, ``--example-shape`` and ``--example-dtype``: how a ``file.py:factory`` CKPT is built
    (``rnnx export`` and ``rnnx check`` share them)."""
    options = [
        click.option(
            "--weights",
            metavar="FILE",
            help="CKPT as file.py:factory only: weights for the factory's "
            "module (.safetensors, or a state_dict read with torch.load(weights_only=True)).",
        ),
        click.option(
            "--example-shape",
            metavar="B,T,F...",
            help="CKPT as file.py:factory only: the input "
            "shape (batch, time and features are all used); wins over the shape rnnx reads off the "
            "module's first layer.",
        ),
        click.option(
            "--example-dtype",
            type=click.Choice(["float32", "float64", "int64", "int32"]),
            help="CKPT as file.py:factory only: the example's dtype with --example-shape "
            "(int64: token ids for a model that starts with an Embedding).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def json_option(func: F) -> F:
    """``--json [FILE|-]``: write the report as JSON to FILE (``.json``) or stdout (``-``/no value)."""
    return click.option(
        "--json",
        "json_out",
        is_flag=False,
        flag_value="-",
        default=None,
        metavar="[FILE|-]",
        callback=_json_target,
        help="Also write the report as JSON to FILE (.json), or only JSON to stdout with '-' or no value.",
    )(func)


def json_to_stdout() -> bool:
    """True while the running command writes its JSON report to stdout (human text is suppressed)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("rnnx.json_out") == "-")


def echo(text: str = "") -> None:
    """Print human-readable command output on stdout, unless stdout carries the JSON report."""
    if not json_to_stdout():
        click.echo(text)


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` through a temp file and a rename."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _emit_json(name: str, target: str, report: dict[str, Any]) -> None:
    payload = {"command": name, "rnnx": __version__, **report}
    if target == "-":
        click.echo(json.dumps(payload, indent=2, default=_jsonable))
    else:
        write_json_atomic(target, payload)
        logger.info("wrote %s", target)


# ---------------------------------------------------------------- errors


def _missing_extra(e: ModuleNotFoundError) -> str | None:
    top = (e.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    hint = 'pip install "rnnx[cpu]" (or "rnnx[gpu]")' if extra == "cpu" else f'pip install "rnnx[{extra}]"'
    return f"this command needs {top}, which is not installed: {hint}"


def is_file_error(e: BaseException) -> bool:
    """True for the operating system's errors about a path (missing, read-only, a directory, ...)."""
    return isinstance(e, OSError) and (getattr(e, "filename", None) is not None or e.errno in _FILE_ERRNOS)


def one_line(e: BaseException) -> str:
    """An exception as one line of text (a file error as ``reason: path``)."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename is not None else e.strerror
    line = " ".join(text.split())
    return line or type(e).__name__


def user_errors(func: F) -> F:
    """Turn the errors a user can cause into one ``Error:`` line and a non-zero exit.

    ``RnnxError`` and OS file errors exit 2 (``ParityError`` 1), a missing optional
    dependency exits 2 naming the extra to install, Ctrl-C exits 130. Anything else is a
    bug in rnnx and keeps its traceback (exit 1). With ``-v`` the user error's traceback
    is logged too.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ParityError as e:
            logger.debug("traceback", exc_info=True)
            fail(str(e).splitlines()[0] if str(e) else "parity check failed", EXIT_FAIL)
        except RnnxError as e:
            logger.debug("traceback", exc_info=True)
            fail(one_line(e))
        except ModuleNotFoundError as e:
            message = _missing_extra(e)
            if message is None:
                raise
            fail(message)
        except OSError as e:
            if not is_file_error(e):
                raise
            logger.debug("traceback", exc_info=True)
            fail(one_line(e))
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------- the decorator


def command(
    *, json_report: bool = False, exit_codes: dict[int, str] | None = None, **settings: Any
) -> Callable[[F], click.Command]:
    """``click.command`` with rnnx's conventions (see the module docstring).

    Args:
        json_report: add ``--json [FILE|-]``; the function then returns the report dict
            (or None when there is nothing to report, e.g. the command failed before).
        exit_codes: command-specific meanings of exit codes, shown in ``--help``.
        **settings: passed to ``click.command``.

    Returns:
        A decorator turning a function into a click command.
    """

    def decorate(func: F) -> click.Command:
        name = settings.get("name") or func.__name__.replace("_", "-")

        @functools.wraps(func)
        def body(*args: Any, **kwargs: Any) -> Any:
            target = kwargs.pop("json_out", None) if json_report else None
            ctx = click.get_current_context()
            ctx.meta["rnnx.json_out"] = target
            if "rnnx.log_restore" not in ctx.meta:  # options parsed elsewhere: still log to stderr
                _logging_for(ctx)
            try:
                report = func(*args, **kwargs)
            except (RnnxError, OSError) as e:  # a user's error: --json still gets a document
                if json_report and target is not None and (isinstance(e, RnnxError) or is_file_error(e)):
                    _emit_json(name, target, {"ok": False, "error": one_line(e), "error_type": type(e).__name__})
                raise
            if json_report and target is not None and report is not None:
                _emit_json(name, target, report)
            code = ctx.meta.get("rnnx.exit_code", EXIT_OK)
            if code != EXIT_OK:
                fail(ctx.meta["rnnx.exit_message"], code)
            return None

        wrapped = user_errors(body)
        if json_report:
            wrapped = json_option(wrapped)
        wrapped = verbosity_options(wrapped)
        settings.setdefault("context_settings", CONTEXT)
        settings.setdefault("epilog", exit_codes_epilog(exit_codes))
        return click.command(**settings)(wrapped)

    return decorate


def fail_after_report(message: str, code: int = EXIT_FAIL) -> None:
    """Exit with ``code`` and ``Error: message`` once the command's report (and --json) is out.

    For negative verdicts (parity failed) whose report must still be written.
    """
    ctx = click.get_current_context()
    ctx.meta["rnnx.exit_code"] = code
    ctx.meta["rnnx.exit_message"] = message
