"""The conventions every command shares (``rnnx/commands/_common.py``): errors, exit codes,
``--json [FILE|-]``, ``-v/-q``, an example and the exit codes in every ``--help``."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from rnnx.cli import COMMANDS, main
from rnnx.commands._common import EXIT_FAIL, command, echo, fail_after_report
from rnnx.errors import ShapeError
from tests.commands import user_error

REPORTING = ("train", "export", "quantize", "check", "inspect", "run", "bench", "stateful")  # commands that take --json

log = logging.getLogger("rnnx.tests")


def _raiser(exc: BaseException) -> click.Command:
    """A command built with the real decorator that logs, prints, then raises ``exc``."""

    @command(json_report=True, exit_codes={EXIT_FAIL: "verdict negative"}, name="probe")
    def probe() -> dict:
        """Probe.

        \b
        Example:
          probe
        """
        log.info("working")
        log.debug("details")
        echo("text")  # human text: suppressed when stdout carries the JSON
        if exc is not None:
            raise exc
        return {"answer": 42}

    return probe


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_has_an_example_and_the_exit_codes(name: str) -> None:
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output and "Exit codes:" in res.output
    assert "0   success" in res.output and "2   bad usage or input" in res.output
    assert "-v, --verbose" in res.output and "-q, --quiet" in res.output
    assert ("--json [FILE|-]" in res.output) == (name in REPORTING)


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("bug"),
        ValueError("bug"),
        KeyError("bug"),
        ConnectionResetError("bug"),
        ModuleNotFoundError("x", name="not_an_extra"),
    ],
    ids=["TypeError", "ValueError", "KeyError", "OSError-no-file", "import-of-a-bug"],
)
def test_a_bug_keeps_its_traceback_and_exits_1(exc: BaseException) -> None:
    res = CliRunner().invoke(_raiser(exc), [])
    assert res.exit_code == 1 and res.exception is exc  # CliRunner kept the exception: a traceback
    assert "Error:" not in res.output


@pytest.mark.parametrize(
    "exc,message",
    [
        (ShapeError("x: expected shape (1, 5), got (1, 4)"), "Error: x: expected shape (1, 5), got (1, 4)"),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/model.onnx"),
            "Error: Permission denied: /ro/model.onnx",
        ),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "Error: Read-only file system: /ro/x"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "out/file"), "Error: Not a directory: out/file"),
        (
            ModuleNotFoundError("No module named 'torch'", name="torch"),
            'Error: this command needs torch, which is not installed: pip install "rnnx[export]"',
        ),
        (
            ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime"),
            'Error: this command needs onnxruntime, which is not installed: pip install "rnnx[cpu]" (or "rnnx[gpu]")',
        ),
    ],
    ids=["RnnxError", "read-only", "EROFS", "not-a-dir", "no-torch", "no-onnxruntime"],
)
def test_user_errors_are_one_line_exit_2(exc: BaseException, message: str) -> None:
    assert user_error(CliRunner().invoke(_raiser(exc), [])) == message


def test_verbose_logs_the_user_errors_traceback() -> None:
    res = CliRunner().invoke(_raiser(ShapeError("bad")), ["-v"])
    assert res.exit_code == 2 and "Traceback" in res.stderr and "ShapeError: bad" in res.stderr


def test_verbosity_levels() -> None:
    runner = CliRunner()
    plain, loud, quiet = (runner.invoke(_raiser(None), args) for args in ([], ["-v"], ["-q"]))
    assert plain.stderr.splitlines() == ["working"]
    assert loud.stderr.splitlines() == ["working", "debug: details"]
    assert quiet.stderr == "" and quiet.stdout == "text\n"


def test_json_to_a_file_stdout_or_refused(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(_raiser(None), ["--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0 and res.stdout == "text\n"
    assert json.loads((tmp_path / "r.json").read_text()) == {"command": "probe", "rnnx": "0.1.0", "answer": 42}
    for args in (["--json", "-"], ["--json"]):  # stdout then holds only the JSON document
        res = runner.invoke(_raiser(None), args)
        assert res.exit_code == 0 and json.loads(res.stdout)["answer"] == 42, res.output
    res = runner.invoke(_raiser(None), ["--json", str(tmp_path / "model.onnx")])  # would clobber a model
    assert res.exit_code == 2 and "--json: expected a .json file or '-'" in " ".join(res.stderr.split())
    assert not (tmp_path / "model.onnx").exists()


def test_a_negative_verdict_still_writes_its_report(tmp_path) -> None:
    @command(json_report=True, name="verdict")
    def verdict() -> dict:
        """Verdict.

        \b
        Example:
          verdict
        """
        fail_after_report("parity failed: y differs")
        return {"ok": False}

    res = CliRunner().invoke(verdict, ["--json", str(tmp_path / "v.json")])
    assert user_error(res, code=1) == "Error: parity failed: y differs"
    assert json.loads((tmp_path / "v.json").read_text())["ok"] is False


def test_version_lists_every_component() -> None:
    res = CliRunner().invoke(main, ["--version"])
    lines = res.stdout.splitlines()
    assert res.exit_code == 0 and lines[0] == "rnnx 0.1.0"
    names = [line.split()[0] for line in lines]
    assert names == ["rnnx", "python", "torch", "onnx", "onnxruntime"]
    assert "CPUExecutionProvider" in lines[-1]


def test_runtime_only_install_names_the_extra(tmp_path) -> None:
    """``rnnx export`` where torch cannot be imported (a runtime-only install) names the extra."""
    code = (
        "import sys, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from rnnx.cli import main\n"
        f"main(['export', {str(tmp_path / 'ckpt')!r}, '--out', {str(tmp_path / 'out')!r}])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "torch" in last and "rnnx[export]" in last, res.stderr
    assert "Traceback" not in res.stderr


def test_json_into_a_missing_folder_fails_before_the_work(tmp_path) -> None:
    res = CliRunner().invoke(_raiser(None), ["--json", str(tmp_path / "nope" / "r.json")])
    assert res.exit_code == 2 and "is not a folder" in res.output and "text" not in res.stdout
