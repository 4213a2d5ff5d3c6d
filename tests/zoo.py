"""Tiny models shared by every test suite (import as ``from tests.zoo import TINY``).

- ``TINY``: readable id -> factory returning a small, deterministically initialised model
  (zoo models and two user-written contract modules).
- ``parity_matrix()``: (id, build kwargs) over every kind and option, tiny sizes, for
  export/parity sweeps: ``build(**kwargs)``; ``MATRIX`` holds them by id.
- ``make_model(id)``: a ``TINY`` or ``MATRIX`` model by id.
- ``CustomForecaster``, ``PeepholeLSTMCell``, ``PeepholeForecaster``: plain ``nn.Module``
  subclasses written the way a user would, NOT inheriting from rnnx classes.

Every factory seeds its own RNG (the global torch RNG is left untouched) and returns
the model in eval mode.
"""

import math
from collections.abc import Callable
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnx.models import build

INPUT, HIDDEN, OUTPUT = 5, 8, 3  # tiny recurrent sizes
CONV_CH, CONV_GRID, CONV_HIDDEN = 2, (6, 6), 4  # tiny convlstm sizes


# ---------------------------------------------------------------------- user-written modules
class CustomForecaster(nn.Module):
    """A user's own model (the README's example): 7 features -> GRU or LSTM -> linear head of 3."""

    is_lstm: Final[bool]

    def __init__(self, cell: str = "gru", features: int = 7, hidden: int = 16, horizon: int = 3) -> None:
        super().__init__()
        self.is_lstm = cell == "lstm"
        rnn_cls = nn.LSTM if self.is_lstm else nn.GRU
        self.rnn = rnn_cls(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)
        self.hidden = hidden

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        h = torch.zeros(1, batch_size, self.hidden)
        if self.is_lstm:
            return [h, torch.zeros(1, batch_size, self.hidden)]
        return [h]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if self.is_lstm:
            out, (h, c) = self.rnn(x, (state[0], state[1]))
            return self.head(out), [h, c]
        out, h = self.rnn(x, state[0])
        return self.head(out), [h]


class PeepholeLSTMCell(nn.Module):
    """A user-written peephole LSTM cell following the template in ``rnnx.models.cells``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.peep = nn.Parameter(torch.empty(3, hidden_size))  # i, f, o look at c
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state  # (B, H) each
        gates = F.linear(x, self.weight_ih, self.bias) + F.linear(h, self.weight_hh)
        i, f, g, o = gates.chunk(4, 1)  # (B, H) each
        i = torch.sigmoid(i + self.peep[0] * c)
        f = torch.sigmoid(f + self.peep[1] * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peep[2] * c)
        return o * torch.tanh(c), c


class PeepholeForecaster(nn.Module):
    """A user's model around the peephole cell: loops over time itself, linear head."""

    def __init__(self, features: int = INPUT, hidden: int = HIDDEN, horizon: int = OUTPUT) -> None:
        super().__init__()
        self.cell = PeepholeLSTMCell(features, hidden)
        self.head = nn.Linear(hidden, horizon)
        self.hidden = hidden

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        return [torch.zeros(batch_size, self.hidden), torch.zeros(batch_size, self.hidden)]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        h, c = state[0], state[1]
        outs: list[Tensor] = []
        for t in range(x.size(1)):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        y = self.head(torch.stack(outs, 1))  # (B, T, O)
        return y, [h, c]


# ---------------------------------------------------------------------- registry
def _seeded(factory: Callable[[], nn.Module], seed: int = 0) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory()
            if getattr(getattr(model, "config", None), "normalize", False):
                _fill_normalization(model)
        return model.eval()

    return make


def _fill_normalization(model: nn.Module) -> None:
    n_in, n_out = model.in_mean.numel(), model.out_mean.numel()
    model.set_normalization(
        torch.linspace(-1.0, 1.0, n_in),
        torch.linspace(0.5, 2.0, n_in),
        torch.linspace(10.0, 12.0, n_out),
        torch.linspace(3.0, 4.0, n_out),
    )


def _rec(kind: str, **kw) -> Callable[[], nn.Module]:
    return lambda: build(kind, **{"input_size": INPUT, "hidden_size": HIDDEN, "output_size": OUTPUT, **kw})


def _conv(**kw) -> Callable[[], nn.Module]:
    base = {"input_size": CONV_CH, "hidden_size": CONV_HIDDEN, "image_size": CONV_GRID, "output_size": 1}
    return lambda: build("convlstm", **{**base, **kw})


TINY: dict[str, Callable[[], nn.Module]] = {
    name: _seeded(factory)
    for name, factory in {
        "rnn-tanh": _rec("rnn"),
        "rnn-relu": _rec("rnn", nonlinearity="relu"),
        "rnn-2l": _rec("rnn", num_layers=2),
        "lstm-1l": _rec("lstm"),
        "lstm-2l": _rec("lstm", num_layers=2),
        "lstm-2l-proj": _rec("lstm", num_layers=2, proj_size=4),
        "lstm-nohead": _rec("lstm", output_size=None),
        "lstm-bi": _rec("lstm", bidirectional=True),
        "lstm-norm": _rec("lstm", normalize=True),
        "gru-residual": _rec("gru", normalize=True, residual_input=1),
        "gru-1l": _rec("gru"),
        "gru-2l": _rec("gru", num_layers=2),
        "gru-bi": _rec("gru", bidirectional=True),
        "gru-nobias": _rec("gru", bias=False),
        "convlstm-k3": _conv(),
        "convlstm-k5-2l": _conv(kernel_size=5, num_layers=2),
        "convlstm-nohead": _conv(output_size=None),
        "tokens-rnn": lambda: build("rnn", vocab_size=20, embedding_dim=6, hidden_size=HIDDEN, output_size=OUTPUT),
        "tokens-lstm": lambda: build("lstm", vocab_size=20, embedding_dim=6, hidden_size=HIDDEN, output_size=OUTPUT),
        "custom-forecaster": lambda: CustomForecaster("gru"),
        "custom-forecaster-lstm": lambda: CustomForecaster("lstm"),
        "custom-peephole": lambda: PeepholeForecaster(),
    }.items()
}

USER_WRITTEN = ("custom-forecaster", "custom-forecaster-lstm", "custom-peephole")  # no .config/.kind
NOT_STREAMABLE = ("lstm-bi", "gru-bi")


def example_input(model: nn.Module, batch_size: int = 2, steps: int = 5) -> Tensor:
    """Random input for any TINY model (zoo models have ``example_input``; user ones take (B, T, F))."""
    if hasattr(model, "example_input"):
        return model.example_input(batch_size, steps)
    features = 7 if isinstance(model, CustomForecaster) else INPUT
    return torch.randn(batch_size, steps, features)


# ---------------------------------------------------------------------- option matrix
def _flags(bias: bool, bi: bool) -> str:
    return ("" if bias else "-nobias") + ("-bi" if bi else "")


def parity_matrix() -> list[tuple[str, dict]]:
    """(id, ``build`` kwargs) for every kind x layers {1,2} x bias x bidirectional x kind options.

    rnn also varies nonlinearity, lstm proj_size {0, 4}, convlstm kernel {3, 5}
    (convlstm has no bidirectional). Sizes are tiny so the whole matrix exports fast.
    """
    out: list[tuple[str, dict]] = []
    base = {"input_size": INPUT, "hidden_size": HIDDEN, "output_size": OUTPUT}
    for kind, extras in (
        ("rnn", [("tanh", {"nonlinearity": "tanh"}), ("relu", {"nonlinearity": "relu"})]),
        ("lstm", [("", {}), ("proj", {"proj_size": 4})]),
        ("gru", [("", {})]),
    ):
        for layers in (1, 2):
            for bias in (True, False):
                for bi in (False, True):
                    for tag, extra in extras:
                        name = f"{kind}-{layers}l" + (f"-{tag}" if tag else "") + _flags(bias, bi)
                        kw = {"kind": kind, **base, "num_layers": layers, "bias": bias, "bidirectional": bi, **extra}
                        out.append((name, kw))
    conv = {"input_size": CONV_CH, "hidden_size": CONV_HIDDEN, "image_size": CONV_GRID, "output_size": 1}
    for layers in (1, 2):
        for bias in (True, False):
            for k in (3, 5):
                out.append(
                    (
                        f"convlstm-{layers}l-k{k}" + _flags(bias, False),
                        {"kind": "convlstm", **conv, "num_layers": layers, "bias": bias, "kernel_size": k},
                    )
                )
    return out


# ---------------------------------------------------------------------- encoder–decoder (seq2seq)
S2S_INPUT, S2S_HIDDEN, S2S_HORIZON, S2S_WINDOW = 4, 6, 3, 6  # tiny seq2seq sizes


class UserEncoder(nn.Module):
    """A user's encoder written to the Seq2Seq contract: ``x -> (outputs, [h])`` (a GRU + tanh projection)."""

    def __init__(self, features: int = S2S_INPUT, hidden: int = S2S_HIDDEN) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        out, h = self.gru(x)
        return torch.tanh(self.proj(out)), [h[0]]  # outputs (B, T, H); state [h (B, H)]


class UserDecoderStep(nn.Module):
    """A user's decoder step: a GRUCell fed with y_prev, mean-pooled memory in the head."""

    def __init__(self, outputs: int = 1, hidden: int = S2S_HIDDEN) -> None:
        super().__init__()
        self.cell = nn.GRUCell(outputs, hidden)
        self.head = nn.Linear(2 * hidden, outputs)

    def forward(self, y_prev: Tensor, state: list[Tensor], memory: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.cell(y_prev, state[0])  # (B, H)
        return self.head(torch.cat([h, memory.mean(1)], 1)), [h]


def _s2s(**kw) -> Callable[[], nn.Module]:
    base = {"input_size": S2S_INPUT, "hidden_size": S2S_HIDDEN, "horizon": S2S_HORIZON, "window": S2S_WINDOW}
    return lambda: build("seq2seq", **{**base, **kw})


def _user_s2s() -> nn.Module:
    from rnnx.models import Seq2Seq

    return Seq2Seq.from_modules(
        UserEncoder(), UserDecoderStep(), input_size=S2S_INPUT, horizon=S2S_HORIZON, window=S2S_WINDOW, attention=True
    )


SEQ2SEQ: dict[str, Callable[[], nn.Module]] = {
    name: _seeded(factory)
    for name, factory in {
        "s2s-lstm": _s2s(),
        "s2s-gru-attn": _s2s(cell="gru", attention=True),
        "s2s-lstm-2l-attn-norm-residual": _s2s(
            num_layers=2, attention=True, normalize=True, residual_input=0, output_size=2
        ),
        "s2s-user-modules": _user_s2s,
    }.items()
}


MATRIX: dict[str, dict] = dict(parity_matrix())


def make_model(name: str) -> nn.Module:
    """A tiny model by id: a ``TINY`` entry or a ``MATRIX`` entry (seeded, eval mode)."""
    if name in TINY:
        return TINY[name]()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(**MATRIX[name]).eval()
