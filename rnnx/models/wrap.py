"""``rnnx.wrap``: make a recurrent module as you wrote it follow the rnnx contract.

The contract (what export, parity, ``StreamingSession`` and ``StreamPool`` expect):
batch-first ``x``, ``init_state(batch_size) -> List[Tensor]`` (zeros) and
``forward(x, state) -> (y, new_state)`` where ``y`` holds every step's output.
Modules from tutorials rarely look like that: ``nn.LSTM`` used seq-first with
``forward(x, (h0, c0)) -> (out, (h, c))``, a cell called once per step in a Python loop,
a hand-written cell ``forward(x, h, c) -> (h, c)``. ``wrap`` adapts each in one line::

    model = rnnx.wrap(nn.LSTM(7, 20, num_layers=2))                       # state inferred
    model = rnnx.wrap(nn.GRUCell(7, 20))                                  # a cell: rnnx loops
    model = rnnx.wrap(MyCell(7, 20), [("batch", 20), ("batch", 20)], step=True)

Models whose forward builds or drops the state internally (``h0 = zeros(...)`` inside
``forward``, or returning only the output) cannot be wrapped generically: rebuild them
from the zoo (``rnnx.models.build(...)``) and load your weights, or for a plain
``nn.LSTM/GRU/RNN`` plus a linear head use :func:`rnnx.models.from_torch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnx.errors import ConfigError, ContractError, ExportError, cause_text
from rnnx.models._base import eval_copy
from rnnx.models.advice import (
    CELLS,
    LAYERS,
    InputGuess,
    candidates,
    input_guess,
    route_for,
    shapes_text,
    state_params,
    state_shapes,
)
from rnnx.spec import BATCH  # the marker of the batch axis in a state shape

STATE_AS = ("auto", "tensor", "tuple", "args")  # how the state is handed to the module
_KINDS = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru", nn.RNNCell: "rnn", nn.LSTMCell: "lstm", nn.GRUCell: "gru"}

StateShape = tuple[int | str, ...]  # e.g. (2, "batch", 20)


class Wrapped(nn.Module):
    """A module adapted to the rnnx contract by :func:`wrap` (see there)."""

    def __init__(
        self,
        module: nn.Module,
        shapes: list[StateShape],
        names: list[str],
        step: bool,
        batch_first: bool,
        state_as: str,
        kind: str,
        streamable: bool,
    ) -> None:
        super().__init__()
        self.module = module
        self.shapes = [tuple(s) for s in shapes]  # state shapes, "batch" at the batch axis
        self.state_names = list(names)  # names of the state tensors in the exported file
        self.step = step  # True: module called once per time step on x[:, t]
        self.batch_first = batch_first  # False: the module wants time-major x
        self.state_as = state_as  # "tensor" | "tuple" | "args"
        self.kind = kind  # tolerance family: rnn | lstm | gru | custom
        self.streamable = streamable  # False for bidirectional layers
        self.config = {"wrapped": type(module).__name__, "step": step, "batch_first": batch_first, "state_as": state_as}

    def init_state(self, batch_size: int) -> list[Tensor]:
        """Zero state, one tensor per declared shape, on the module's dtype and device."""
        ref = next(iter([*self.module.parameters(), *self.module.buffers()]), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        device = ref.device if ref is not None else None
        return [
            torch.zeros([batch_size if d == BATCH else int(d) for d in shape], dtype=dtype, device=device)
            for shape in self.shapes
        ]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, T, ...) batch-first, state as :meth:`init_state` -> (y (B, T, ...), new state)."""
        if len(state) != len(self.shapes):
            raise ContractError(
                f"state: expected a list of {len(self.shapes)} tensors "
                f"({', '.join(self.state_names)}), got {len(state)}"
            )
        if self.step:
            ys = []
            for t in range(x.size(1)):
                y_t, state = self._call(x[:, t], state)  # (B, ...) one time slice
                ys.append(y_t)
            return torch.stack(ys, 1), state  # (B, T, ...)
        seq = x if self.batch_first else x.transpose(0, 1)  # (T, B, ...) for time-major modules
        y, new = self._call(seq, state)
        return (y if self.batch_first else y.transpose(0, 1)), new

    def _call(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        args = _hand_over(state, self.state_as)
        try:
            out = self.module(x, *args)
        except Exception as e:  # torch's own errors become one that shows the fix
            raise ContractError(
                f"{type(self.module).__name__} called as {_call_text(self, x, state)} raised "
                f"{type(e).__name__}: {_first_line(e)}. {_advice(self)}"
            ) from e
        return read_result(out, len(self.shapes), type(self.module).__name__)

    def trace_for_torchscript(self, example: Tensor, state: list[Tensor]) -> torch.jit.ScriptModule:
        """A TorchScript module of this wrapper (``export_torchscript`` calls it; it cannot script us).

        Layer style: the whole-sequence call traced (torch's RNN ops keep batch and time
        free). Cell style: one step traced, called from a scripted loop over time, so any
        length runs. Both inside a scripted shell that keeps ``init_state``.
        """
        if self.step:
            inner = torch.jit.trace(_Step(self), (example[:, 0], state), check_trace=False)
        else:
            inner = torch.jit.trace(self, (example, state), check_trace=False)
        dims = [[-1 if d == BATCH else int(d) for d in shape] for shape in self.shapes]
        return torch.jit.script(_Scripted(inner, dims, state[0].dtype, self.step))

    def extra_repr(self) -> str:
        return f"state={self.shapes}, step={self.step}, batch_first={self.batch_first}, state_as={self.state_as!r}"


class _Step(nn.Module):
    """One step of a cell-style wrapper: ``(x_t, state) -> (y_t, new_state)``."""

    def __init__(self, wrapped: Wrapped) -> None:
        super().__init__()
        self.wrapped = wrapped

    def forward(self, x_t: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.wrapped._call(x_t, state)


class _Scripted(nn.Module):
    """The contract in TorchScript around a traced call: ``init_state``, and a loop over time
    when the traced call is one step."""

    def __init__(self, inner: nn.Module, dims: list[list[int]], dtype: torch.dtype, loop: bool) -> None:
        super().__init__()
        self.inner = inner  # traced: one step (loop) or the whole sequence
        self.dims = dims  # state shapes, -1 at the batch axis
        self.dtype = dtype
        self.loop = loop  # True: inner is one step, loop over time here

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        out: list[Tensor] = []
        for dims in self.dims:
            out.append(torch.zeros([batch_size if d < 0 else d for d in dims], dtype=self.dtype))
        return out

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if not self.loop:
            return self.inner(x, state)
        ys: list[Tensor] = []
        for t in range(x.size(1)):
            y_t, state = self.inner(x[:, t], state)  # (B, ...) one time slice
            ys.append(y_t)
        return torch.stack(ys, 1), state  # (B, T, ...)


class _WithExample(Wrapped):
    """A :class:`Wrapped` whose input is known (torch's layers and cells) or read off the module."""

    def __init__(self, *args: Any, guess: InputGuess | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.guess = guess  # None: read off the module on first use (input_guess)
        self.guessed = guess is not None

    def example_input(self, batch_size: int = 2, steps: int = 5) -> Tensor:
        """Random batch-first input (B, T, *features), float or token ids as the module takes.

        Raises:
            ExportError: the input cannot be read off the module; names the argument to pass.
        """
        if not self.guessed:
            self.guess = input_guess(self.module, _confirm(self), self._state_width())
            self.guessed = True
        if self.guess is None:
            tried = (
                ", ".join(g.source for g in candidates(self.module, self._state_width())) or "no layer that reads it"
            )
            raise ExportError(
                f"{type(self.module).__name__}: cannot read its input shape off the module (tried: "
                f"{tried}); pass example_input= (a batch-first tensor, e.g. torch.randn(2, 5, "
                f"FEATURES)); from the command line: --example-shape 2,5,FEATURES (token ids: "
                f"--example-dtype int64)"
            )
        x = self.guess.example(batch_size, steps)
        ref = next(iter(self.module.parameters()), None)
        if x.is_floating_point() and ref is not None and ref.is_floating_point():
            x = x.to(ref.dtype)
        return x

    def _state_width(self) -> int:
        """A cell's state features (``(batch, H)`` states), which a Linear(cat(x, h)) also reads."""
        if not self.step:
            return 0
        return sum(int(s[1]) for s in self.shapes if len(s) == 2 and s[0] == BATCH)


def _confirm(w: Wrapped) -> Any:
    """One forward of a copy of ``w`` (the user's module keeps its buffers and mode)."""

    def run(x: Tensor) -> Any:
        probe = eval_copy(w)
        return probe(x, probe.init_state(x.shape[0]))

    return run


def wrap(
    module: nn.Module,
    state: Sequence[StateShape] | None = None,
    *,
    step: bool = False,
    batch_first: bool | None = None,
    state_as: str = "auto",
) -> nn.Module:
    """Adapt ``module`` to the rnnx contract; everything else in rnnx then works on it.

    Args:
        module: the recurrent module as written. Not copied: the wrapper shares its weights.
        state: the state tensors' shapes with ``"batch"`` at the batch axis, e.g.
            ``[(2, "batch", 20), (2, "batch", 20)]``. Inferred for torch's nn.RNN/LSTM/GRU
            (layers, bidirectional, proj_size) and nn.RNNCell/LSTMCell/GRUCell; required
            otherwise.
        step: False (layer style): the module runs on the whole chunk, ``module(x, hx)``.
            True (cell style): it runs once per time step on ``x[:, t]`` and rnnx loops.
            Implied for torch's cells.
        batch_first: layer style only: False when the module wants time-major ``x``
            (rnnx still takes and returns batch-first). Default: the module's own
            ``batch_first`` attribute when it has one, else True.
        state_as: how the state is handed over. "auto": one state as a tensor; several
            as a tuple ``(h, c)`` when ``forward`` takes one state parameter, else as
            separate arguments ``module(x, h, c)``. Or "tensor", "tuple", "args".

    Returns:
        A module with ``init_state(batch_size)`` and ``forward(x, state) -> (y, new_state)``.
        What the module returns is read as ``h`` (the hidden is also the output),
        ``(y, h)``, ``(y, (h, c))``, ``(h, c)`` (output = the first state) or ``(y, h, c)``.

    Raises:
        ConfigError: ``state`` missing where it cannot be inferred, malformed, or a bad
            ``state_as``.
        ContractError: (when called) the module rejects the call or returns something
            else; the message shows the ``rnnx.wrap(...)`` call that fits.

    Example:
        >>> import rnnx, torch
        >>> model = rnnx.wrap(torch.nn.LSTM(3, 8, num_layers=2))   # seq-first, (h, c)
        >>> y, state = model(torch.randn(4, 5, 3), model.init_state(4))
        >>> tuple(y.shape), [tuple(s.shape) for s in state]
        ((4, 5, 8), [(2, 4, 8), (2, 4, 8)])

    Note:
        Models whose forward builds or drops the state internally cannot be wrapped:
        rebuild them with ``rnnx.models.build(...)`` and load the weights (for
        ``nn.LSTM/GRU/RNN`` plus an optional ``nn.Linear`` head:
        ``rnnx.models.from_torch(layer, head)``). ConvLSTM code splits the gate
        convolution in different orders (many tutorials use i, f, o, g; rnnx and torch's
        LSTM use i, f, g, o): ``rnnx.models.from_conv_cells(cells, image_size,
        gate_order="ifog")`` builds the zoo ConvLSTM from such cells.
    """
    if not isinstance(module, nn.Module):
        raise ConfigError(f"module: expected a torch nn.Module, got {type(module).__name__}")
    if state_as not in STATE_AS:
        raise ConfigError(f"state_as: expected one of {', '.join(STATE_AS)}, got {state_as!r}")
    known = state_shapes(module)
    if isinstance(module, CELLS):
        step = True
    if state is None:
        if known is None:
            raise ConfigError(
                f"state: required for {type(module).__name__} (rnnx infers it only for torch's "
                f"nn.RNN/LSTM/GRU and nn.RNNCell/LSTMCell/GRUCell); {route_for(module).text()}"
            )
        shapes = known
    else:
        shapes = _parse_state(state)
    if batch_first is None:
        batch_first = bool(getattr(module, "batch_first", True))
    mode = _state_mode(module, len(shapes), state_as)
    names = _names(len(shapes))
    kind = next((k for cls, k in _KINDS.items() if isinstance(module, cls)), "custom")
    streamable = not bool(getattr(module, "bidirectional", False))
    args = (module, shapes, names, step, batch_first, mode, kind, streamable)
    features = _features(module)
    guess = InputGuess(features, torch.float32, type(module).__name__) if features else None
    return _WithExample(*args, guess=guess)


def read_result(out: Any, count: int, who: str) -> tuple[Tensor, list[Tensor]]:
    """Read a module's return value as ``(y, [states])``; ``count`` states expected.

    Accepted: ``h`` (one state, also the output), ``(y, h)``, ``(y, (h, c))``, ``(h, c)``
    (output = the first state) and ``(y, h, c)``.

    Raises:
        ContractError: anything else, naming what was returned.
    """
    if isinstance(out, Tensor):
        if count == 1:
            return out, [out]
    elif isinstance(out, (tuple, list)) and out and all(_is_tensor_tree(o) for o in out):
        if len(out) == 2 and isinstance(out[1], (tuple, list)):
            if len(out[1]) == count and all(isinstance(s, Tensor) for s in out[1]):
                return out[0], list(out[1])
        elif all(isinstance(o, Tensor) for o in out):
            if len(out) == count:
                return out[0], list(out)
            if len(out) == count + 1:
                return out[0], list(out[1:])
    raise ContractError(
        f"{who}.forward returned {describe(out)}; with {count} state tensor(s) rnnx reads "
        f"h, (y, h), (y, (h, c)), (h, c) or (y, h, c). Return one of those, or pass the "
        f"number of states you carry as state=[...] to rnnx.wrap"
    )


def describe(value: Any) -> str:
    """A short structural description: ``Tensor(2, 5, 8)``, ``tuple(Tensor(..), list[2])``."""
    if isinstance(value, Tensor):
        return f"Tensor{tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"{type(value).__name__}({inner})"
    return type(value).__name__


def suggest_call(
    module: nn.Module, name: str = "model", state: Sequence[StateShape] | None = None, **options: Any
) -> str:
    """The ``rnnx.wrap(...)`` call that most likely fits ``module``, as text.

    Args:
        module: the module that does not follow the contract.
        name: the variable name to show.
        state: known state shapes (``"batch"`` at the batch axis); else inferred or guessed.
        **options: wrap options to show (``batch_first=False``, ``state_as="tuple"``, ...).
    """
    if state is None and state_shapes(module) is None:
        route = route_for(module, name)
        if not options and route.kind in ("layer", "cell"):
            return route.call
        hidden = getattr(module, "hidden_size", None)
        state = [(BATCH, int(hidden) if isinstance(hidden, int) else "HIDDEN")]
        options = {"step": True, **options}
    parts = [name] + ([f"state={shapes_text(state)}"] if state is not None else [])
    parts += [f"{k}={v!r}" for k, v in options.items()]
    return f"rnnx.wrap({', '.join(parts)})"


# ---------------------------------------------------------------------- internals
def _features(module: nn.Module) -> tuple[int, ...]:
    """torch's own layers and cells: ``(input_size,)``; anything else is read by input_guess."""
    return (int(module.input_size),) if isinstance(module, LAYERS + CELLS) else ()


def _parse_state(state: Any) -> list[StateShape]:
    example = '[(2, "batch", 20), (2, "batch", 20)]'
    if isinstance(state, (tuple, list)) and state and all(isinstance(d, (int, str)) for d in state):
        state = [state]  # one shape given bare: (2, "batch", 20)
    if not isinstance(state, (tuple, list)) or not state:
        raise ConfigError(
            f'state: expected a list of shapes with "batch" at the batch axis, e.g. {example}, got {state!r}'
        )
    shapes = []
    for i, shape in enumerate(state):
        ok = (
            isinstance(shape, (tuple, list))
            and sum(d == BATCH for d in shape) == 1
            and all(d == BATCH or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape)
        )
        if not ok:
            raise ConfigError(
                f"state[{i}]: expected a shape of positive ints with exactly one "
                f'"batch", e.g. (2, "batch", 20), got {shape!r}'
            )
        shapes.append(tuple(shape))
    return shapes


def _state_mode(module: nn.Module, count: int, state_as: str) -> str:
    if state_as == "tensor" and count != 1:
        raise ConfigError(f'state_as: "tensor" hands over one state, but {count} are declared; use "tuple" or "args"')
    if state_as != "auto":
        return state_as
    if count == 1:
        return "tensor"
    params = state_params(module)
    return "tuple" if params is not None and len(params) == 1 else "args"


def _names(count: int) -> list[str]:
    return ["h"] if count == 1 else ["h", "c"] if count == 2 else [f"state{i}" for i in range(count)]


def _hand_over(state: list[Tensor], mode: str) -> tuple:
    if mode == "tensor":
        return (state[0],)
    if mode == "tuple":
        return (tuple(state),)
    return tuple(state)


def _call_text(w: Wrapped, x: Tensor, state: list[Tensor]) -> str:
    names = [f"{n}{tuple(s.shape)}" for n, s in zip(w.state_names, state)]
    st = {"tensor": names[0], "tuple": f"({', '.join(names)})", "args": ", ".join(names)}
    return f"module(x{tuple(x.shape)}, {st[w.state_as]})"


def _advice(w: Wrapped) -> str:
    others = [m for m in ("tensor", "tuple", "args") if m != w.state_as and not (m == "tensor" and len(w.shapes) != 1)]
    style = (
        "step=True (rnnx calls it once per time step on x[:, t])"
        if not w.step
        else "step=False (rnnx calls it once on the whole chunk)"
    )
    layout = (
        f"batch_first={not w.batch_first} (x is given "
        f"{'time-major (T, B, ...)' if w.batch_first else 'batch-first (B, T, ...)'})"
        if not w.step
        else ""
    )
    hints = [f"state_as={o!r}" for o in others] + [style] + ([layout] if layout else [])
    return (
        f"It was wrapped as rnnx.wrap(model, state={shapes_text(w.shapes)}, step={w.step}, "
        f"batch_first={w.batch_first}, state_as={w.state_as!r}); check the state shapes "
        f"or try {', '.join(hints)}"
    )


def _is_tensor_tree(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    return isinstance(value, (tuple, list)) and all(isinstance(v, Tensor) for v in value)


def _first_line(e: BaseException) -> str:
    return cause_text(e)
