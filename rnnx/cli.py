"""The ``rnnx`` command line: train | export | quantize | check | inspect | run | bench | stateful | demo.

Each command lives in ``rnnx/commands/<name>.py`` and is imported only when it is
invoked, so ``rnnx run`` and ``rnnx bench`` start without torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform

import click

from rnnx.version import __version__

# command name -> (module, attribute, one-line help shown in `rnnx --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("rnnx.commands.train", "train", "Train a model on a built-in task or a CSV series."),
    "export": ("rnnx.commands.export", "export", "Export a checkpoint (ONNX; other formats on request), check parity."),
    "quantize": ("rnnx.commands.quantize", "quantize", "Write an int8 or fp16 copy of an exported ONNX model."),
    "check": ("rnnx.commands.check", "check", "Check an exported model against its checkpoint."),
    "inspect": ("rnnx.commands.inspect", "inspect", "Show a model file's inputs, outputs and state contract."),
    "run": ("rnnx.commands.run", "run", "Stream a recorded sequence through an exported model."),
    "bench": ("rnnx.commands.bench", "bench", "Measure step latency and throughput of an exported model."),
    "stateful": (
        "rnnx.commands.stateful",
        "stateful",
        "Make an ONNX file whose RNN keeps its state inside streamable.",
    ),
    "demo": ("rnnx.commands.demo", "demo", "Train, export, check, stream and benchmark in one go."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def versions() -> list[str]:
    """One line per component: rnnx, python, torch, onnx, onnxruntime (with its providers).

    Reads installed package metadata; imports only onnxruntime (to list its providers).
    """
    lines = [f"rnnx {__version__}", f"python {platform.python_version()}"]
    for dist, extra in (("torch", "export"), ("onnx", "cpu")):
        try:
            lines.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f'{dist} not installed (pip install "rnnx[{extra}]")')
    try:
        import onnxruntime as ort
    except ImportError:
        lines.append('onnxruntime not installed (pip install "rnnx[cpu]" or "rnnx[gpu]")')
    else:
        lines.append(f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})")
    return lines


def _print_versions(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo("\n".join(versions()))
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Show the versions of rnnx, python, torch, onnx, onnxruntime and its providers.",
)
def main() -> None:
    """Export recurrent PyTorch models with explicit state and stream them on ONNX Runtime.

    Every command takes -v/-q and documents its exit codes and an example in its --help;
    commands that report something take --json [FILE|-].
    """


if __name__ == "__main__":  # pragma: no cover
    main()
