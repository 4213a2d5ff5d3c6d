"""Export an encoder–decoder (:class:`rnnx.models.Seq2Seq`) as a two-graph ONNX bundle.

``out_dir/encoder.onnx``: window ``x (batch, time, F)`` -> ``memory`` (the encoder outputs,
``(batch, time, H)``), the decoder's first state ``{name}_init`` and first input
``y_init`` (and ``base`` with ``residual_input``). ``out_dir/decoder.onnx``: one step,
``y_prev``, ``{name}_in`` (and ``memory`` with attention, ``base`` with a residual) ->
``y``, ``{name}_out``. Both files carry the same :class:`rnnx.spec.Seq2SeqSpec` under
``rnnx.spec`` (roles ``encoder`` and ``decoder``): no side file is needed.
Batch and window length are dynamic; the memory is a decoder INPUT with a dynamic
length, not a state. The bundle is checked against eager ``model.forecast`` at window
lengths, batch sizes and step counts other than the export example.

Example:
    >>> from rnnx.models import build
    >>> model = build("seq2seq", input_size=7, hidden_size=8, horizon=3, window=10, attention=True)
    >>> done = export_seq2seq(model, "exported")
    >>> done.report.ok, done.encoder.name, done.decoder.name, [c.name for c in done.spec.context]
    (True, 'encoder.onnx', 'decoder.onnx', ['memory'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import onnx
import torch
from torch import nn

from rnnx.atomic import commit_files, member_path
from rnnx.errors import ExportError, SpecError, cause_text
from rnnx.exporter.contract import dtype_name, eval_copy, producer_versions, window_input
from rnnx.exporter.strategies.base import export_traced, legacy_onnx_exporter
from rnnx.exporter.strategies.dynamo import export_dynamo
from rnnx.onnx_tools.compare import ParityReport, compare, resolve_tolerance
from rnnx.onnx_tools.graph import finalize, store_spec, write_shape
from rnnx.spec import BATCH, METADATA_KEY, TIME, IOSpec, ModelSpec, Seq2SeqSpec, StateSpec, TensorSpec
from rnnx.version import __version__

if TYPE_CHECKING:
    from rnnx.models.seq2seq import Seq2Seq

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
EXAMPLE = (2, 5)  # (batch, window length) the graphs are traced at
PARITY_WINDOWS = (1, 3, 8)  # window lengths of the parity check (none is the example's); + window + 3
PARITY_BATCHES = (1, 3)  # batch sizes of the parity check
EXTRA_STEPS = 2  # the check also generates horizon + EXTRA_STEPS steps (beyond training)


_ENCODER = re.compile(r"encoder(\.[0-9a-f]{12})?\.onnx")  # the bundle's encoder files (current and stale)


@dataclass(frozen=True)
class Seq2SeqExport:
    """What :func:`export_seq2seq` wrote."""

    encoder: Path  # encoder.onnx
    decoder: Path  # decoder.onnx
    spec: Seq2SeqSpec  # the bundle contract (stored in both files)
    report: ParityReport | None  # None when the check was skipped

    @property
    def folder(self) -> Path:
        return self.encoder.parent


# ---------------------------------------------------------------------- graph modules
class _EncoderGraph(nn.Module):
    """``x -> (memory, *state, y_init[, base])`` with a flat signature for tracing."""

    def __init__(self, model: Seq2Seq, with_base: bool) -> None:
        super().__init__()
        self.model, self.with_base = model, with_base

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        memory, state, first, base = self.model.encode(x)
        return (memory, *state, first, *([base] if self.with_base else []))


class _DecoderGraph(nn.Module):
    """``(y_prev, *state[, memory][, base]) -> (y, *new_state)`` with a flat signature."""

    def __init__(self, model: Seq2Seq, n_state: int, memory_size: int, with_memory: bool, with_base: bool) -> None:
        super().__init__()
        self.model, self.n_state, self.memory_size = model, n_state, memory_size
        self.with_memory, self.with_base = with_memory, with_base

    def forward(self, y_prev: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state, rest = list(rest[: self.n_state]), rest[self.n_state :]
        b = y_prev.shape[0]
        memory = rest[0] if self.with_memory else y_prev.new_zeros((b, 0, self.memory_size))
        base = rest[-1] if self.with_base else y_prev.new_zeros((b, 1))
        y, new = self.model.step(y_prev, state, memory, base)
        return (y, *new)


# ---------------------------------------------------------------------- the contract
SEQ2SEQ_API = ("encode", "step", "forecast", "horizon", "window")


def _is_seq2seq(model: nn.Module) -> TypeGuard[Seq2Seq]:
    """Whether ``model`` has the :class:`rnnx.models.Seq2Seq` API the bundle is built from."""
    return all(hasattr(model, a) for a in SEQ2SEQ_API)


def _encode(model: Seq2Seq, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model.encode(x)
    if not (isinstance(out, tuple) and len(out) == 4):
        raise ExportError(
            f"{type(model).__name__}.encode: expected (memory, state, first, base), got {type(out).__name__}"
        )
    memory, state, first, base = out
    if not isinstance(memory, torch.Tensor) or memory.dim() != 3 or tuple(memory.shape[:2]) != tuple(x.shape[:2]):
        raise ExportError(
            f"encoder: expected outputs of shape (batch, T, H) = {tuple(x.shape[:2])} + (H,), got "
            f"{getattr(memory, 'shape', type(memory).__name__)}"
        )
    if not state or not all(isinstance(s, torch.Tensor) for s in state):
        raise ExportError(f"encoder: expected a non-empty list of state tensors, got {state!r:.80}")
    return memory, list(state), first, base


def _batch_axis(a: torch.Tensor, b: torch.Tensor, where: str) -> int:
    diff = [k for k, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q]
    if a.dim() != b.dim() or len(diff) != 1:
        raise ExportError(
            f"{where}: expected exactly one batch axis; got shape {tuple(a.shape)} at batch "
            f"{EXAMPLE[0]} and {tuple(b.shape)} at batch {EXAMPLE[0] + 1}"
        )
    return diff[0]


def _state_names(model: Seq2Seq, count: int) -> list[str]:
    names = list(getattr(model.decoder, "state_names", None) or [f"state{i}" for i in range(count)])
    if len(names) != count or len(set(names)) != count:
        raise ExportError(f"decoder.state_names: expected {count} unique names, got {names}")
    return names


def derive_bundle_spec(model: Seq2Seq, example: torch.Tensor) -> Seq2SeqSpec:
    """Read the bundle contract off ``model`` by running its encoder and one decoder step.

    Raises:
        ExportError: the model breaks the encoder or decoder contract.
    """
    memory, state, first, base = _encode(model, example)
    _, state3, _, _ = _encode(model, torch.cat([example, example[:1]]))
    with torch.no_grad():
        y, new = model.step(first, state, memory, base)
    if tuple(y.shape) != tuple(first.shape) or [tuple(s.shape) for s in new] != [tuple(s.shape) for s in state]:
        raise ExportError(
            f"decoder: expected y {tuple(first.shape)} and state {[tuple(s.shape) for s in state]}, "
            f"got y {tuple(y.shape)} and state {[tuple(s.shape) for s in new]}"
        )
    names = _state_names(model, len(state))
    states = []
    for n, s, s3 in zip(names, state, state3):
        axis = _batch_axis(s, s3, f"encoder state {n}")
        shape = tuple(BATCH if k == axis else int(d) for k, d in enumerate(s.shape))
        states.append(StateSpec(n, shape, dtype_name(s.dtype, f"state {n}"), input=f"{n}_in", output=f"{n}_out"))
    out_size, hidden = int(first.shape[1]), int(memory.shape[2])
    dt = dtype_name(first.dtype, "y")
    mem = TensorSpec("memory", (BATCH, TIME, hidden), dtype_name(memory.dtype, "memory"))
    base_t = TensorSpec("base", (BATCH, 1), dt)
    attention, residual = bool(model.attention), model.residual >= 0
    context = tuple([mem] if attention else []) + tuple([base_t] if residual else [])
    outputs = (
        mem,
        *(s.as_tensor(f"{s.name}_init") for s in states),
        TensorSpec("y_init", (BATCH, out_size), dt),
        *([base_t] if residual else []),
    )
    init = {"y_prev": "y_init", **{s.input: f"{s.name}_init" for s in states}, **{c.name: c.name for c in context}}
    return Seq2SeqSpec(
        encoder=ENCODER_FILE,
        decoder=DECODER_FILE,
        input=window_input(example),
        output=IOSpec("y", (BATCH, out_size), dt, batch_axis=0, time_axis=None),
        feedback="y_prev",
        state=tuple(states),
        context=context,
        encoder_outputs=outputs,
        init=init,
        horizon=int(model.horizon),
        window=int(model.window),
    )


def _file_specs(
    model: Seq2Seq, bundle: Seq2SeqSpec, opset: int, exporter: str = "trace"
) -> tuple[ModelSpec, ModelSpec]:
    config = model.config.to_dict() if hasattr(model.config, "to_dict") and not model.custom else {}
    common: dict[str, Any] = dict(
        streamable=False,
        rnnx_version=__version__,
        kind="seq2seq",
        config=config,
        opset=opset,
        exporter=exporter,
        extra={"producers": producer_versions()},
        seq2seq=bundle,
    )
    mem = bundle.encoder_outputs[0]
    encoder = ModelSpec(
        input=bundle.input,
        output=IOSpec(mem.name, mem.shape, mem.dtype, batch_axis=0, time_axis=1),
        state=(),
        role="encoder",
        **common,
    )
    decoder = ModelSpec(
        input=IOSpec(bundle.feedback, bundle.output.shape, bundle.output.dtype, batch_axis=0, time_axis=None),
        output=bundle.output,
        state=bundle.state,
        role="decoder",
        **common,
    )
    return encoder, decoder


def _axes(tensors: Sequence[TensorSpec]) -> dict[str, dict[int, str]]:
    out = {}
    for t in tensors:
        name = t.input if isinstance(t, StateSpec) else t.name
        out[name] = {k: d for k, d in enumerate(t.shape) if isinstance(d, str)}
        if isinstance(t, StateSpec):
            out[t.output] = dict(out[name])
    return out


def _set_shapes(proto: onnx.ModelProto, tensors: dict[str, tuple]) -> None:
    """Write the contract's shapes on graph I/O, refusing a dynamic axis the trace fixed."""
    for v in [*proto.graph.input, *proto.graph.output]:
        if v.name not in tensors:
            continue
        shape, dims = tensors[v.name], v.type.tensor_type.shape.dim
        for k, d in enumerate(shape):
            if isinstance(d, str) and dims and len(dims) == len(shape) and dims[k].HasField("dim_value"):
                raise ExportError(
                    f"{v.name}: axis {k} ({d}) is fixed to {dims[k].dim_value} in the graph; it must stay symbolic"
                )
        write_shape(v, shape)


def _build(
    module: nn.Module, args: tuple, names: tuple[list[str], list[str]], tensors: list, spec: ModelSpec, opset: int
) -> onnx.ModelProto:
    shapes = {}
    for t in tensors:
        if isinstance(t, StateSpec):
            shapes[t.input] = shapes[t.output] = t.shape
        else:
            shapes[t.name] = t.shape
    try:
        if spec.exporter == "dynamo":
            proto = export_dynamo(module, args, names, _axes(tensors), opset)
        else:
            proto = export_traced(module, args, spec, opset, names=names, axes=_axes(tensors))
    except Exception as e:  # torch raises many types while tracing; each is a failed export
        raise ExportError(
            f"could not export ({spec.exporter}) the {spec.role} of {type(module.model).__name__}: {cause_text(e)}"
        ) from e
    _set_shapes(proto, shapes)
    return finalize(proto, spec)


def build_bundle(
    model: Seq2Seq, example: torch.Tensor, opset: int = 17, exporter: str = "trace"
) -> tuple[onnx.ModelProto, onnx.ModelProto, Seq2SeqSpec]:
    """Export the encoder and decoder-step graphs of an eval-mode ``model`` (in memory).

    ``exporter``: "trace" (torch's TorchScript-based exporter) or "dynamo" (torch.export).
    """
    bundle = derive_bundle_spec(model, example)
    enc_spec, dec_spec = _file_specs(model, bundle, opset, exporter)
    memory, state, first, base = _encode(model, example)
    with_base = any(c.name == "base" for c in bundle.context)
    with_memory = any(c.name == "memory" for c in bundle.context)
    encoder = _build(
        _EncoderGraph(model, with_base),
        (example,),
        ([bundle.input.name], [t.name for t in bundle.encoder_outputs]),
        [bundle.input, *bundle.encoder_outputs],
        enc_spec,
        opset,
    )
    dec_inputs = [bundle.feedback, *(s.input for s in bundle.state), *(c.name for c in bundle.context)]
    dec_outputs = [bundle.output.name, *(s.output for s in bundle.state)]
    args = (first, *state, *([memory] if with_memory else []), *([base] if with_base else []))
    feedback = bundle.output.as_tensor(bundle.feedback)
    decoder = _build(
        _DecoderGraph(model, len(state), int(memory.shape[2]), with_memory, with_base),
        args,
        (dec_inputs, dec_outputs),
        [feedback, *bundle.state, *bundle.context, bundle.output],
        dec_spec,
        opset,
    )
    return encoder, decoder, bundle


# ---------------------------------------------------------------------- export + parity
def _example(model: Seq2Seq, example_input: torch.Tensor | None) -> torch.Tensor:
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() != 3:
            raise ExportError(
                f"example_input: expected a (batch, T, features) window, got "
                f"{getattr(example_input, 'shape', type(example_input).__name__)}"
            )
        return example_input
    return torch.randn(EXAMPLE[0], EXAMPLE[1], int(model.input_size))


def export_seq2seq(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    opset: int = 17,
    example_input: torch.Tensor | None = None,
    check: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    strategy: str = "auto",
) -> Seq2SeqExport:
    """Write ``out_dir/encoder.onnx`` and ``out_dir/decoder.onnx`` and check them against eager.

    Args:
        model: a :class:`rnnx.models.Seq2Seq` (zoo-built or :meth:`~rnnx.models.Seq2Seq.from_modules`).
            It is not modified: an eval-mode deep copy is exported.
        out_dir: folder to write (created).
        opset: ONNX opset.
        example_input: ``(batch, T, features)`` window to trace at; default random ``(2, 5, F)``.
        check: run :func:`check_seq2seq_parity` on the written bundle.
        atol: parity tolerance override.
        rtol: parity tolerance override.
        strategy: "dynamo" (torch.export, TorchScript-free), "trace" (torch's TorchScript-based
            exporter) or "auto": trace while torch ships it, else dynamo. Other ONNX strategy
            names (scan, ...) mean auto here.

    Returns:
        A :class:`Seq2SeqExport` (both paths, the contract, the parity report).

    Raises:
        ExportError: the model breaks the encoder/decoder contract or cannot be traced.
    """
    work = eval_copy(model)
    if not _is_seq2seq(work):
        raise ExportError(
            f"{type(model).__name__}: expected an rnnx.models.Seq2Seq ({', '.join(SEQ2SEQ_API)}); "
            f"wrap your encoder and decoder with Seq2Seq.from_modules(encoder, decoder, ...)"
        )
    example = _example(work, example_input)
    exporter = strategy if strategy in ("dynamo", "trace") else "trace" if legacy_onnx_exporter() else "dynamo"
    if exporter == "dynamo":  # torch.export translates to opset 18 (ReduceMean & co. changed there)
        opset = max(opset, 18)
    encoder, decoder, bundle = build_bundle(work, example, opset, exporter)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dec_path = out / bundle.decoder
    enc_bytes = encoder.SerializeToString()
    # the decoder is the bundle's manifest: it names its encoder with its SHA-256 (checked at
    # open) and is written last; the encoder goes under a name the current decoder does not
    # read (encoder.<sha12>.onnx while a different encoder.onnx is there), so a kill leaves the
    # old bundle or the new one, and a reader never pairs a decoder with another export's encoder
    enc_path = member_path(out / bundle.encoder, enc_bytes)
    dec_spec = ModelSpec.from_json(next(p.value for p in decoder.metadata_props if p.key == METADATA_KEY))
    tied = dataclasses.replace(
        dec_spec,
        seq2seq=dataclasses.replace(
            bundle, encoder=enc_path.name, encoder_sha256=hashlib.sha256(enc_bytes).hexdigest()
        ),
    )
    store_spec(decoder, tied)
    stale = [p for p in out.glob("encoder*.onnx") if _ENCODER.fullmatch(p.name) and p != enc_path]
    commit_files(dec_path, decoder.SerializeToString(), {enc_path: enc_bytes}, stale)
    report = check_seq2seq_parity(work, out, atol=atol, rtol=rtol) if check else None
    return Seq2SeqExport(enc_path, dec_path, bundle, report)


def check_seq2seq_parity(
    model: nn.Module,
    bundle: str | os.PathLike,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    windows: Sequence[int] | None = None,
    batches: Sequence[int] = PARITY_BATCHES,
    seed: int = 0,
) -> ParityReport:
    """Compare the bundle's generated sequences with eager ``model.forecast``.

    Cases, each at every batch size and window length: ``forecast{S}`` generates S steps
    (the trained horizon, and horizon + 2) from a window; ``stream`` pushes rows one at a
    time into a :class:`rnnx.runtime.ForecastStream` (window = the model's) and compares
    the forecast after every row with eager on the same rows. Every row is compared
    before the verdict.

    Args:
        model: the eager model.
        bundle: the bundle folder (or either file).
        atol: tolerance override (default: the ``seq2seq`` family entry, else ``custom``).
        rtol: tolerance override.
        windows: window lengths of the ``forecast`` cases; default ``PARITY_WINDOWS`` and
            the model's window + 3.
        batches: batch sizes.
        seed: seeds the random windows (raw-unit rows scaled around the normalisation).

    Returns:
        The :class:`ParityReport` (``tensor`` is ``y``, ``steps`` the window length).
    """
    from rnnx.runtime.forecast import ForecastSession

    if not _is_seq2seq(model):
        raise SpecError(
            f"{bundle}: a seq2seq bundle; expected an rnnx.models.Seq2Seq model to compare it "
            f"with, got {type(model).__name__}"
        )
    work = eval_copy(model)
    sess = ForecastSession(bundle, threads=1)  # tiny graphs: threads only add contention
    tol, source = resolve_tolerance("seq2seq", atol, rtol)
    report = ParityReport(str(bundle), tol, source)
    gen = torch.Generator().manual_seed(seed)
    horizon = int(work.horizon)
    if windows is None:
        windows = sorted({*PARITY_WINDOWS, int(work.window) + 3})
    for b in batches:
        for w in windows:
            x = _random_rows(work, b, w, gen)
            for steps in (horizon, horizon + EXTRA_STEPS):
                with torch.no_grad():
                    ref = work.forecast(x, steps).numpy()
                got = sess.forecast(x.numpy(), steps)
                report.rows.append(compare(f"forecast{steps}", b, w, "y", got, ref, tol))
        report.rows.append(_stream_case(work, sess, b, gen, tol))
    return report


def _random_rows(model: Seq2Seq, batch: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(batch, steps, int(model.input_size), generator=gen)
    if getattr(model, "normalize", False):
        x = x * model.in_std + model.in_mean  # rows in the model's raw units
    return x


def _stream_case(model: Seq2Seq, sess: Any, batch: int, gen: torch.Generator, tol: Any) -> Any:
    window = int(model.window)
    x = _random_rows(model, batch, window + 3, gen)
    stream = sess.stream(batch_size=batch)
    got, ref = [], []
    for t in range(x.shape[1]):
        stream.push(x[:, t].numpy())
        got.append(stream.forecast())
        with torch.no_grad():
            ref.append(model.forecast(x[:, max(0, t + 1 - window) : t + 1], model.horizon).numpy())
    return compare("stream", batch, x.shape[1], "y", np.stack(got), np.stack(ref), tol)


__all__ = [
    "Seq2SeqExport",
    "export_seq2seq",
    "check_seq2seq_parity",
    "derive_bundle_spec",
    "build_bundle",
    "ENCODER_FILE",
    "DECODER_FILE",
]
