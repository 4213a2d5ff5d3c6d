"""The route that fits a module which does not follow the rnnx contract, and its input.

Errors about a user's module name one route, chosen from what the module is:

- torch's own layers and cells: ``rnnx.wrap(model)``;
- a module running torch's ``nn.RNN/LSTM/GRU`` on whole sequences that takes its state:
  ``rnnx.wrap(model, state=[...exact shapes...])``;
- one that hides its state (``out, _ = self.lstm(x)``): ``rnnx.models.from_torch(...)``
  (``rnnx export file.py:factory`` does it by itself when the result equals the module);
- a cell (one time step per call): ``rnnx.wrap(model, state=[...], step=True)``;
- an encoder–decoder: the seq2seq bundle (``Seq2Seq.from_modules``, ``export_seq2seq``).

:func:`input_guess` reads the input a module takes off the first module that consumes it
(recurrent layer, cell, Linear, Embedding -> int64 token ids), confirmed by one forward.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnx.models._base import eval_copy
from rnnx.onnx_tools.compare import REBUILT_ATOL
from rnnx.spec import BATCH

LAYERS = (nn.RNN, nn.LSTM, nn.GRU)
CELLS = (nn.RNNCell, nn.LSTMCell, nn.GRUCell)


@dataclass(frozen=True)
class Route:
    """How to make a module follow the rnnx contract."""

    kind: str  # "torch" | "layer" | "hidden" | "cell" | "seq2seq" | "unknown"
    call: str  # the Python expression that makes the module fit (``model`` is the module)
    why: str  # what in the module chose this route, one clause

    def text(self) -> str:
        """``why: call`` as one sentence."""
        return f"{self.why}: {self.call}"


@dataclass(frozen=True)
class InputGuess:
    """A module's per-step input read off the module that consumes it first."""

    features: tuple[int, ...]  # per-step shape: (F,) for features, () for token ids
    dtype: torch.dtype  # float32, or int64 for token ids
    source: str  # which module it was read from, e.g. "lstm (LSTM input_size=7)"
    vocab: int | None = None  # token models: ids lie in [0, vocab)

    def example(self, batch: int, steps: int) -> Tensor:
        """A random batch-first input ``(batch, steps, *features)``."""
        if self.dtype.is_floating_point:
            return torch.randn(batch, steps, *self.features, dtype=self.dtype)
        return torch.randint(0, self.vocab or 2, (batch, steps, *self.features), dtype=self.dtype)


def state_shapes(module: nn.Module) -> list[tuple[Any, ...]] | None:
    """torch's own layers and cells: their state shapes with ``"batch"``; else None."""
    if isinstance(module, LAYERS):
        layers = module.num_layers * (2 if module.bidirectional else 1)
        if isinstance(module, nn.LSTM):
            h = module.proj_size or module.hidden_size
            return [(layers, BATCH, h), (layers, BATCH, module.hidden_size)]
        return [(layers, BATCH, module.hidden_size)]
    if isinstance(module, CELLS):
        shape: tuple[Any, ...] = (BATCH, module.hidden_size)
        return [shape, shape] if isinstance(module, nn.LSTMCell) else [shape]
    return None


def shapes_text(shapes: Sequence[tuple[Any, ...]]) -> str:
    """``[(2, "batch", 20), ("batch", 8)]`` as Python source."""
    return (
        "["
        + ", ".join(
            "(" + ", ".join(f'"{d}"' if d == BATCH else str(d) for d in s) + ("," if len(s) == 1 else "") + ")"
            for s in shapes
        )
        + "]"
    )


def state_params(module: nn.Module) -> list[str] | None:
    """Names of ``forward``'s positional parameters after ``x``; None for ``*args``/no signature."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def recurrent_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """torch's recurrent layers and cells inside ``module`` (dotted names), outermost first."""
    found: list[tuple[str, nn.Module]] = []
    for name, sub in module.named_modules():
        if name and isinstance(sub, LAYERS + CELLS) and not any(name.startswith(f"{n}.") for n, _ in found):
            found.append((name, sub))
    return found


def route_for(module: nn.Module, name: str = "model") -> Route:
    """The route that fits ``module`` (see the module docstring), as a call on ``name``."""
    if isinstance(module, LAYERS + CELLS):
        return Route(
            "torch",
            f"rnnx.wrap({name})",
            f"torch's {type(module).__name__}, whose state rnnx knows; to use the module as written",
        )
    seq2seq = _seq2seq_route(module)
    if seq2seq is not None:
        return seq2seq
    params = state_params(module)
    inner = recurrent_children(module)
    layers: list[tuple[str, nn.Module]] = [(n, m) for n, m in inner if isinstance(m, LAYERS)]
    if params == [] and len(layers) == 1:
        return _hidden_route(module, name, *layers[0])
    if layers and len(layers) == len(inner) and params:
        return _layer_route(module, name, layers, len(params))
    return _cell_route(module, name, inner, params)


def _layer_route(module: nn.Module, name: str, layers: list[tuple[str, nn.Module]], given: int) -> Route:
    shapes = [s for _, layer in layers for s in (state_shapes(layer) or [])]
    options = [f"state={shapes_text(shapes)}"]
    first = layers[0][1]
    if bool(first.batch_first) != bool(getattr(module, "batch_first", True)):
        options.append(f"batch_first={bool(first.batch_first)}")
    if len(shapes) > 1 and given not in (1, len(shapes)):
        options.append('state_as="tuple"')
    names = ", ".join(f"{n} ({type(m).__name__})" for n, m in layers)
    return Route(
        "layer",
        f"rnnx.wrap({name}, {', '.join(options)})",
        f"it runs torch's {names} on whole sequences and takes its state; to use it as written",
    )


def _hidden_route(module: nn.Module, name: str, attr: str, layer: nn.Module) -> Route:
    head = _only_head(module, attr)
    call = f"rnnx.models.from_torch({name}.{attr}" + (f", head={name}.{head})" if head else ")")
    return Route(
        "hidden",
        call,
        f"its forward(x) runs {attr} ({type(layer).__name__}) from a zero state and drops the "
        f"final one, so no wrapper can carry it (`rnnx export file.py:factory` grafts it on when "
        f"the result equals your module); rebuild it with your trained weights",
    )


def _only_head(module: nn.Module, attr: str) -> str | None:
    """The one nn.Linear beside the recurrent layer (dropout aside), or None."""
    others = [(n, m) for n, m in module.named_children() if n != attr and not isinstance(m, nn.Dropout)]
    if len(others) == 1 and isinstance(others[0][1], nn.Linear):
        return others[0][0]
    return None


def _cell_route(module: nn.Module, name: str, inner: list[tuple[str, nn.Module]], params: list[str] | None) -> Route:
    cells = [m for _, m in inner if isinstance(m, CELLS)]
    if cells:
        shapes = [s for c in cells for s in (state_shapes(c) or [])]
    else:
        hidden = getattr(module, "hidden_size", None)
        size: Any = int(hidden) if isinstance(hidden, int) and not isinstance(hidden, bool) else "HIDDEN"
        shapes = [(BATCH, size)] * max(1, len(params or []))
    why = (
        f"its forward takes one time step and its state ({', '.join(params)})"
        if params
        else "it is not a torch recurrent layer; if it computes one time step"
    )
    return Route(
        "cell",
        f"rnnx.wrap({name}, state={shapes_text(shapes)}, step=True)",
        f"{why}; rnnx loops over time with step=True",
    )


def _seq2seq_route(module: nn.Module) -> Route | None:
    children = dict(module.named_children())
    enc = next((n for n in children if "enc" in n.lower()), None)
    dec = next((n for n in children if "dec" in n.lower()), None)
    if enc is None or dec is None:
        return None
    return Route(
        "seq2seq",
        f"rnnx.models.Seq2Seq.from_modules(model.{enc}, decoder_step, input_size=F, horizon=H, "
        f"window=T, first_input=TARGET) then rnnx.exporter.export_seq2seq(seq2seq, DIR) (decoder_step: "
        f"forward(y_prev, state, memory) -> (y, state); docs/guides/exporting.md)",
        f"an encoder–decoder ({enc} -> {dec}) forecasts, it does not stream: export it as a seq2seq bundle",
    )


# ---------------------------------------------------------------------- the input
def input_guess(module: nn.Module, confirm: Callable[[Tensor], Any], state_width: int = 0) -> InputGuess | None:
    """The first candidate input (see :func:`candidates`) that ``confirm(example)`` accepts.

    Args:
        module: the user's module.
        confirm: runs the module on a batch-first example; raising means "not this one".
        state_width: features of a cell's state (see :func:`candidates`).
    """
    for guess in candidates(module, state_width):
        try:
            with torch.no_grad():
                confirm(guess.example(2, 5))
        except Exception:  # noqa: BLE001 - a wrong guess fails in the user's code, any way it likes
            continue
        return guess
    return None


def candidates(module: nn.Module, state_width: int = 0) -> list[InputGuess]:
    """Inputs the module may take, read off its consuming modules in registration order.

    A recurrent layer or cell gives ``(input_size,)``, a Linear ``(in_features,)`` (and,
    for a cell of ``state_width`` state features, ``in_features - state_width``: the
    tutorials' ``Linear(cat(x, h))``), an Embedding int64 token ids; the module's own
    ``input_size`` attribute comes last.
    """
    found: list[InputGuess] = []
    for name, sub in module.named_modules():
        guess = _consumes(name or type(module).__name__, sub)
        more = [guess] if guess is not None else []
        if isinstance(sub, nn.Linear) and 0 < state_width < sub.in_features:
            width = sub.in_features - state_width
            more.append(
                InputGuess(
                    (width,),
                    torch.float32,
                    f"{name} (Linear in_features={sub.in_features} less the state's {state_width})",
                )
            )
        for g in more:
            if all((f.features, f.dtype) != (g.features, g.dtype) for f in found):
                found.append(g)
    size = getattr(module, "input_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        found.append(InputGuess((size,), torch.float32, f"{type(module).__name__}.input_size={size}"))
    return found


def _consumes(name: str, sub: nn.Module) -> InputGuess | None:
    kind = type(sub).__name__
    if isinstance(sub, nn.Embedding):
        return InputGuess((), torch.int64, f"{name} ({kind} of {sub.num_embeddings} ids)", sub.num_embeddings)
    if isinstance(sub, LAYERS + CELLS):
        return InputGuess((int(sub.input_size),), torch.float32, f"{name} ({kind} input_size={sub.input_size})")
    if isinstance(sub, nn.Linear):
        return InputGuess((int(sub.in_features),), torch.float32, f"{name} ({kind} in_features={sub.in_features})")
    return None


# ---------------------------------------------------------------------- hidden state
@dataclass(frozen=True)
class Rebuilt:
    """A module whose forward hid its state, rebuilt as a zoo model that carries it."""

    model: nn.Module  # the zoo model (batch-first, init_state, (y, state))
    call: str  # how it was rebuilt, as Python
    max_abs_err: float  # against the user's forward on a probe input, from zero state


def rebuild_hidden(module: nn.Module) -> Rebuilt | None:
    """``from_torch(layer, head)`` of a module whose ``forward(x)`` drops its layer's state.

    Returned only when the rebuilt model equals the module's own forward on a probe (batch
    3, 7 steps, from zero state): the module is exactly ``head(layer(x))``.
    """
    route = route_for(module)
    if route.kind != "hidden":
        return None
    from rnnx.models.from_torch import from_torch  # deferred: from_torch imports the zoo

    ((attr, layer),) = [(n, m) for n, m in recurrent_children(module) if isinstance(m, LAYERS)]
    head = _only_head(module, attr)
    head_module = module.get_submodule(head) if head else None
    zoo = from_torch(layer, head_module if isinstance(head_module, nn.Linear) else None)
    x = torch.randn(3, 7, int(layer.input_size))  # (B, T, F) batch-first
    try:
        with torch.no_grad():
            mine = eval_copy(module)(x if layer.batch_first else x.transpose(0, 1))
            theirs, _ = zoo(x, zoo.init_state(3))
    except Exception:  # noqa: BLE001 - the user's forward does something else: not rebuilt
        return None
    if not isinstance(mine, Tensor):
        return None
    mine = mine if layer.batch_first else mine.transpose(0, 1)
    if mine.shape != theirs.shape:
        return None
    err = float((mine - theirs).abs().max())
    return Rebuilt(zoo, route.call, err) if err <= REBUILT_ATOL else None
