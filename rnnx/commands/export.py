"""``rnnx export``: checkpoint -> model.onnx (TorchScript model.pt on request), each checked for parity."""

from __future__ import annotations

import logging
from typing import Any

import click

from rnnx.commands._common import EXIT_FAIL, command, echo, factory_options, fail_after_report
from rnnx.spec import PRECISIONS
from rnnx.table import render

logger = logging.getLogger(__name__)

FORMAT_CHOICES = {
    "onnx": ("onnx",),
    "torchscript": ("torchscript",),
    "all": ("onnx", "torchscript"),
    "triton": ("triton",),
    "ort": ("ort",),
    "pt2": ("pt2",),
    "pte": ("pte",),
}


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def _summary(files: list) -> str:
    rows = []
    for f in files:
        rep = f.report
        rows.append(
            (
                str(f.result.path),
                f.result.strategy,
                _size(f.size),
                "-" if rep is None else f"{rep.max_abs:.3g}",
                "unchecked" if rep is None else ("pass" if rep.ok else "FAIL"),
            )
        )
    return render(("file", "strategy", "size", "parity worst |err|", "result"), rows)


def _file_dict(f: Any) -> dict[str, Any]:
    return {
        "format": f.format,
        "path": str(f.result.path),
        "strategy": f.result.strategy,
        "size_bytes": f.size,
        "attempts": [
            {"strategy": a.strategy, "ok": a.ok, "reason": a.reason, "seconds": round(a.seconds, 3)}
            for a in f.result.attempts
        ],
        "precision": f.result.spec.precision,
        "step_graph": None if f.result.step_graph_path is None else str(f.result.step_graph_path),
        "parity": None if f.report is None else f.report.to_dict(),
    }


EXIT_FORMAT = 3  # one of several formats could not be exported; the others were written and checked


@command(
    json_report=True,
    exit_codes={
        EXIT_FAIL: "a file was written but failed its parity check",
        EXIT_FORMAT: "a format could not be exported (JSON: failed); the others were written and checked",
    },
)
@click.argument("ckpt", metavar="CKPT")
@factory_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    help="Folder for model.onnx (model.pt with --format torchscript|all).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMAT_CHOICES)),
    default="onnx",
    show_default=True,
    help="Which files to write: onnx (model.onnx, plus model.step.onnx "
    "where it applies), torchscript (model.pt; deprecated by PyTorch), all (both), pt2 (torch.export step "
    "program model.pt2, + model.chunk.pt2 where torch allows), pte (ExecuTorch step program, "
    "needs rnnx[executorch]).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="ONNX/.ort weights: int8 (dynamic quantization; GRU/RNN/Conv keep "
    "float math on int8-stored weights), fp16 (half weights, float32 I/O). Writes model.<precision>.onnx; TorchScript "
    "stays fp32.",
)
@click.option("--opset", type=click.IntRange(9, 21), default=17, show_default=True, help="ONNX opset.")
@click.option(
    "--strategy",
    type=click.Choice(["auto", "dynamo", "trace", "proj-native", "scan", "scan-legacy", "layer-scan"]),
    default="auto",
    show_default=True,
    help="How the ONNX graph is built: auto (the first that passes; TorchScript-free where torch "
    "has no legacy exporter), dynamo (TorchScript-free: torch.export, native ops, else Scans), or one path.",
)
@click.option("--no-check", is_flag=True, help="Skip the parity check.")
@click.option(
    "--no-step-graph",
    is_flag=True,
    help="Write no model.step.onnx (the Scan-free graph for single steps written beside a Scan graph's model.onnx).",
)
@click.option("--atol", type=click.FloatRange(min=0), help="Parity absolute tolerance (default per family).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Parity relative tolerance (default per family).")
@click.option(
    "--triton-name",
    default="model",
    show_default=True,
    metavar="NAME",
    help="--format triton: model name (folder DIR/NAME in the repository).",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="--format triton: live sequences batched into one run.",
)
# The Triton choices below are rnnx.onnx_tools.triton's STRATEGIES, INSTANCE_KINDS and BACKENDS
# (a test holds them equal): importing that module here would load onnx and onnxruntime for --help.
@click.option(
    "--sequence-strategy",
    type=click.Choice(["oldest", "direct"]),
    default="oldest",
    show_default=True,
    help="--format triton: Triton sequence-batcher strategy.",
)
@click.option(
    "--instance-kind",
    type=click.Choice(["cpu", "gpu"]),
    default="cpu",
    show_default=True,
    help="--format triton: where Triton runs the model.",
)
@click.option(
    "--triton-backend",
    type=click.Choice(["onnxruntime", "python"]),
    default="onnxruntime",
    show_default=True,
    help="--format triton: Triton's onnxruntime backend (implicit state), "
    "or rnnx.runtime inside Triton's python backend (the server's python needs rnnx[cpu], numpy<2).",
)
def export(
    ckpt: str,
    weights: str | None,
    example_shape: str | None,
    example_dtype: str | None,
    out_dir: str,
    fmt: str,
    precision: str,
    opset: int,
    strategy: str,
    no_check: bool,
    no_step_graph: bool,
    atol: float | None,
    rtol: float | None,
    triton_name: str,
    max_batch_size: int,
    sequence_strategy: str,
    instance_kind: str,
    triton_backend: str,
) -> dict[str, Any]:
    """Export CKPT (a checkpoint file, a run directory, or your own model) to DIR, then check parity.

    Your own model: CKPT is path/to/file.py:factory or package.module:factory, a callable
    returning an nn.Module that follows the rnnx contract (or rnnx.wrap(...) of one).
    THIS IMPORTS AND RUNS THAT PYTHON CODE, like `python file.py` would: use files you
    trust. --weights loads its weights without running code (safetensors, or a
    state_dict through torch.load(weights_only=True)).

    Progress goes to stderr (-q hides it, -v adds each failed export path's traceback).
    JSON: ok, out, files (format, path, strategy, size_bytes, attempts, precision, step_graph,
    parity), failed (format, path, reason of each format that could not be exported).

    \b
    Examples:
      rnnx export runs/sine --out exported
      rnnx export my_model.py:make --weights trained.pt --example-shape 2,10,7 --out exported
      rnnx export runs/sine/model.safetensors --out exported --format onnx --atol 1e-4
      rnnx export runs/sine --out exported --json export.json
      rnnx export runs/sine --out triton_repo --format triton --triton-name sine
      rnnx export runs/sine --out triton_repo --format triton --triton-backend python
      rnnx export runs/sine --out exported --format onnx --precision int8
      rnnx export runs/sine --out exported --format ort --precision fp16
      rnnx export runs/sine --out exported --format torchscript

    The default writes DIR/model.onnx only; --format torchscript writes DIR/model.pt
    (TorchScript, which PyTorch deprecates: torch.jit.save/load warn on torch >= 2.14),
    --format all both.
    With --format triton, DIR is a Triton model repository: DIR/NAME/config.pbtxt and
    DIR/NAME/1/model.onnx (sequence batcher with implicit state, batch-first states);
    --triton-backend python writes DIR/NAME/1/model.py (rnnx.runtime keeps each sequence's
    state) beside the export unchanged (its step graph too).
    With --format ort, DIR/model.ort is the onnxruntime mobile format (rnnx.spec kept).
    A Scan graph's model.onnx gets DIR/model.step.onnx beside it: the same model with its
    time loop run once (one step only), which StreamingSession uses for step() when its
    SHA-256 matches the spec; --no-step-graph writes none. A quantized model.int8.onnx gets
    its own model.int8.step.onnx; .ort files and Triton repositories have none.
    With --precision int8|fp16 the ONNX/.ort file is model.int8.onnx / model.fp16.onnx,
    judged with that precision's tolerance (see `rnnx quantize --help`).
    """
    from rnnx.exporter.bundle import export_files
    from rnnx.models.user import load_model
    from rnnx.onnx_tools.triton import TritonConfig

    triton = TritonConfig(
        name=triton_name,
        max_batch_size=max_batch_size,
        strategy=sequence_strategy,
        instance_kind=instance_kind,
        backend=triton_backend,
    ).validate()
    logger.info("loading %s", ckpt)
    model = load_model(ckpt, weights=weights, example_shape=example_shape, example_dtype=example_dtype)
    formats = FORMAT_CHOICES[fmt]
    missing: list = []  # formats that could not be exported (several asked: the others still are)
    files = export_files(
        model,
        out_dir,
        formats=formats,
        opset=opset,
        check=not no_check,
        atol=atol,
        rtol=rtol,
        triton=triton,
        precision=precision,
        step_graph=not no_step_graph,
        strategy=strategy,
        failures=missing if len(formats) > 1 else None,
    )
    echo(_summary(files) + "".join(f"\n{m.path}: NOT WRITTEN ({m.format}): {m.reason}" for m in missing))
    for f in files:
        if f.result.step_graph_path is not None:
            logger.info(
                "step graph: %s (Scan-free, for single steps; %s points to it)",
                f.result.step_graph_path,
                f.result.path.name,
            )
    failed = [(f.result.path, f.report) for f in files if f.report is not None and not f.report.ok]
    for path, report in failed:
        echo(f"\n{path}:\n{report.table()}")
    if failed:
        fail_after_report(f"parity check failed for {', '.join(str(path) for path, _ in failed)}")
    elif missing:
        good = ", ".join(str(f.result.path) for f in files) or "nothing"
        fail_after_report(
            f"{', '.join(m.format for m in missing)} not written ({missing[0].reason[:300]}); "
            f"written and checked: {good}",
            EXIT_FORMAT,
        )
    return {
        "ok": not failed and not missing,
        "out": out_dir,
        "files": [_file_dict(f) for f in files],
        "failed": [{"format": m.format, "path": str(m.path), "reason": m.reason} for m in missing],
    }
