"""Derive the state contract (:class:`rnnx.spec.ModelSpec`) of any contract-following module.

A contract module takes batch-first ``x`` and a list of state tensors and returns
``(y, new_state)``; ``init_state(batch_size)`` gives the zero state. Everything the
exported file promises (names, shapes, dtypes, which axis is the batch) is read off
the module by running it once, never declared twice.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import onnx
import torch
from torch import nn

from rnnx.errors import ContractError, ExportError, RnnxError, cause_text
from rnnx.models._base import eval_copy as eval_copy  # re-exported for the exporter modules
from rnnx.spec import BATCH, DTYPES, TIME, DataSpec, IOSpec, ModelSpec, StateSpec
from rnnx.version import __version__

EXAMPLE_BATCH = 2  # batch size of the example the graph is exported at
EXAMPLE_STEPS = 5  # time steps of the example (not 1: a T=1 trace hides time-dependent shapes)

_DTYPE_NAMES = {getattr(torch, name): name for name in DTYPES}  # torch.float32 -> "float32"
TORCH_DTYPES = {name: dt for dt, name in _DTYPE_NAMES.items()}  # "float32" -> torch.float32


def dtype_name(dtype: torch.dtype, where: str) -> str:
    """The spec name of a torch dtype (``torch.float32`` -> ``"float32"``)."""
    if dtype not in _DTYPE_NAMES:
        raise ExportError(f"{where}: expected one of {', '.join(_DTYPE_NAMES.values())}, got {dtype}")
    return _DTYPE_NAMES[dtype]


def example_for(
    model: nn.Module, example_input: torch.Tensor | None = None, batch: int = EXAMPLE_BATCH, steps: int = EXAMPLE_STEPS
) -> torch.Tensor:
    """The example input: ``example_input`` if given, else ``model.example_input(batch, steps)``."""
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise ExportError(
                f"example_input: expected a tensor (batch, time, ...), got "
                f"{getattr(example_input, 'shape', type(example_input).__name__)}"
            )
        return example_input
    make = getattr(model, "example_input", None)
    if getattr(model, "init_state", None) is None:
        raise _no_init_state(model)
    given = shaped_example(model)
    if given is not None:  # the user's --example-shape/--example-dtype wins over any guess
        return given
    if make is None:
        raise ExportError(
            f"{type(model).__name__} has no example_input(batch, steps) method: "
            f"pass example_input= (a batch-first tensor, e.g. shape (2, 5, features)); "
            f"from the command line: --example-shape 2,5,FEATURES"
        )
    return make(batch, steps)


def shaped_example(model: nn.Module, batch: int | None = None, steps: int | None = None) -> torch.Tensor | None:
    """The input the user declared (``model.example_shape``/``example_dtype``, set from
    ``--example-shape B,T,F...``/``--example-dtype``), at its own B and T unless given; else None.

    Token ids (``example_dtype`` int64/int32) lie in ``[0, vocab)`` of the model's Embedding.
    """
    shape = getattr(model, "example_shape", None)
    if shape is None:
        return None
    dims = tuple(int(d) for d in shape)
    full = (dims[0] if batch is None else batch, dims[1] if steps is None else steps, *dims[2:])
    dtype = TORCH_DTYPES[str(getattr(model, "example_dtype", None) or "float32")]
    if dtype.is_floating_point:
        return torch.randn(full, dtype=dtype)
    tables = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    return torch.randint(0, min(tables) if tables else 2, full, dtype=dtype)


def _wrap_hint(model: nn.Module, **options: Any) -> str:
    """``rnnx.wrap(...)`` text for a module that almost follows the contract."""
    from rnnx.models.wrap import suggest_call  # deferred: rnnx.models is only needed here

    state = None
    if getattr(model, "init_state", None) is not None:
        try:
            state = _state_shapes(model)
        except Exception:  # no usable shapes to show: let wrap's guess stand
            state = None
    return suggest_call(model, state=state, **options)


def _no_init_state(model: nn.Module) -> ContractError:
    from rnnx.models.advice import route_for  # deferred: rnnx.models is only needed here

    return ContractError(
        f"{type(model).__name__}: expected an init_state(batch_size) method "
        f"returning the list of zero state tensors, found none; "
        f"{route_for(model).text()}"
    )


def init_state(model: nn.Module, batch: int) -> list[torch.Tensor]:
    """``model.init_state(batch)`` as a list, with a clear error when the method is missing."""
    fn = getattr(model, "init_state", None)
    if fn is None:
        raise _no_init_state(model)
    state = fn(batch)
    if isinstance(state, torch.Tensor):
        raise ContractError(
            f"{type(model).__name__}.init_state: expected a list of state tensors, got a Tensor "
            f"of shape {tuple(state.shape)}; return [h] instead of h, or use the module as "
            f'written: rnnx.wrap(model, state=[shape with "batch"], ...)'
        )
    if not isinstance(state, (list, tuple)) or not all(isinstance(s, torch.Tensor) for s in state):
        raise ContractError(
            f"{type(model).__name__}.init_state: expected a list of state tensors, got {type(state).__name__}"
        )
    return list(state)


def _state_shapes(model: nn.Module) -> list[tuple[Any, ...]]:
    """State shapes with ``"batch"`` at the one axis that changes between batch 2 and 3."""
    two, three = init_state(model, 2), init_state(model, 3)
    shapes = []
    for i, (a, b) in enumerate(zip(two, three)):
        diff = [k for k, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q]
        if len(diff) != 1 or a.dim() != b.dim():
            raise ExportError(
                f"init_state: state {i} must have exactly one batch axis; got shape "
                f"{tuple(a.shape)} at batch 2 and {tuple(b.shape)} at batch 3"
            )
        shapes.append(tuple(BATCH if k == diff[0] else int(d) for k, d in enumerate(a.shape)))
    return shapes


def _state_names(model: nn.Module, count: int) -> list[str]:
    names = list(getattr(model, "state_names", None) or [f"state{i}" for i in range(count)])
    if len(names) != count or len(set(names)) != count:
        raise ExportError(f"state_names: expected {count} unique names (one per init_state tensor), got {names}")
    return names


def _config(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return dict(config.to_dict())
    return dict(config) if isinstance(config, dict) else {}


def vocab_size(model: nn.Module, example: torch.Tensor) -> int | None:
    """How many token ids an integer input takes: the size of the model's one ``nn.Embedding``.

    None for float inputs, and when the model has no embedding or several (ambiguous).
    """
    if example.is_floating_point():
        return None
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    return int(tables[0].num_embeddings) if len(tables) == 1 else None


def run_eager(model: nn.Module, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One no-grad forward with the contract's ``(y, state)`` result checked."""
    name = type(model).__name__
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "LSTM with projections is not supported with oneDNN"
        try:
            out = model(x, state)
        except RnnxError:
            raise
        except Exception as e:  # torch's error for a near-miss module: say what rnnx did
            shapes = ", ".join(str(tuple(s.shape)) for s in state)
            raise ContractError(
                f"{name}.forward(x, state) raised {type(e).__name__}: "
                f"{cause_text(e)}. rnnx calls it with batch-first x "
                f"{tuple(x.shape)} (batch, time, ...) and state as a list [{shapes}]; to use "
                f"the module as written: {_wrap_hint(model)} (add batch_first=False if it takes "
                f"time-major x; state_as='tuple' or 'args' if it takes several states as a "
                f"tuple or as separate arguments; step=True if it computes one step)"
            ) from e
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
        raise ContractError(
            f"{name}.forward: expected (y, state), got {type(out).__name__}; "
            f"if it returns h, (h, c) or (y, h, c): {_wrap_hint(model)}"
        )
    if isinstance(out[1], torch.Tensor):
        raise ContractError(
            f"{name}.forward: expected the new state as a list of tensors, got a bare Tensor of "
            f"shape {tuple(out[1].shape)}; return (y, [h]), or use the module as written: "
            f"{_wrap_hint(model, state_as='tuple')}"
        )
    if not isinstance(out[1], (tuple, list)) or len(out[1]) != len(state):
        raise ContractError(
            f"{name}.forward: expected the new state as a list of {len(state)} "
            f"tensors (one per init_state tensor), got {describe_value(out[1])}"
        )
    return out[0], list(out[1])


def describe_value(value: Any) -> str:
    """A short structural description of a forward's result (``Tensor(2, 5)``, ``tuple(...)``)."""
    from rnnx.models.wrap import describe

    return describe(value)


def window_input(example: torch.Tensor, vocab: int | None = None) -> IOSpec:
    """The contract's batch-first ``x`` (``batch``, ``time``, features...) of ``example``'s dtype."""
    shape: tuple[int | str, ...] = (BATCH, TIME, *map(int, example.shape[2:]))
    return IOSpec("x", shape, dtype_name(example.dtype, "x"), batch_axis=0, time_axis=1, vocab_size=vocab)


def derive_spec(model: nn.Module, example: torch.Tensor, *, opset: int | None = None, exporter: str = "") -> ModelSpec:
    """Read the state contract off ``model`` by running it on ``example``.

    Args:
        model: a contract module in eval mode.
        example: batch-first example input.
        opset: ONNX opset of the file (None for TorchScript).
        exporter: the export path that produced the file.

    Returns:
        The :class:`ModelSpec` with ``x``/``y`` and ``{name}_in``/``{name}_out`` names.

    Raises:
        ExportError: the module breaks the contract.
    """
    shapes = _state_shapes(model)
    names = _state_names(model, len(shapes))
    zeros = init_state(model, example.shape[0])
    y, new = run_eager(model, example, zeros)
    if tuple(y.shape[:2]) != tuple(example.shape[:2]):
        raise ExportError(
            f"forward: expected y of shape (batch, time, ...) = {tuple(example.shape[:2])} + ..., got {tuple(y.shape)}"
        )
    if [tuple(s.shape) for s in new] != [tuple(s.shape) for s in zeros]:
        raise ExportError(
            f"forward: returned state shapes {[tuple(s.shape) for s in new]} differ "
            f"from init_state shapes {[tuple(s.shape) for s in zeros]}"
        )
    states = tuple(
        StateSpec(n, shp, dtype_name(z.dtype, f"state {n}"), input=f"{n}_in", output=f"{n}_out")
        for n, shp, z in zip(names, shapes, zeros)
    )
    kind = getattr(model, "kind", "custom")
    return ModelSpec(
        input=window_input(example, vocab_size(model, example)),
        output=IOSpec("y", (BATCH, TIME, *map(int, y.shape[2:])), dtype_name(y.dtype, "y"), batch_axis=0, time_axis=1),
        state=states,
        streamable=bool(getattr(model, "streamable", True)),
        rnnx_version=__version__,
        kind=kind if isinstance(kind, str) else "custom",
        config=_config(model),
        opset=opset,
        exporter=exporter,
        data=data_contract(model),
        extra={"weights": weights_fingerprint(model)},
    )


def weights_fingerprint(model: nn.Module) -> dict[str, Any]:
    """What the exported file records of the weights it was made from (``spec.extra["weights"]``).

    ``sha256`` hashes the state_dict (names and bytes, sorted by name); ``model`` is the
    module's class; ``source`` what the CLI loaded (checkpoint, or factory and --weights).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        try:
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        except (RuntimeError, TypeError):  # dtypes without a byte view (quantized): their values
            raw = repr(tensor.detach().cpu().tolist()).encode()
        digest.update(raw)
    from rnnx.models.user import SOURCE_ATTRIBUTE  # where the CLI loaded it from

    source = getattr(model, SOURCE_ATTRIBUTE, None)
    return {
        "sha256": digest.hexdigest(),
        "model": _model_name(model),
        **({"source": dict(source)} if isinstance(source, dict) else {}),
    }


def _model_name(model: nn.Module) -> str:
    inner = getattr(model, "module", None)  # rnnx.wrap: the user's own class
    return type(inner).__name__ if isinstance(inner, nn.Module) else type(model).__name__


DATA_ATTRIBUTE = "rnnx_data"  # a model's DataSpec, set by rnnx.models.load from the checkpoint


def data_contract(model: nn.Module) -> DataSpec | None:
    """The data contract attached to ``model`` (``model.rnnx_data``), or None."""
    data = getattr(model, DATA_ATTRIBUTE, None)
    return data if isinstance(data, DataSpec) else None


def producer_versions() -> dict[str, str]:
    """Versions of the tools that produced a file (stored in the spec's ``extra``)."""
    return {"torch": torch.__version__, "onnx": onnx.__version__, "rnnx": __version__}
