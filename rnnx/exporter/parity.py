"""Parity between an eager model and its exported file (ONNX or TorchScript).

Every output and every state is compared in every case (full sequence, one step at a
time, chunks of 3) before a verdict is given, so a report shows all disagreements at
once. An element passes when ``|exported - eager| <= atol + rtol * |eager|``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from rnnx.errors import ExportError, SpecError
from rnnx.exporter.contract import TORCH_DTYPES, _config, derive_spec, eval_copy, init_state, run_eager
from rnnx.spec import ModelSpec
from rnnx.table import render

Runner = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


@dataclass(frozen=True)
class Tolerance:
    """Element-wise tolerance ``atol + rtol * |eager|``."""

    atol: float  # absolute part
    rtol: float  # relative part (matters for large outputs only)


# (family, precision) -> tolerance; "custom" covers user-written modules. Reduced precision is
# judged against the float eager model, so its entries hold the quantisation error measured on
# the zoo's families (tiny and H=64/256 models, T<=32, non-zero states) with a safety margin.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("rnn", "fp32"): Tolerance(1e-5, 1e-6),
    ("lstm", "fp32"): Tolerance(1e-5, 1e-6),
    ("gru", "fp32"): Tolerance(1e-5, 1e-6),
    ("convlstm", "fp32"): Tolerance(1e-5, 1e-5),  # convolutions sum many terms: more relative slack
    ("seq2seq", "fp32"): Tolerance(1e-5, 1e-5),  # generated sequences: outputs fed back, errors compound a little
    ("custom", "fp32"): Tolerance(1e-5, 1e-5),
    ("rnn", "fp16"): Tolerance(1e-2, 1e-2),
    ("lstm", "fp16"): Tolerance(1e-2, 1e-2),
    ("gru", "fp16"): Tolerance(1e-2, 1e-2),
    ("convlstm", "fp16"): Tolerance(1e-2, 1e-2),
    ("custom", "fp16"): Tolerance(1e-2, 1e-2),
    ("rnn", "int8"): Tolerance(5e-2, 5e-2),
    ("lstm", "int8"): Tolerance(5e-2, 5e-2),
    ("gru", "int8"): Tolerance(5e-2, 5e-2),
    ("convlstm", "int8"): Tolerance(5e-2, 5e-2),
    ("custom", "int8"): Tolerance(5e-2, 5e-2),
}
STREAM_CHUNK = 3  # chunk length of the "chunked" streaming case
PROBE_BATCHES = (3,)  # batch sizes of the export-time probe (the export example is batch 2)
PROBE_STEPS = (1, 7)  # sequence lengths of the probe (the example is 5 steps)


@dataclass(frozen=True)
class ParityRow:
    """One tensor compared in one case."""

    case: str  # "full", "step" or "chunk3"
    batch: int  # batch size
    steps: int  # sequence length
    tensor: str  # "y" or a state name
    max_abs: float  # max |exported - eager|
    max_rel: float  # max |exported - eager| / |eager| over elements with |eager| > atol
    atol: float  # tolerance used
    rtol: float
    score: float  # max |diff| / (atol + rtol |eager|); <= 1 passes
    ok: bool

    def label(self) -> str:
        return f"{self.case} b={self.batch} T={self.steps}"


@dataclass
class ParityReport:
    """All comparisons of one parity check.

    Attributes:
        path: the exported file.
        tolerance: the tolerance used, and ``tolerance_source`` says where it came from.
        rows: one row per tensor per case.
        notes: skipped cases and why.
    """

    path: str
    tolerance: Tolerance
    tolerance_source: str  # "table:lstm" or "user"
    rows: list[ParityRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def worst(self) -> ParityRow | None:
        """The row closest to (or furthest past) its tolerance."""
        return max(self.rows, key=lambda r: (r.score, r.max_abs), default=None)

    @property
    def max_abs(self) -> float:
        return max((r.max_abs for r in self.rows), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {"path": self.path, "ok": self.ok, "atol": self.tolerance.atol,
                "rtol": self.tolerance.rtol, "tolerance_source": self.tolerance_source,
                "max_abs": self.max_abs, "worst": asdict(worst) if worst else None,
                "rows": [asdict(r) for r in self.rows], "notes": list(self.notes)}

    def table(self) -> str:
        """One aligned line per tensor per case, then the verdict."""
        head = ("case", "tensor", "max_abs", "max_rel", "atol", "rtol", "result")
        text = [render(head, [(r.label(), r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}",
                               f"{r.atol:g}", f"{r.rtol:g}", "ok" if r.ok else "FAIL")
                              for r in self.rows])]
        text += [f"note: {n}" for n in self.notes]
        worst = self.worst
        verdict = "PASS" if self.ok else "FAIL"
        text.append(f"{verdict}: {len(self.rows)} comparisons, worst {worst.tensor} in "
                    f"{worst.label()}: max_abs {worst.max_abs:.3g} "
                    f"(tolerance {self.tolerance_source}: atol {self.tolerance.atol:g}, "
                    f"rtol {self.tolerance.rtol:g})" if worst else f"{verdict}: no comparisons")
        return "\n".join(text)


def compare(case: str, batch: int, steps: int, tensor: str, got: np.ndarray, ref: np.ndarray,
            tol: Tolerance) -> ParityRow:
    """Compare one exported tensor against the eager one."""
    if got.shape != ref.shape:
        inf = float("inf")
        return ParityRow(case, batch, steps, tensor, inf, inf, tol.atol, tol.rtol, inf, False)
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(got64 - ref64)
    diff[~np.isfinite(diff)] = np.inf
    mag = np.abs(ref64)
    bound = tol.atol + tol.rtol * mag
    big = mag > tol.atol
    max_rel = float((diff[big] / mag[big]).max()) if big.any() else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):  # atol = rtol = 0: exact match needed
        ratio = np.where(diff == 0, 0.0, diff / bound)
    score = float(ratio.max()) if diff.size else 0.0
    return ParityRow(case, batch, steps, tensor, max_abs, max_rel, tol.atol, tol.rtol,
                     score, bool(score <= 1.0))


def resolve_tolerance(kind: str, atol: float | None, rtol: float | None,
                      precision: str = "fp32") -> tuple[Tolerance, str]:
    """The (family, precision) table entry, with the user's overrides applied."""
    family = kind if (kind, precision) in TOLERANCES else "custom"
    if (family, precision) not in TOLERANCES:
        raise SpecError(f"precision: expected one of {', '.join(sorted({p for _, p in TOLERANCES}))}"
                        f", got {precision!r}")
    base = TOLERANCES[(family, precision)]
    source = f"table:{family}" + ("" if precision == "fp32" else f"/{precision}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    if atol is not None or rtol is not None:
        source = "user" if atol is not None and rtol is not None else f"user+{source}"
    return Tolerance(base.atol if atol is None else float(atol),
                     base.rtol if rtol is None else float(rtol)), source


def _tensor_tolerances(spec: ModelSpec, tolerances: Mapping[str, Tolerance] | None
                       ) -> dict[str, Tolerance]:
    """Validated per-output/state overrides (keys: the output name or a state name)."""
    names = [spec.output.name, *(s.name for s in spec.state)]
    extra = sorted(set(tolerances or {}) - set(names))
    if extra:
        raise SpecError(f"tolerances: expected keys among {names}, got unknown {extra}")
    return dict(tolerances or {})


def random_input(model: nn.Module, spec: ModelSpec, batch: int, steps: int,
                 seed: int) -> torch.Tensor:
    """Random input of the model's shape and dtype (token ids for integer inputs)."""
    if hasattr(model, "example_input"):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return model.example_input(batch, steps)
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, steps, *spec.input.feature_shape)
    dtype = TORCH_DTYPES[spec.input.dtype]
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.randint(0, _vocab(model), shape, generator=gen, dtype=dtype)


def _vocab(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    size = getattr(config, "vocab_size", None) or getattr(model, "vocab_size", None)
    if size:
        return int(size)
    embeddings = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    return min(embeddings) if embeddings else 2


def random_state(model: nn.Module, batch: int, seed: int) -> list[torch.Tensor]:
    """A non-zero state of ``init_state``'s shapes (zeros would hide state-handling bugs)."""
    gen = torch.Generator().manual_seed(seed + 1)
    return [(0.5 * torch.randn(z.shape, generator=gen)).to(z.dtype) if z.is_floating_point()
            else z for z in init_state(model, batch)]


def _check_contract(model_spec: ModelSpec, file_spec: ModelSpec) -> None:
    pairs = [("x", model_spec.input.feature_shape, file_spec.input.feature_shape),
             ("y", model_spec.output.feature_shape, file_spec.output.feature_shape),
             ("state", [s.shape for s in model_spec.state], [s.shape for s in file_spec.state])]
    for what, mine, theirs in pairs:
        if list(mine) != list(theirs):
            raise SpecError(f"{what}: the model has shape {list(mine)} but the exported file "
                            f"declares {list(theirs)}; they are not the same model")


def check_same_model(model: nn.Module, file_spec: ModelSpec) -> None:
    """Refuse ``model`` unless it is the model ``file_spec``'s file was exported from.

    Compares the feature and state shapes, and the kind and config when both carry one.

    Raises:
        SpecError: naming what differs.
    """
    work = eval_copy(model)
    _check_contract(derive_spec(work, random_input(work, file_spec, 2, 2, 0)), file_spec)
    mine = _config(work)
    if mine and file_spec.config and mine != dict(file_spec.config):
        keys = sorted(k for k in set(mine) | set(file_spec.config) if mine.get(k) != file_spec.config.get(k))
        diff = "; ".join(f"{k}: model {mine.get(k)!r}, file {file_spec.config.get(k)!r}" for k in keys)
        raise SpecError(f"config: the model and the exported file's model differ ({diff})")


def _stream(run: Runner, x: np.ndarray, state: list[np.ndarray], chunk: int,
            time_axis: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Feed ``x`` ``chunk`` steps at a time, carrying the exported model's own state."""
    ys = []
    for start in range(0, x.shape[time_axis], chunk):
        piece = np.take(x, range(start, min(start + chunk, x.shape[time_axis])), axis=time_axis)
        y, state = run(np.ascontiguousarray(piece), state)
        ys.append(y)
    return np.concatenate(ys, axis=time_axis), state


def _cases(spec: ModelSpec, steps: int, streaming: bool) -> list[tuple[str, int]]:
    cases = [("full", 0)]
    if streaming and spec.streamable:
        cases += [("step", 1)] if steps > 1 else []
        cases += [(f"chunk{STREAM_CHUNK}", STREAM_CHUNK)] if steps > STREAM_CHUNK else []
    return cases


def run_cases(model: nn.Module, run: Runner, spec: ModelSpec, tol: Tolerance,
              batch_sizes: Sequence[int], steps: Sequence[int], seed: int,
              streaming: bool, notes: list[str] | None = None,
              per_tensor: Mapping[str, Tolerance] | None = None) -> list[ParityRow]:
    """Compare ``run`` with eager ``model`` at every size and case; gathers every row.

    A run that raises counts as a failure of every tensor in that case (reason in ``notes``).
    ``per_tensor`` overrides ``tol`` for the output or a state, by name.
    """
    tols = {spec.output.name: tol, **{s.name: tol for s in spec.state}, **(per_tensor or {})}
    rows = []
    for b in batch_sizes:
        for t in steps:
            x = random_input(model, spec, b, t, seed + 1000 * b + t)
            state = random_state(model, b, seed + 1000 * b + t)
            ref_y, ref_state = run_eager(model, x, state)
            x_np, st_np = x.numpy(), [s.numpy() for s in state]
            for case, chunk in _cases(spec, t, streaming):
                try:
                    y, new = (run(x_np, st_np) if chunk == 0
                              else _stream(run, x_np, st_np, chunk, spec.input.time_axis))
                except Exception as e:  # the exported model cannot run at this size: a failure
                    if notes is not None:
                        notes.append(f"{case} b={b} T={t}: exported model raised "
                                     f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
                    y, new = np.empty(0), [np.empty(0) for _ in spec.state]
                rows.append(compare(case, b, t, spec.output.name, y, ref_y.numpy(),
                                    tols[spec.output.name]))
                rows += [compare(case, b, t, s.name, got, ref.numpy(), tols[s.name])
                         for s, got, ref in zip(spec.state, new, ref_state)]
    return rows


def probe(model: nn.Module, run: Runner, spec: ModelSpec, what: str = "parity probe") -> None:
    """The quick parity check an exporter runs on a candidate before keeping it.

    Batch 3 and lengths 1 and 7 (not the example's 2 x 5), full sequence and streamed,
    from non-zero states, at the family's tolerance.

    Raises:
        ExportError: ``"{what} failed: ..."`` naming the worst tensor and case, or the
            first error the candidate raised.
    """
    tol, _ = resolve_tolerance(spec.kind, None, None)
    notes: list[str] = []
    rows = run_cases(model, run, spec, tol, PROBE_BATCHES, PROBE_STEPS, seed=123,
                     streaming=True, notes=notes)
    if notes:
        raise ExportError(f"{what} failed: {notes[0]}")
    bad = [r for r in rows if not r.ok]
    if bad:
        worst = max(bad, key=lambda r: r.score)
        raise ExportError(f"{what} failed: {worst.tensor} in {worst.label()} differs by "
                          f"{worst.max_abs:.3g} (atol {worst.atol:g}, rtol {worst.rtol:g})")


def check_parity(model: nn.Module, exported_path: str | os.PathLike, *,
                 batch_sizes: Sequence[int] = (1, 3), steps: Sequence[int] = (1, 7, 32),
                 atol: float | None = None, rtol: float | None = None, seed: int = 0,
                 streaming: bool = True,
                 tolerances: Mapping[str, Tolerance] | None = None) -> ParityReport:
    """Compare an exported file with the eager model it came from.

    Args:
        model: the eager contract module (not modified: a deep copy runs in eval mode).
        exported_path: a ``.onnx`` file (run on onnxruntime CPU) or a TorchScript file; a
            seq2seq bundle (its folder or either file) goes to
            :func:`rnnx.exporter.seq2seq_export.check_seq2seq_parity`.
        batch_sizes: batch sizes to test.
        steps: sequence lengths to test.
        atol: absolute tolerance; default from :data:`TOLERANCES` for the model's family
            and the file's precision (an int8 file is judged with the int8 entry).
        rtol: relative tolerance; default from :data:`TOLERANCES`.
        seed: seed of the random inputs and non-zero initial states.
        streaming: also feed one step at a time and in chunks of 3 (streamable models only).
        tolerances: per-tensor overrides, keyed by the output name or a state name
            (e.g. ``{"c": Tolerance(1e-1, 1e-1)}``); the rest use ``atol``/``rtol``.

    Returns:
        A :class:`ParityReport`; ``report.ok`` is the verdict.

    Raises:
        ModelFileError: the file is missing, corrupt or has no ``rnnx.spec``.
        SpecError: the file's contract does not fit the model.

    Example::

        report = check_parity(model, "model.onnx")
        print(report.table())
    """
    from rnnx.exporter.runners import open_runner  # deferred: onnxruntime only when needed
    from rnnx.exporter.spec_io import read_spec

    if Path(exported_path).is_dir() or read_spec(exported_path).seq2seq is not None:
        from rnnx.exporter.seq2seq_export import check_seq2seq_parity

        return check_seq2seq_parity(model, exported_path, atol=atol, rtol=rtol, batches=batch_sizes, seed=seed)
    run, spec = open_runner(exported_path)
    work = eval_copy(model)
    example = random_input(work, spec, 2, 2, seed)
    _check_contract(derive_spec(work, example), spec)
    tol, source = resolve_tolerance(spec.kind, atol, rtol, spec.precision)
    per_tensor = _tensor_tolerances(spec, tolerances)
    report = ParityReport(os.fspath(exported_path), tol, source)
    report.rows = run_cases(work, run, spec, tol, batch_sizes, steps, seed, streaming,
                            report.notes, per_tensor)
    if per_tensor:
        report.tolerance_source += " (+per tensor: " + ", ".join(sorted(per_tensor)) + ")"
    if streaming and not spec.streamable:
        report.notes.append("streaming cases skipped: the model is not streamable "
                            "(bidirectional); only full sequences were compared")
    return report
