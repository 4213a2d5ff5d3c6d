"""``rnnx train``: train a zoo model on a built-in task or a CSV series."""

from __future__ import annotations

from typing import Any

import click

from rnnx.commands._common import command, echo
from rnnx.task_names import TASKS


@command(json_report=True)
@click.option("--task", metavar="NAME", help=f"Built-in task: {', '.join(TASKS)}.")
@click.option("--csv", "csv_path", metavar="FILE", help="Your own series: a CSV file with a header row.")
@click.option("--target", metavar="COL", help="CSV: the column to forecast.")
@click.option("--features", metavar="COL,...", help="CSV: input columns (default: every numeric column).")
@click.option(
    "--missing",
    type=click.Choice(["interpolate", "ffill", "drop", "error"]),
    default="interpolate",
    show_default=True,
    help="CSV: what to do with empty or NA cells.",
)
@click.option(
    "--residual/--no-residual",
    default=None,
    help="Series: predict the change from the target's current value (default: on for --csv).",
)
@click.option("--window", type=int, help="Truncated-BPTT window in steps (also the warm-up context).")
@click.option("--horizon", type=int, help="Series tasks: future target values predicted at every step.")
@click.option("--text", help="chars: learn next-character prediction on this short text.")
@click.option(
    "--model",
    "model_kind",
    metavar="KIND",
    help="rnn | lstm | gru | convlstm | seq2seq (seq2seq: series tasks only; default: the task's).",
)
@click.option("--hidden-size", type=int, help="Hidden features (channels for convlstm) per layer.")
@click.option("--num-layers", type=int, help="Stacked recurrent layers.")
@click.option("--dropout", type=float, help="Dropout between layers (needs --num-layers > 1).")
@click.option("--proj-size", type=int, help="LSTM: projection size of h.")
@click.option("--embedding-dim", type=int, help="chars: token embedding width.")
@click.option("--cell", type=click.Choice(["lstm", "gru"]), help="seq2seq: encoder/decoder cell (default lstm).")
@click.option("--attention", is_flag=True, help="seq2seq: dot attention of the decoder over the encoder outputs.")
@click.option("--epochs", type=int, help="Maximum epochs (early stopping on validation loss).")
@click.option("--lr", type=float, help="Adam learning rate.")
@click.option("--batch-size", type=int, help="Parallel streams per optimiser step.")
@click.option("--patience", type=int, help="Early stopping: epochs without improvement.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed -> same metrics.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda.")
@click.option(
    "--threads", type=click.IntRange(min=0), default=1, show_default=True, help="Torch CPU threads (0 = all cores)."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--size", type=float, default=1.0, hidden=True, help="Data-set scale (tests).")
@click.option("--out", required=True, metavar="RUN_DIR", help="Run directory to write.")
def train(
    csv_path: str | None, model_kind: str | None, features: str | None, no_progress: bool, **options: Any
) -> dict[str, Any]:
    """Train a model on a built-in task (--task) or your CSV series (--csv ... --target COL).

    RUN_DIR receives model.safetensors (ready for `rnnx export RUN_DIR`), config.json,
    metrics.json (test split, streamed), loss.png and predictions.png. Progress is a bar
    on a terminal and a plain line every 10 s elsewhere. JSON: run_dir, config, metrics
    (the contents of metrics.json).

    \b
    Examples:
      rnnx train --task sine --out runs/sine
      rnnx train --task chars --text "hello world" --out runs/chars
      rnnx train --csv data.csv --target load --window 24 --horizon 6 --out runs/load
      rnnx train --task forecast --model seq2seq --attention --out runs/weather-s2s
    """
    from rnnx.training import TrainConfig
    from rnnx.training import train as run_training

    cols = tuple(c.strip() for c in features.split(",") if c.strip()) if features else None
    cfg = TrainConfig(csv=csv_path, model=model_kind, features=cols, progress=not no_progress, **options)
    result = run_training(cfg)
    _summary(result)
    return {"run_dir": str(result.run_dir), "config": result.config.to_dict(), "metrics": result.metrics}


def _summary(result: Any) -> None:
    m = result.metrics
    echo(
        f"{m['task']}: {m['model']}, best epoch {m['best_epoch']}/{m['epochs_run']}, "
        f"val_loss {m['val_loss']:.4g}, {m['wall_seconds']:.1f} s" + (" (interrupted)" if m["interrupted"] else "")
    )
    if "accuracy" in m:
        echo(f"test (streamed): accuracy {m['accuracy']:.4f}  baseline {m['baseline_accuracy']:.4f}")
    else:
        echo(f"test (streamed): mae {m['mae']:.4g}  baseline_mae {m['baseline_mae']:.4g}")
    if "closed_loop_mae" in m:
        echo(f"closed loop: mae {m['closed_loop_mae']:.4g} over {int(m['closed_loop_steps'])} generated steps")
    echo(f"wrote {result.run_dir}/  next: rnnx export {result.run_dir}")
