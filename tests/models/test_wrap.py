"""rnnx.wrap on the recurrent models of the classic PyTorch tutorials, written as users write them.

Each goes through ``rnnx.wrap`` in one line, exports to ONNX, passes ``assert_parity`` and
streams (``StreamingSession``, one step per call) equal to the module's own computation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnx
from rnnx.errors import ConfigError, ContractError
from rnnx.exporter import export_onnx
from rnnx.runtime import StreamingSession
from rnnx.testing import assert_parity

torch.set_num_threads(1)
IN, HID = 3, 6  # tiny sizes


# ---------------------------------------------------------------- models as the tutorials write them
class SeqFirstLSTM(nn.Module):
    """Tutorial LSTM regressor: seq-first, forward(x, (h0, c0)) -> (out, (h_n, c_n))."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(IN, HID, num_layers=2)
        self.fc = nn.Linear(HID, 1)

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor]):
        out, hidden = self.lstm(x, hidden)  # (T, B, H)
        return self.fc(out), hidden


class SeqFirstGRU(nn.Module):
    """Tutorial GRU: seq-first, forward(x, h0) -> (out, h_n)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(IN, HID)
        self.fc = nn.Linear(HID, 2)

    def forward(self, x: Tensor, h0: Tensor):
        out, h = self.gru(x, h0)
        return self.fc(out), h


class CharRNN(nn.Module):
    """The char-RNN-from-scratch tutorial: forward(input, hidden) -> (output, hidden), one step."""

    def __init__(self) -> None:
        super().__init__()
        self.i2h = nn.Linear(IN + HID, HID)
        self.h2o = nn.Linear(HID, 4)

    def forward(self, x: Tensor, hidden: Tensor):
        hidden = torch.tanh(self.i2h(torch.cat((x, hidden), 1)))
        return F.log_softmax(self.h2o(hidden), dim=1), hidden


class HandLSTMCell(nn.Module):
    """Hand-written LSTM cell: forward(x, h, c) -> (h, c)."""

    def __init__(self) -> None:
        super().__init__()
        self.x2g = nn.Linear(IN, 4 * HID)
        self.h2g = nn.Linear(HID, 4 * HID)

    def forward(self, x: Tensor, h: Tensor, c: Tensor):
        i, f, g, o = (self.x2g(x) + self.h2g(h)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class HandGRUCell(nn.Module):
    """Hand-written GRU cell: forward(x, h) -> h."""

    def __init__(self) -> None:
        super().__init__()
        self.x2g = nn.Linear(IN, 3 * HID)
        self.h2g = nn.Linear(HID, 3 * HID)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        xr, xz, xn = self.x2g(x).chunk(3, 1)
        hr, hz, hn = self.h2g(h).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class TutorialConvLSTMCell(nn.Module):
    """The common ConvLSTM cell: forward(x, (h, c)) -> (h, c), gates split i, f, o, g."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 + 3, 4 * 3, 3, padding=1)

    def forward(self, x: Tensor, cur_state: tuple[Tensor, Tensor]):
        h, c = cur_state
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), 3, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


# ---------------------------------------------------------------- the module's own computation
def own_layer(module: nn.Module, batch_first: bool) -> Callable[[Tensor], Tensor]:
    """Whole sequence from zero state, the way the tutorial calls it (h0 built by hand)."""

    def run(x: Tensor) -> Tensor:  # x (B, T, F)
        seq = x if batch_first else x.transpose(0, 1)
        inner = next(m for m in module.modules() if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN)))
        layers = inner.num_layers * (2 if inner.bidirectional else 1)
        h = torch.zeros(layers, x.shape[0], inner.proj_size if getattr(inner, "proj_size", 0) else HID)
        hidden = (h, torch.zeros(layers, x.shape[0], HID)) if isinstance(inner, nn.LSTM) else h
        out = module(seq, hidden)[0]
        return out if batch_first else out.transpose(0, 1)

    return run


def own_loop(cell: nn.Module, shapes: list[tuple], pick: Callable) -> Callable[[Tensor], Tensor]:
    """The tutorial's training loop: state from zeros, the cell called once per step."""

    def run(x: Tensor) -> Tensor:
        state = [torch.zeros(x.shape[0], *s) for s in shapes]
        ys = []
        for t in range(x.shape[1]):
            y, state = pick(cell, x[:, t], state)
            ys.append(y)
        return torch.stack(ys, 1)

    return run


CASES = {
    # id: (module factory, rnnx.wrap kwargs, own computation, input features)
    "nn.RNN-seq-first": (
        lambda: nn.RNN(IN, HID, num_layers=2, nonlinearity="relu"),
        {},
        lambda m: own_layer(m, False),
        (IN,),
    ),
    "nn.LSTM-2l-proj-seq-first": (
        lambda: nn.LSTM(IN, HID, num_layers=2, proj_size=2),
        {},
        lambda m: own_layer(m, False),
        (IN,),
    ),
    "nn.GRU-batch-first": (lambda: nn.GRU(IN, HID, batch_first=True), {}, lambda m: own_layer(m, True), (IN,)),
    "tutorial-lstm-(h0,c0)": (
        SeqFirstLSTM,
        {"state": [(2, "batch", HID)] * 2, "batch_first": False},
        lambda m: own_layer(m, False),
        (IN,),
    ),
    "tutorial-gru-h0": (
        SeqFirstGRU,
        {"state": [(1, "batch", HID)], "batch_first": False},
        lambda m: own_layer(m, False),
        (IN,),
    ),
    "nn.RNNCell-loop": (
        lambda: nn.RNNCell(IN, HID),
        {},
        lambda m: own_loop(m, [(HID,)], lambda c, x, s: _same(c(x, s[0]))),
        (IN,),
    ),
    "nn.LSTMCell-loop": (
        lambda: nn.LSTMCell(IN, HID),
        {},
        lambda m: own_loop(m, [(HID,), (HID,)], lambda c, x, s: _first(c(x, tuple(s)))),
        (IN,),
    ),
    "nn.GRUCell-loop": (
        lambda: nn.GRUCell(IN, HID),
        {},
        lambda m: own_loop(m, [(HID,)], lambda c, x, s: _same(c(x, s[0]))),
        (IN,),
    ),
    "char-rnn-(output,hidden)": (
        CharRNN,
        {"state": [("batch", HID)], "step": True},
        lambda m: own_loop(m, [(HID,)], lambda c, x, s: _pair(c(x, s[0]))),
        (IN,),
    ),
    "hand-lstm-cell-(x,h,c)": (
        HandLSTMCell,
        {"state": [("batch", HID)] * 2, "step": True},
        lambda m: own_loop(m, [(HID,), (HID,)], lambda c, x, s: _first(c(x, *s))),
        (IN,),
    ),
    "hand-gru-cell-(x,h)": (
        HandGRUCell,
        {"state": [("batch", HID)], "step": True},
        lambda m: own_loop(m, [(HID,)], lambda c, x, s: _same(c(x, s[0]))),
        (IN,),
    ),
    "convlstm-cell-(x,(h,c))": (
        TutorialConvLSTMCell,
        {"state": [("batch", 3, 4, 4)] * 2, "step": True},
        lambda m: own_loop(m, [(3, 4, 4)] * 2, lambda c, x, s: _first(c(x, tuple(s)))),
        (2, 4, 4),
    ),
}


def _first(hc):  # (h, c) -> output h, state [h, c]
    return hc[0], list(hc)


def _same(h):  # h -> output h, state [h]
    return h, [h]


def _pair(yh):  # (y, h) -> output y, state [h]
    return yh[0], [yh[1]]


def _build(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory().eval()


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_tutorial_model_wraps_exports_passes_parity_and_streams(name: str, tmp_path) -> None:
    factory, kwargs, own, features = CASES[name]
    module = _build(factory)
    model = rnnx.wrap(module, **kwargs)  # the one line
    example = torch.randn(2, 5, *features)
    result = export_onnx(model, tmp_path / "m.onnx", example_input=example)
    assert_parity(model, result.path, batch_sizes=(1, 3), steps=(1, 7))

    x = torch.randn(1, 6, *features)
    with torch.no_grad():
        expected = own(module)(x).numpy()
    with StreamingSession(result.path) as session:
        streamed = np.stack([session.step(x[:, t].numpy()) for t in range(x.shape[1])], 1)
    np.testing.assert_allclose(streamed, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- state inference for torch's modules
@pytest.mark.parametrize(
    "layer,shapes",
    [
        (nn.RNN(3, 8), [(1, 4, 8)]),
        (nn.GRU(3, 8, num_layers=3, batch_first=True), [(3, 4, 8)]),
        (nn.LSTM(3, 8, num_layers=2, bidirectional=True), [(4, 4, 8), (4, 4, 8)]),
        (nn.LSTM(3, 8, proj_size=5), [(1, 4, 5), (1, 4, 8)]),
        (nn.RNNCell(3, 8), [(4, 8)]),
        (nn.LSTMCell(3, 8), [(4, 8), (4, 8)]),
        (nn.GRUCell(3, 8), [(4, 8)]),
    ],
    ids=["rnn", "gru-3l-batch-first", "lstm-2l-bi", "lstm-proj", "rnn-cell", "lstm-cell", "gru-cell"],
)
def test_state_is_inferred_for_torch_layers_and_cells(layer: nn.Module, shapes: list) -> None:
    model = rnnx.wrap(layer)
    state = model.init_state(4)
    assert [tuple(s.shape) for s in state] == shapes
    y, new = model(model.example_input(4, 5), state)
    assert y.shape[:2] == (4, 5) and [tuple(s.shape) for s in new] == shapes


def test_bidirectional_layer_is_not_streamable_but_runs_whole_sequences() -> None:
    model = rnnx.wrap(nn.GRU(3, 4, bidirectional=True, batch_first=True))
    assert model.streamable is False
    y, _ = model(torch.randn(2, 5, 3), model.init_state(2))
    assert y.shape == (2, 5, 8)


def test_wrapped_layer_matches_the_layer_and_shares_its_weights() -> None:
    lstm = nn.LSTM(3, 4)  # seq-first
    model = rnnx.wrap(lstm)
    x = torch.randn(2, 5, 3)
    y, (h, c) = model(x, model.init_state(2))
    ref, (rh, rc) = lstm(x.transpose(0, 1))
    torch.testing.assert_close(y, ref.transpose(0, 1))
    torch.testing.assert_close([h, c], [rh, rc])
    assert model.module is lstm


# ---------------------------------------------------------------- state_as and what comes back
class _Args3(nn.Module):
    def forward(self, x, a, b, c):
        return x[:, :1] + a, a + 1, b + 1, c + 1  # (y, h, c, d) with 3 states


def test_state_as_args_and_four_tuple_result() -> None:
    model = rnnx.wrap(_Args3(), [("batch", 1)] * 3, step=True)
    assert model.state_as == "args"
    y, state = model(torch.ones(2, 4, 3), model.init_state(2))
    assert y.shape == (2, 4, 1) and [float(s[0, 0]) for s in state] == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("state_as", ["tuple", "args"])
def test_explicit_state_as_overrides_the_guess(state_as: str) -> None:
    class Either(nn.Module):
        def forward(self, x, *state):
            h, c = state[0] if len(state) == 1 else state
            return h + x.sum(1, keepdim=True), c

    model = rnnx.wrap(Either(), [("batch", 1)] * 2, step=True, state_as=state_as)
    y, (h, c) = model(torch.ones(2, 3, 2), model.init_state(2))
    assert float(h[0, 0]) == 6.0 and y.shape == (2, 3, 1)


@pytest.mark.parametrize(
    "returned,match",
    [
        (lambda x, h: {"h": h}, r"returned dict"),
        (lambda x, h: (h, h, h), r"returned tuple\(Tensor\(2, 4\), Tensor\(2, 4\), Tensor\(2, 4\)\)"),
        (lambda x, h: (h, [h, h]), r"returned tuple\(Tensor\(2, 4\), list\(Tensor"),
    ],
    ids=["dict", "three-tensors-one-state", "two-states-for-one"],
)
def test_an_unreadable_return_value_is_named(returned: Callable, match: str) -> None:
    class Odd(nn.Module):
        def forward(self, x, h):
            return returned(x, h)

    model = rnnx.wrap(Odd(), [("batch", 4)], step=True)
    with pytest.raises(ContractError, match=match + r".*h, \(y, h\), \(y, \(h, c\)\), \(h, c\) or \(y, h, c\)"):
        model(torch.zeros(2, 3, 4), model.init_state(2))


# ---------------------------------------------------------------- errors that show the fix
def test_state_is_required_for_a_users_module_and_the_error_says_how() -> None:
    with pytest.raises(
        ConfigError,
        match=r"state: required for HandGRUCell .* its state \(h\); .*: rnnx\.wrap\(model, "
        r'state=\[\("batch", HIDDEN\)\], step=True\)',
    ):
        rnnx.wrap(HandGRUCell())


@pytest.mark.parametrize(
    "state,match",
    [
        ([(2, 20)], r'state\[0\]: expected a shape of positive ints with exactly one "batch"'),
        ([("batch", "batch")], r"exactly one \"batch\""),
        ("h", r"state: expected a list of shapes"),
        ([(0, "batch")], r"positive ints"),
    ],
    ids=["no-batch", "two-batch", "string", "zero"],
)
def test_malformed_state_shapes_are_refused(state, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        rnnx.wrap(HandGRUCell(), state, step=True)


def test_bad_state_as_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"state_as: expected one of auto, tensor, tuple, args, got 'list'"):
        rnnx.wrap(nn.GRU(3, 4), state_as="list")
    with pytest.raises(ConfigError, match=r'state_as: "tensor" hands over one state, but 2 are declared'):
        rnnx.wrap(nn.LSTM(3, 4), state_as="tensor")


def test_a_call_the_module_rejects_shows_the_wrap_call_and_what_to_try() -> None:
    model = rnnx.wrap(HandLSTMCell(), [("batch", HID)] * 2, step=True, state_as="tuple")  # wants (x, h, c)
    with pytest.raises(
        ContractError,
        match=r"HandLSTMCell called as module\(x\(2, 3\), \(h\(2, 6\), c\(2, 6\)\)\) "
        r"raised TypeError: .*rnnx\.wrap\(model, .*state_as='args'",
    ):
        model(torch.zeros(2, 4, IN), model.init_state(2))


def test_a_batch_first_mixup_suggests_batch_first() -> None:
    model = rnnx.wrap(SeqFirstGRU(), [(1, "batch", HID)])  # forgot batch_first=False
    with pytest.raises(ContractError, match=r"raised RuntimeError: .*batch_first=False"):
        model(torch.zeros(2, 5, IN), model.init_state(2))


def test_rnnx_package_root_stays_torch_free_until_wrap_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rnnx; assert 'torch' not in sys.modules; "
        "w = rnnx.wrap; assert 'torch' in sys.modules and w.__module__ == 'rnnx.models.wrap'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})


def test_wrapped_cell_serves_many_streams_in_a_pool(tmp_path) -> None:
    from rnnx.runtime import StreamPool

    cell = _build(HandLSTMCell)
    model = rnnx.wrap(cell, [("batch", HID)] * 2, step=True)
    path = export_onnx(model, tmp_path / "m.onnx", example_input=torch.randn(2, 5, IN)).path
    xs = {"a": torch.randn(1, 4, IN), "b": torch.randn(1, 4, IN)}
    with StreamPool(path, max_batch=4) as pool:
        for sid in xs:
            pool.open(sid)
        got = {sid: [] for sid in xs}
        for t in range(4):
            out = pool.step_many({sid: x[0, t].numpy() for sid, x in xs.items()})
            for sid in xs:
                got[sid].append(out[sid])
    own = own_loop(cell, [(HID,), (HID,)], lambda c, x, s: _first(c(x, *s)))
    for sid, x in xs.items():
        with torch.no_grad():
            np.testing.assert_allclose(np.stack(got[sid]), own(x)[0].numpy(), atol=1e-5)


TORCHSCRIPT = ["tutorial-lstm-(h0,c0)", "hand-lstm-cell-(x,h,c)", "convlstm-cell-(x,(h,c))"]


@pytest.mark.parametrize("name", TORCHSCRIPT, ids=TORCHSCRIPT)
def test_wrapped_model_exports_to_torchscript_that_loads_without_rnnx(name: str, tmp_path) -> None:
    from rnnx.exporter import export_torchscript

    factory, kwargs, own, features = CASES[name]
    module = _build(factory)
    model = rnnx.wrap(module, **kwargs)
    result = export_torchscript(model, tmp_path / "m.pt", example_input=torch.randn(2, 5, *features))
    assert_parity(model, result.path, batch_sizes=(1, 3), steps=(1, 7))
    loaded = torch.jit.load(str(result.path))  # plain torch: init_state and forward(x, state)
    x = torch.randn(2, 9, *features)  # a length the trace never saw
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, loaded.init_state(2))[0], own(module)(x))
