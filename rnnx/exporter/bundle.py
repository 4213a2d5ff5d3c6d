"""Export one model to several formats into a folder, each checked for parity (``rnnx export``).

``precision`` applies to the ONNX and ``.ort`` files (``model.int8.onnx``, ``model.fp16.ort``):
the float32 graph is exported to a temporary folder, then converted by
:func:`rnnx.onnx_tools.quantize`. TorchScript files and Triton repositories stay float32.
An ONNX file gets its single-step graph beside it (``model.step.onnx``, ``model.int8.step.onnx``,
when the export writes one; quantized along with the file); ``.ort`` files and Triton
repositories have none (their spec says so).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import ConfigError, ExportError, SpecError
from rnnx.exporter.onnx_export import ExportResult, export_onnx
from rnnx.exporter.parity import check_parity
from rnnx.exporter.torchscript_export import export_torchscript
from rnnx.onnx_tools.compare import ParityReport
from rnnx.onnx_tools.ort_format import to_ort
from rnnx.onnx_tools.quantize import QuantizeResult, quantize
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.onnx_tools.step_graph import step_file_name
from rnnx.onnx_tools.triton import TritonConfig, export_triton
from rnnx.spec import PRECISIONS

# format -> file suffix ("triton": a model repository, <name>/1/model.onnx)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "triton": ".onnx", "ort": ".ort", "pt2": ".pt2", "pte": ".pte"}
PROGRAMS = ("torchscript", "pt2", "pte")  # float32 only: no precision tag in the name
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormatFailure:
    """A format that could not be exported; the other formats were still written."""

    format: str  # "torchscript", "pt2", ...
    path: Path  # the file it would have been
    reason: str  # the ExportError, one line


@dataclass(frozen=True)
class ExportedFile:
    """One written file and its parity verdict."""

    format: str  # "onnx", "ort", "torchscript", "pt2", "pte" or "triton"
    result: ExportResult  # path, spec, strategy
    report: ParityReport | None  # None when the check was skipped
    quantized: QuantizeResult | None = None  # what quantize() did (precision fp16/int8 only)

    @property
    def size(self) -> int:
        return self.result.path.stat().st_size


def file_name(fmt: str, precision: str = "fp32") -> str:
    """``model.onnx``, ``model.int8.onnx``, ``model.fp16.ort``, ``model.pt``."""
    tag = "" if precision == "fp32" or fmt in (*PROGRAMS, "triton") else f".{precision}"
    return f"model{tag}{FORMATS[fmt]}"


def export_files(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("onnx",),
    opset: int = 17,
    check: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    triton: TritonConfig | None = None,
    precision: str = "fp32",
    step_graph: bool = True,
    strategy: str = "auto",
    failures: list[FormatFailure] | None = None,
) -> list[ExportedFile]:
    """Write ``out_dir/model.onnx``, ``model.ort`` and/or ``model.pt``, then check each one's parity.

    The default is ONNX only; TorchScript (``model.pt``, deprecated by PyTorch) is written
    when ``formats`` names it.

    Format "triton" writes a Triton model repository into ``out_dir`` instead
    (:func:`rnnx.onnx_tools.triton.export_triton`): the ONNX graph is parity-checked against
    the model, then served the way Triton serves it and checked again.

    Args:
        model: the eager contract module.
        out_dir: folder to write (created).
        formats: any of "onnx", "ort" (onnxruntime mobile format), "torchscript", "triton", "pt2"
            (torch.export step program, plus its chunk program where torch allows), "pte"
            (ExecuTorch step program; needs ``rnnx[executorch]``).
        opset: ONNX opset.
        check: run :func:`check_parity` on each file (reduced precision: with its tolerance).
        atol: parity tolerance override.
        rtol: parity tolerance override.
        triton: options of the "triton" format (defaults when None).
        precision: "fp32", "fp16" or "int8" for the ONNX/.ort files (see :func:`quantize`).
        step_graph: write ``model.step.onnx`` (``model.int8.step.onnx``, ...) beside the ONNX file
            of a Scan graph (see :func:`export_onnx` and :func:`quantize`).
        strategy: the ONNX export strategy (see :func:`export_onnx`; "dynamo" for the
            TorchScript-free path).
        failures: when given, a format that cannot be exported (ExportError) is recorded
            here and the other formats are still written and checked; else it raises.

    Returns:
        One :class:`ExportedFile` per format, in order.

    Raises:
        ConfigError: an unknown format or precision, or for a seq2seq model (which exports
            as an ONNX bundle, ``encoder.onnx`` + ``decoder.onnx``, sharing one parity
            report) no onnx or a precision other than fp32; other formats asked together
            with onnx are skipped.
        ExportError: a format could not be exported.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"format: expected one or more of {', '.join(FORMATS)}, got {list(formats)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    out = Path(out_dir)
    _check_folder(out)  # an unusable DIR fails now, not after the export
    if getattr(model, "kind", None) == "seq2seq":
        return _seq2seq_files(model, out, formats, opset, check, atol, rtol, precision, strategy)
    files = []
    with tempfile.TemporaryDirectory(prefix="rnnx-export-") as tmp:
        onnx_file: tuple[ExportResult, QuantizeResult | None] | None = None
        for fmt in formats:
            if fmt == "triton":
                files.append(_export_triton(model, out, opset, triton, check, atol, rtol, precision, strategy))
                continue
            path = out / file_name(fmt, precision)
            try:
                result, quantized, onnx_file = _one_format(
                    model, fmt, path, Path(tmp), onnx_file, formats, opset, precision, step_graph, strategy
                )
            except ExportError as e:
                if failures is None:
                    raise
                logger.warning("%s: not written (%s)", path.name, " ".join(str(e).split()))
                failures.append(FormatFailure(fmt, path, " ".join(str(e).split())))
                continue
            if check:
                logger.info("checking parity of %s against the model", path)
            report = check_parity(model, path, atol=atol, rtol=rtol) if check else None
            files.append(ExportedFile(fmt, result, report, quantized))
    remove_stale(out, [p for f in files for p in (f.result.path, f.result.step_graph_path) if p])
    return files


def _one_format(
    model: nn.Module,
    fmt: str,
    path: Path,
    tmp: Path,
    onnx_file: tuple[ExportResult, QuantizeResult | None] | None,
    formats: Sequence[str],
    opset: int,
    precision: str,
    step_graph: bool,
    strategy: str,
) -> tuple[ExportResult, QuantizeResult | None, tuple[ExportResult, QuantizeResult | None] | None]:
    """Write one format's file: (its result, what quantize did, the shared ONNX export so far)."""
    quantized = None
    if fmt == "torchscript":
        logger.info("exporting %s to TorchScript", type(model).__name__)
        result = export_torchscript(model, path)
    elif fmt == "pt2":
        from rnnx.exporter.pt2_export import export_pt2

        logger.info("exporting %s as torch.export programs", type(model).__name__)
        result = export_pt2(model, path)
    elif fmt == "pte":
        from rnnx.exporter.pte_export import export_pte

        logger.info("exporting %s as an ExecuTorch program", type(model).__name__)
        result = export_pte(model, path)
    else:
        if onnx_file is None:
            onnx_file = _onnx(model, tmp, opset, precision, step_graph and "onnx" in formats, strategy)
        made, quantized = onnx_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "ort":
            to_ort(made.path, path)
            result = dataclasses.replace(
                made, path=path, step_graph_path=None, spec=dataclasses.replace(made.spec, step_graph=None)
            )
        else:
            result = _copy_onnx(made, path)
    return result, quantized, onnx_file


def _copy_onnx(made: ExportResult, path: Path) -> ExportResult:
    """Copy an exported ONNX file to ``path``; its step graph first, under the name its spec records."""
    step_path = None
    if made.step_graph_path is not None:
        if made.spec.step_graph is None:
            raise SpecError(f"{made.path}: a step graph was written beside it but its spec records none")
        step_path = path.with_name(made.spec.step_graph.file)
        write_bytes_atomic(step_path, made.step_graph_path.read_bytes())
    write_bytes_atomic(path, made.path.read_bytes())
    return dataclasses.replace(made, path=path, step_graph_path=step_path)


def _check_folder(out: Path) -> None:
    """Raise the OS error ``mkdir`` would raise later, when ``out`` or an ancestor is a file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                err = errno.EEXIST if p == out else errno.ENOTDIR
                raise OSError(err, os.strerror(err), str(out))
            return


def remove_stale(out: Path, written: Sequence[Path]) -> list[Path]:
    """Delete rnnx's own model files in ``out`` that this export did not write.

    A folder that held another model (or other formats of an older export) would otherwise
    mix files of two models. Only rnnx's file names (``model.onnx``, ``model.int8.onnx``,
    ``model.pt``, ``model.step.onnx``, ``model.int8.step.onnx``, ...) are touched; each removal is logged as a warning.

    Returns:
        The removed paths.
    """
    names = {file_name(fmt, p) for fmt in ("onnx", "ort", *PROGRAMS) for p in PRECISIONS}
    names |= {step_file_name(file_name("onnx", p)) for p in PRECISIONS}  # model.step.onnx, model.int8.step.onnx, ...
    keep = {Path(w).resolve() for w in written}
    stale = sorted(p for p in (out / n for n in names) if p.is_file() and p.resolve() not in keep)
    for p in stale:
        p.unlink()
        logger.warning("removed %s: left in %s by an earlier export, it would mix two models' files", p.name, out)
    return stale


def _onnx(
    model: nn.Module, tmp: Path, opset: int, precision: str, step_graph: bool, strategy: str
) -> tuple[ExportResult, QuantizeResult | None]:
    """The ONNX graph at ``precision`` in ``tmp`` (quantized from the float32 export)."""
    result = export_onnx(model, tmp / "model.onnx", opset=opset, step_graph=step_graph, strategy=strategy)
    if precision == "fp32":
        return result, None
    q = quantize(result.path, tmp / file_name("onnx", precision), precision=precision)  # its step graph too
    return dataclasses.replace(result, path=q.path, spec=q.spec, step_graph_path=q.step_graph_path), q


def _export_triton(
    model: nn.Module,
    out: Path,
    opset: int,
    triton: TritonConfig | None,
    check: bool,
    atol: float | None,
    rtol: float | None,
    precision: str,
    strategy: str,
) -> ExportedFile:
    """ONNX export at ``precision`` + parity against the model (that precision's tolerance),
    then the Triton repository from that file."""
    with tempfile.TemporaryDirectory() as tmp:
        python = triton is not None and triton.backend == "python"  # serves the file as is: keep its step graph
        result = export_onnx(model, Path(tmp) / file_name("onnx"), opset=opset, step_graph=python, strategy=strategy)
        quantized = None
        if precision != "fp32":  # its step graph converted too
            quantized = quantize(result.path, Path(tmp) / file_name("onnx", precision), precision=precision)
            result = dataclasses.replace(
                result, path=quantized.path, spec=quantized.spec, step_graph_path=quantized.step_graph_path
            )
        report = check_parity(model, result.path, atol=atol, rtol=rtol) if check else None
        repo = export_triton(result.path, out, triton)
    return ExportedFile("triton", dataclasses.replace(result, path=repo.onnx_path, spec=repo.spec), report, quantized)


def _seq2seq_files(
    model: nn.Module,
    out: Path,
    formats: Sequence[str],
    opset: int,
    check: bool,
    atol: float | None,
    rtol: float | None,
    precision: str,
    strategy: str,
) -> list[ExportedFile]:
    from rnnx.exporter.seq2seq_export import export_seq2seq

    if "onnx" not in formats:
        raise ConfigError(
            f"format: a seq2seq model exports as an ONNX bundle (encoder.onnx + decoder.onnx); "
            f"expected onnx, got {list(formats)}"
        )
    if precision != "fp32":
        raise ConfigError(f"precision: a seq2seq bundle exports in fp32 only, got {precision!r}")
    skipped = [f for f in formats if f != "onnx"]
    if skipped:
        logger.info("seq2seq: skipping %s, the model exports as an ONNX bundle only", ", ".join(skipped))
    done = export_seq2seq(model, out, opset=opset, check=check, atol=atol, rtol=rtol, strategy=strategy)
    return [
        ExportedFile("onnx", ExportResult(path, spec, spec.exporter), done.report)
        for path, spec in ((p, read_spec(p)) for p in (done.encoder, done.decoder))
    ]
