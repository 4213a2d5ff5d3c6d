"""Parity between an eager model and its exported file (ONNX or TorchScript).

Every output and every state is compared in every case (full sequence, one step at a
time, chunks of 3) before a verdict is given, so a report shows all disagreements at
once. An element passes when ``|exported - eager| <= atol + rtol * |eager|``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnx.errors import ExportError, SpecError, cause_text
from rnnx.exporter.contract import TORCH_DTYPES, _config, derive_spec, eval_copy, init_state, run_eager, shaped_example
from rnnx.exporter.runners import open_runner
from rnnx.exporter.seq2seq_export import check_seq2seq_parity
from rnnx.onnx_tools.compare import (
    PROBE_BATCHES,
    PROBE_STEPS,
    STREAM_CHUNK,
    ParityReport,
    ParityRow,
    Tolerance,
    compare,
    resolve_tolerance,
)
from rnnx.onnx_tools.runners import Runner
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.spec import ModelSpec


def _tensor_tolerances(spec: ModelSpec, tolerances: Mapping[str, Tolerance] | None) -> dict[str, Tolerance]:
    """Validated per-output/state overrides (keys: the output name or a state name)."""
    names = [spec.output.name, *(s.name for s in spec.state)]
    extra = sorted(set(tolerances or {}) - set(names))
    if extra:
        raise SpecError(f"tolerances: expected keys among {names}, got unknown {extra}")
    return dict(tolerances or {})


def random_input(model: nn.Module, spec: ModelSpec, batch: int, steps: int, seed: int) -> torch.Tensor:
    """Random input of the model's shape and dtype (token ids for integer inputs)."""
    if getattr(model, "example_shape", None) is not None:  # the user's declared input wins
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            declared = shaped_example(model, batch, steps)
        if declared is not None:
            return declared
    example_input = getattr(model, "example_input", None)
    if callable(example_input):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            try:
                x = example_input(batch, steps)
            except ExportError:  # the model cannot say: the file's contract does
                x = None
        if x is not None and _fits(x, spec):
            return x
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, steps, *spec.input.feature_shape)
    dtype = TORCH_DTYPES[spec.input.dtype]
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    vocab = spec.input.vocab_size or _vocab(model)  # the contract's, else read off the model
    return torch.randint(0, vocab, shape, generator=gen, dtype=dtype)


def _fits(x: torch.Tensor, spec: ModelSpec) -> bool:
    """``x`` has the feature shape and dtype the exported file declares."""
    return tuple(x.shape[2:]) == tuple(spec.input.feature_shape) and x.dtype == TORCH_DTYPES[spec.input.dtype]


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
    return [
        (0.5 * torch.randn(z.shape, generator=gen)).to(z.dtype) if z.is_floating_point() else z
        for z in init_state(model, batch)
    ]


def _check_contract(model_spec: ModelSpec, file_spec: ModelSpec) -> None:
    pairs = [
        ("x", model_spec.input.feature_shape, file_spec.input.feature_shape),
        ("y", model_spec.output.feature_shape, file_spec.output.feature_shape),
        ("state", [s.shape for s in model_spec.state], [s.shape for s in file_spec.state]),
    ]
    for what, mine, theirs in pairs:
        if list(mine) != list(theirs):
            raise SpecError(
                f"{what}: the model has shape {list(mine)} but the exported file "
                f"declares {list(theirs)}; they are not the same model"
            )


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


def _stream(
    run: Runner, x: np.ndarray, state: list[np.ndarray], chunk: int, time_axis: int | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Feed ``x`` ``chunk`` steps at a time, carrying the exported model's own state."""
    if time_axis is None:
        raise SpecError(f"streaming {chunk} steps at a time: expected an input with a time axis, got none")
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


def run_cases(
    model: nn.Module,
    run: Runner,
    spec: ModelSpec,
    tol: Tolerance,
    batch_sizes: Sequence[int],
    steps: Sequence[int],
    seed: int,
    streaming: bool,
    notes: list[str] | None = None,
    per_tensor: Mapping[str, Tolerance] | None = None,
) -> list[ParityRow]:
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
                    y, new = run(x_np, st_np) if chunk == 0 else _stream(run, x_np, st_np, chunk, spec.input.time_axis)
                except Exception as e:  # the exported model cannot run at this size: a failure
                    if notes is not None:
                        notes.append(f"{case} b={b} T={t}: exported model raised {type(e).__name__}: {cause_text(e)}")
                    y, new = np.empty(0), [np.empty(0) for _ in spec.state]
                rows.append(compare(case, b, t, spec.output.name, y, ref_y.numpy(), tols[spec.output.name]))
                rows += [
                    compare(case, b, t, s.name, got, ref.numpy(), tols[s.name])
                    for s, got, ref in zip(spec.state, new, ref_state)
                ]
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
    rows = run_cases(model, run, spec, tol, PROBE_BATCHES, PROBE_STEPS, seed=123, streaming=True, notes=notes)
    if notes:
        raise ExportError(f"{what} failed: {notes[0]}")
    bad = [r for r in rows if not r.ok]
    if bad:
        worst = max(bad, key=lambda r: r.score)
        raise ExportError(
            f"{what} failed: {worst.tensor} in {worst.label()} differs by "
            f"{worst.max_abs:.3g} (atol {worst.atol:g}, rtol {worst.rtol:g})"
        )


def check_parity(
    model: nn.Module,
    exported_path: str | os.PathLike,
    *,
    batch_sizes: Sequence[int] = (1, 3),
    steps: Sequence[int] = (1, 7, 32),
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
    streaming: bool = True,
    tolerances: Mapping[str, Tolerance] | None = None,
) -> ParityReport:
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
    spec = None if Path(exported_path).is_dir() else read_spec(exported_path)
    if spec is None or spec.seq2seq is not None:
        return check_seq2seq_parity(model, exported_path, atol=atol, rtol=rtol, batches=batch_sizes, seed=seed)
    run, spec = open_runner(exported_path, spec)  # the file read once
    work = eval_copy(model)
    example = random_input(work, spec, 2, 2, seed)
    _check_contract(derive_spec(work, example), spec)
    tol, source = resolve_tolerance(spec.kind, atol, rtol, spec.precision)
    per_tensor = _tensor_tolerances(spec, tolerances)
    report = ParityReport(os.fspath(exported_path), tol, source)
    report.rows = run_cases(work, run, spec, tol, batch_sizes, steps, seed, streaming, report.notes, per_tensor)
    if per_tensor:
        report.tolerance_source += " (+per tensor: " + ", ".join(sorted(per_tensor)) + ")"
    if streaming and not spec.streamable:
        report.notes.append(
            "streaming cases skipped: the model is not streamable (bidirectional); only full sequences were compared"
        )
    return report
