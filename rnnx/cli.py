"""The ``rnnx`` command line: train | export | check | inspect | run | bench | demo.

Each command lives in ``rnnx/commands/<name>.py`` and is imported only when it is
invoked, so ``rnnx run`` and ``rnnx bench`` start without torch.
"""

from __future__ import annotations

import importlib
import click

from rnnx import __version__

# command name -> (module, attribute, one-line help shown in `rnnx --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("rnnx.commands.train", "train", "Train a model on a built-in task or a CSV series."),
    "export": ("rnnx.commands.export", "export", "Export a checkpoint to ONNX and TorchScript, then check parity."),
    "check": ("rnnx.commands.check", "check", "Check an exported model against its checkpoint."),
    "inspect": ("rnnx.commands.inspect", "inspect", "Show a model file's inputs, outputs and state contract."),
    "run": ("rnnx.commands.run", "run", "Stream a recorded sequence through an exported model."),
    "bench": ("rnnx.commands.bench", "bench", "Measure step latency and throughput of an exported model."),
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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnx")
def main() -> None:
    """Export recurrent PyTorch models with explicit state and stream them on ONNX Runtime."""


if __name__ == "__main__":  # pragma: no cover
    main()
