"""``rnnx check``: compare an exported model with the checkpoint it came from."""

from __future__ import annotations

import logging
from typing import Any

import click

from rnnx.commands._common import EXIT_FAIL, command, echo, factory_options, fail_after_report

logger = logging.getLogger(__name__)


def _task_comparison(ckpt: str, model_path: str):  # -> Optional[TaskComparison]
    """A reduced-precision file's task metric against the float model's (training runs only)."""
    from pathlib import Path

    from rnnx.onnx_tools.spec_io import read_spec

    if Path(model_path).is_dir() or read_spec(model_path).precision == "fp32":  # a dir: a seq2seq bundle
        return None
    from rnnx.training.compare import compare_on_task

    return compare_on_task(ckpt, model_path)


@command(json_report=True, exit_codes={EXIT_FAIL: "parity failed"})
@click.argument("ckpt", metavar="CKPT")
@factory_options
@click.argument("model_path", metavar="MODEL")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default per family).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance (default per family).")
def check(
    ckpt: str,
    weights: str | None,
    example_shape: str | None,
    example_dtype: str | None,
    model_path: str,
    atol: float | None,
    rtol: float | None,
) -> dict[str, Any]:
    """Check MODEL (.onnx, .ort or TorchScript .pt) against CKPT (a checkpoint, run directory or your model).

    CKPT may be your own model as path/to/file.py:factory or package.module:factory
    (with --weights): THIS IMPORTS AND RUNS THAT PYTHON CODE; use files you trust.

    A seq2seq bundle (MODEL: its folder or either file) is checked by generating
    forecasts at several window lengths, batch sizes and step counts, and streamed.

    Random inputs from random non-zero states, several batch sizes and lengths, full
    sequence and streamed; one line per output per case. JSON: the parity report
    (ok, atol, rtol, tolerance_source, max_abs, worst, rows, notes).

    An int8/fp16 MODEL is judged with its precision's tolerance; when CKPT is a run
    directory of `rnnx train`, the task metric (e.g. sine MAE) of MODEL and of the float
    checkpoint is reported too (JSON: "task").

    \b
    Examples:
      rnnx check runs/sine exported/model.onnx
      rnnx check my_model.py:make exported/model.onnx --weights trained.pt
      rnnx check runs/sine exported/model.onnx --atol 1e-4 --json parity.json
      rnnx check runs/weather-s2s exported-s2s/
    """
    from rnnx.exporter.parity import check_parity
    from rnnx.models.user import is_reference, load_model

    model = load_model(ckpt, weights=weights, example_shape=example_shape, example_dtype=example_dtype)
    notes = provenance_notes(model, model_path)
    for note in notes:
        logger.warning("%s", note)
    report = check_parity(model, model_path, atol=atol, rtol=rtol)
    table = report.table()
    quiet = click.get_current_context().meta.get("rnnx.quiet", 0) > 0
    echo(table.splitlines()[-1] if quiet else table)  # -q: the verdict line only
    task = None if is_reference(ckpt) else _task_comparison(ckpt, model_path)
    if task is not None:
        echo(task.line())
    if not report.ok:
        worst = report.worst
        if worst is None:  # no case ran at all
            fail_after_report("parity failed: no case was compared")
        else:
            fail_after_report(f"parity failed: {worst.tensor} in {worst.label()} differs by {worst.max_abs:.3g}")
    return {**report.to_dict(), "task": None if task is None else task.to_dict(), "provenance": notes}


def provenance_notes(model: Any, model_path: str) -> list[str]:
    """Why a FAIL is expected, said before the table: MODEL records other weights or another model.

    Compares ``spec.extra["weights"]`` (written at export) with the model being checked;
    files without it (older exports, foreign files, seq2seq folders) give no note.
    """
    from rnnx.exporter.contract import weights_fingerprint
    from rnnx.onnx_tools.spec_io import read_spec

    try:
        recorded = read_spec(model_path).extra.get("weights")
    except Exception:  # noqa: BLE001 - a bundle folder or unreadable file: check_parity has spoken
        return []
    if not isinstance(recorded, dict):
        return []
    mine = weights_fingerprint(model)
    notes = []
    if recorded.get("model") and recorded.get("model") != mine["model"]:
        notes.append(
            f"{model_path} was exported from a {recorded['model']} model, CKPT is a {mine['model']}: expect FAIL rows"
        )
    elif recorded.get("sha256") != mine["sha256"]:
        notes.append(
            f"{model_path} was exported from other weights ({_source(recorded)}, sha256 "
            f"{str(recorded.get('sha256'))[:12]}) than CKPT's ({_source(mine)}, sha256 "
            f"{mine['sha256'][:12]}): expect FAIL rows"
        )
    src = recorded.get("source") or {}
    if isinstance(src, dict) and "factory" in src and src.get("weights") is None:
        notes.append(
            f"{model_path} was exported from {src['factory']}() without --weights: its weights are "
            f"whatever the factory made (random unless it loads trained ones)"
        )
    return notes


def _source(fingerprint: dict[str, Any]) -> str:
    src = fingerprint.get("source") or {}
    if not isinstance(src, dict):
        return "?"
    if "checkpoint" in src:
        return f"checkpoint {src['checkpoint']}"
    if "factory" in src:
        return f"{src['factory']}() with " + (f"--weights {src['weights']}" if src.get("weights") else "no --weights")
    return "?"
