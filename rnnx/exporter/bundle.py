"""Export one model to several formats into a folder, each checked for parity (``rnnx export``).

:func:`export_files` is one straight line, each step a function of this module:

1. :meth:`ExportPlan.make`: every option checked (formats, precision, Triton options, the
   folder) before anything is exported.
2. A seq2seq model leaves the line here for its own, :func:`_seq2seq_files` (an ONNX bundle,
   ``encoder.onnx`` + ``decoder.onnx``, with one parity report).
3. :func:`_onnx_graph`: when an ONNX-based format (onnx, ort, triton) is asked, the float32
   graph is exported once into a temporary folder (:func:`rnnx.exporter.export_onnx`: derive
   the contract, build the candidate graphs, probe them, write the file and its step graph),
   then converted once to ``precision`` (:func:`rnnx.onnx_tools.quantize`: ``model.int8.onnx``,
   its step graph too). Every ONNX-based format is derived from that one file.
4. :data:`WRITERS`: one function per format writes its file (``model.onnx`` and its step graph,
   committed as one artifact like :func:`export_onnx` commits them, ``model.ort``, the Triton
   repository, or ``model.pt`` / ``.pt2`` / ``.pte`` from the model).
5. :func:`_check`: parity of each written file against the model, once per distinct graph
   (a Triton repository is judged by the ONNX graph it was built from).
6. :func:`remove_stale`: rnnx's files left by an earlier export that this one did not write.

``precision`` applies to the ONNX-based files (``model.int8.onnx``, ``model.fp16.ort``,
the Triton repository's graph); TorchScript, pt2 and pte programs stay float32.
An ONNX file gets its single-step graph beside it (``model.step.onnx``, ``model.int8.step.onnx``,
when the export writes one; quantized along with the file); ``.ort`` files and the onnxruntime
flavour of Triton repositories have none (their spec says so); the python flavour serves the
ONNX file as is, its step graph included.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from rnnx.errors import ConfigError, ExportError
from rnnx.exporter.onnx_export import ExportResult, export_onnx
from rnnx.exporter.parity import check_parity
from rnnx.exporter.seq2seq_export import export_seq2seq
from rnnx.exporter.torchscript_export import export_torchscript
from rnnx.onnx_tools.compare import ParityReport
from rnnx.onnx_tools.graph import load_onnx_with_weights
from rnnx.onnx_tools.ort_format import to_ort
from rnnx.onnx_tools.quantize import QuantizeResult, quantize
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.onnx_tools.step_graph import commit_onnx, step_file_name
from rnnx.onnx_tools.triton import ONNX_FILE, TritonConfig, export_triton
from rnnx.spec import PRECISIONS

# format -> file suffix ("triton": a model repository, <name>/<version>/model.onnx)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "triton": ".onnx", "ort": ".ort", "pt2": ".pt2", "pte": ".pte"}
PROGRAMS = ("torchscript", "pt2", "pte")  # float32 only: no precision tag in the name
ONNX_BASED = ("onnx", "ort", "triton")  # derived from the one ONNX graph the export builds
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


@dataclass(frozen=True)
class ExportPlan:
    """What :func:`export_files` was asked to write, checked by :meth:`validate` before any export."""

    out: Path  # the folder
    formats: tuple[str, ...]  # in the order the files are written and returned
    opset: int = 17
    check: bool = True  # parity of each written file
    atol: float | None = None
    rtol: float | None = None
    triton: TritonConfig = field(default_factory=TritonConfig)  # options of the "triton" format
    precision: str = "fp32"  # of the ONNX-based files
    step_graph: bool = True  # model.step.onnx beside model.onnx (when the graph has one)
    strategy: str = "auto"  # the ONNX export strategy

    def validate(self) -> ExportPlan:
        """Check every option before anything is exported; returns self.

        Raises:
            ConfigError: an unknown format or precision, or a bad Triton option (format triton).
            OSError: ``out`` or a folder above it is a file (what ``mkdir`` would raise later).
        """
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"format: expected one or more of {', '.join(FORMATS)}, got {list(self.formats)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if "triton" in self.formats:
            self.triton.validate()
        _check_folder(self.out)
        return self

    @property
    def onnx_based(self) -> bool:
        """Whether a format asked for is derived from the ONNX graph."""
        return any(f in ONNX_BASED for f in self.formats)

    @property
    def graph_step_graph(self) -> bool:
        """Whether the ONNX graph is built with its step graph: model.onnx keeps it (unless
        ``step_graph`` is off) and the python flavour of Triton serves the file as is."""
        served = "triton" in self.formats and self.triton.serves_step_graph
        return (self.step_graph and "onnx" in self.formats) or served


@dataclass(frozen=True)
class OnnxGraph:
    """The ONNX graph every ONNX-based format is derived from, in the temporary folder."""

    result: ExportResult  # at the plan's precision: path, spec, strategy, attempts, step graph
    quantized: QuantizeResult | None = None  # what quantize() did (precision fp16/int8 only)


@dataclass(frozen=True)
class Written:
    """What one format's writer wrote, before its parity check."""

    result: ExportResult  # the written file (a Triton repository: its model.onnx)
    quantized: QuantizeResult | None = None
    judged_by: Path | None = None  # the file whose parity stands for it (default: result.path)


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
    when ``formats`` names it. The ONNX graph is exported once and every ONNX-based format
    (onnx, ort, triton) is derived from it (see the module's docstring for the steps).

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
        precision: "fp32", "fp16" or "int8" for the ONNX-based files (see :func:`quantize`).
        step_graph: write ``model.step.onnx`` (``model.int8.step.onnx``, ...) beside the ONNX file
            of a Scan graph (see :func:`export_onnx` and :func:`quantize`).
        strategy: the ONNX export strategy (see :func:`export_onnx`; "dynamo" for the
            TorchScript-free path).
        failures: when given, a format that cannot be exported (ExportError) is recorded
            here and the other formats are still written and checked; else it raises.
            An ONNX graph that cannot be exported is recorded for each ONNX-based format.

    Returns:
        One :class:`ExportedFile` per format, in order.

    Raises:
        ConfigError: an unknown format or precision, or for a seq2seq model (which exports
            as an ONNX bundle, ``encoder.onnx`` + ``decoder.onnx``, sharing one parity
            report) no onnx or a precision other than fp32; other formats asked together
            with onnx are skipped.
        ExportError: a format could not be exported.
    """
    plan = ExportPlan(
        Path(out_dir),
        tuple(formats),
        opset=opset,
        check=check,
        atol=atol,
        rtol=rtol,
        triton=triton or TritonConfig(),
        precision=precision,
        step_graph=step_graph,
        strategy=strategy,
    ).validate()
    if getattr(model, "kind", None) == "seq2seq":
        return _seq2seq_files(model, plan)
    files: list[ExportedFile] = []
    reports: dict[str, ParityReport] = {}  # sha256 of a checked file -> its report
    with tempfile.TemporaryDirectory(prefix="rnnx-export-") as tmp:
        graph = _onnx_graph(model, plan, Path(tmp), tolerate=failures is not None)
        for fmt in plan.formats:
            written = _write(fmt, model, graph, plan, failures)
            if written is not None:
                files.append(
                    ExportedFile(fmt, written.result, _check(model, written, plan, reports), written.quantized)
                )
    remove_stale(plan.out, [p for f in files for p in (f.result.path, f.result.step_graph_path) if p])
    return files


# ---------------------------------------------------------------------- the ONNX graph, once


def _onnx_graph(model: nn.Module, plan: ExportPlan, tmp: Path, tolerate: bool) -> OnnxGraph | ExportError | None:
    """The graph the ONNX-based formats share (None when none is asked).

    An ExportError is returned when ``tolerate`` (each ONNX-based format then records it as
    its failure), else raised before any file is written.
    """
    if not plan.onnx_based:
        return None
    try:
        return _convert_precision(_export_float32(model, plan, tmp), plan, tmp)
    except ExportError as e:
        if not tolerate:
            raise
        return e


def _export_float32(model: nn.Module, plan: ExportPlan, tmp: Path) -> ExportResult:
    """Derive the contract, build the candidate graphs, probe them, write the first that passes."""
    path = tmp / file_name("onnx")
    return export_onnx(model, path, opset=plan.opset, step_graph=plan.graph_step_graph, strategy=plan.strategy)


def _convert_precision(result: ExportResult, plan: ExportPlan, tmp: Path) -> OnnxGraph:
    """The float32 graph at the plan's precision (its step graph converted too)."""
    if plan.precision == "fp32":
        return OnnxGraph(result)
    q = quantize(result.path, tmp / file_name("onnx", plan.precision), precision=plan.precision)
    return OnnxGraph(dataclasses.replace(result, path=q.path, spec=q.spec, step_graph_path=q.step_graph_path), q)


def _source(graph: OnnxGraph | ExportError | None) -> OnnxGraph:
    """The shared graph, or its export's error raised for the format that needs it."""
    if isinstance(graph, ExportError):
        raise graph
    if graph is None:
        raise AssertionError("an ONNX-based format without an ONNX graph: ExportPlan.onnx_based is wrong")
    return graph


# ---------------------------------------------------------------------- one writer per format


def _write(
    fmt: str,
    model: nn.Module,
    graph: OnnxGraph | ExportError | None,
    plan: ExportPlan,
    failures: list[FormatFailure] | None,
) -> Written | None:
    """``WRITERS[fmt]``; an ExportError is recorded in ``failures`` (None: raised)."""
    try:
        return WRITERS[fmt](model, graph, plan)
    except ExportError as e:
        if failures is None:
            raise
        path, reason = _target(fmt, plan), " ".join(str(e).split())
        logger.warning("%s: not written (%s)", path.name, reason)
        failures.append(FormatFailure(fmt, path, reason))
        return None


def _target(fmt: str, plan: ExportPlan) -> Path:
    """The file a format writes (a Triton repository: its graph)."""
    if fmt == "triton":
        return plan.out / plan.triton.name / str(plan.triton.version) / ONNX_FILE
    return plan.out / file_name(fmt, plan.precision)


def _write_onnx(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    """``model.onnx`` (``model.int8.onnx``, ...): the shared graph, its step graph first."""
    source = _source(graph)
    return Written(_copy_onnx(source.result, _target("onnx", plan), plan.step_graph), source.quantized)


def _write_ort(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    """``model.ort``: the shared graph in onnxruntime's mobile format (no step graph)."""
    source, path = _source(graph), _target("ort", plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_ort(source.result.path, path)
    spec = dataclasses.replace(source.result.spec, step_graph=None)
    return Written(dataclasses.replace(source.result, path=path, step_graph_path=None, spec=spec), source.quantized)


def _write_triton(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    """The Triton repository built from the shared graph, judged by that graph's parity."""
    source = _source(graph)
    repo = export_triton(source.result.path, plan.out, plan.triton)
    step = repo.onnx_path.with_name(repo.spec.step_graph.file) if repo.spec.step_graph is not None else None
    result = dataclasses.replace(
        source.result, path=repo.onnx_path, spec=repo.spec, step_graph_path=step if step and step.is_file() else None
    )
    return Written(result, source.quantized, judged_by=source.result.path)


def _write_torchscript(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    logger.info("exporting %s to TorchScript", type(model).__name__)
    return Written(export_torchscript(model, _target("torchscript", plan)))


def _write_pt2(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    from rnnx.exporter.pt2_export import export_pt2

    logger.info("exporting %s as torch.export programs", type(model).__name__)
    return Written(export_pt2(model, _target("pt2", plan)))


def _write_pte(model: nn.Module, graph: OnnxGraph | ExportError | None, plan: ExportPlan) -> Written:
    from rnnx.exporter.pte_export import export_pte  # needs rnnx[executorch] only when asked

    logger.info("exporting %s as an ExecuTorch program", type(model).__name__)
    return Written(export_pte(model, _target("pte", plan)))


Writer = Callable[[nn.Module, "OnnxGraph | ExportError | None", ExportPlan], Written]
WRITERS: dict[str, Writer] = {
    "onnx": _write_onnx,
    "ort": _write_ort,
    "triton": _write_triton,
    "torchscript": _write_torchscript,
    "pt2": _write_pt2,
    "pte": _write_pte,
}


def _copy_onnx(made: ExportResult, path: Path, keep_step_graph: bool) -> ExportResult:
    """Write the graph ``made`` to ``path`` with its step graph (none unless ``keep_step_graph``),
    committed as one artifact like :func:`export_onnx` writes it (:func:`commit_onnx`)."""
    step = made.step_graph_path.read_bytes() if keep_step_graph and made.step_graph_path is not None else None
    spec, step_path = commit_onnx(load_onnx_with_weights(made.path), path, made.spec, step)
    return dataclasses.replace(made, path=path, spec=spec, step_graph_path=step_path)


# ---------------------------------------------------------------------- parity, once per graph


def _check(
    model: nn.Module, written: Written, plan: ExportPlan, reports: dict[str, ParityReport]
) -> ParityReport | None:
    """The parity report of the file that judges ``written`` (None: checks are off).

    Files with the same bytes share one check (the check is seeded: it would repeat itself):
    ``model.onnx`` and the graph a Triton repository was built from are the same file.
    """
    if not plan.check:
        return None
    judged = written.judged_by or written.result.path
    key = hashlib.sha256(judged.read_bytes()).hexdigest()
    if key not in reports:
        logger.info("checking parity of %s against the model", judged)
        reports[key] = check_parity(model, judged, atol=plan.atol, rtol=plan.rtol)
    return reports[key]


# ---------------------------------------------------------------------- the folder


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


# ---------------------------------------------------------------------- the seq2seq line


def _seq2seq_files(model: nn.Module, plan: ExportPlan) -> list[ExportedFile]:
    """A seq2seq model's own line: one ONNX bundle (``encoder.onnx`` + ``decoder.onnx``) in
    fp32, written and checked by :func:`export_seq2seq`, one parity report for both files."""
    if "onnx" not in plan.formats:
        raise ConfigError(
            f"format: a seq2seq model exports as an ONNX bundle (encoder.onnx + decoder.onnx); "
            f"expected onnx, got {list(plan.formats)}"
        )
    if plan.precision != "fp32":
        raise ConfigError(f"precision: a seq2seq bundle exports in fp32 only, got {plan.precision!r}")
    skipped = [f for f in plan.formats if f != "onnx"]
    if skipped:
        logger.info("seq2seq: skipping %s, the model exports as an ONNX bundle only", ", ".join(skipped))
    done = export_seq2seq(
        model, plan.out, opset=plan.opset, check=plan.check, atol=plan.atol, rtol=plan.rtol, strategy=plan.strategy
    )
    return [
        ExportedFile("onnx", ExportResult(path, spec, spec.exporter), done.report)
        for path, spec in ((p, read_spec(p)) for p in (done.encoder, done.decoder))
    ]
