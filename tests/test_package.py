"""Package-level guarantees: a light root import and a CLI that answers."""

import subprocess
import sys

from click.testing import CliRunner

from rnnx.cli import COMMANDS, main


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_root_import_loads_neither_torch_nor_onnx():
    mods = _modules_after("import rnnx, rnnx.spec, rnnx.errors, rnnx.cli")
    assert "torch" not in mods
    assert "onnx" not in mods


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_every_command_module_exists_and_has_help():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, f"rnnx {name} --help failed: {result.output}"
        assert "Usage:" in result.output
