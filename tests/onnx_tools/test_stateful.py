"""make_stateful: ONNX files whose LSTM/GRU/RNN keep their state inside become streamable."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import Tensor, nn

from rnnx.errors import ModelFileError, NotStreamableError, ParityError, StatefulError
from rnnx.exporter import export_onnx, make_stateful, read_spec
from rnnx.runtime import StreamingSession, StreamPool
from tests.foreign import FEATURES, HIDDEN, OUT, LstmWithState, PlainRNN, export_lstm_with_state, export_plain
from tests.zoo import TINY

CASES = [  # (cell, layers, batch_first, dynamo): the default exporter once, the legacy one otherwise
    ("lstm", 2, True, True),
    ("lstm", 1, False, False),
    ("gru", 2, True, False),
    ("gru", 1, False, False),
    ("rnn", 1, True, False),
]


def _eager(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(
    "cell,layers,batch_first,dynamo",
    CASES,
    ids=[f"{c}-{n}l-{'bf' if bf else 'tm'}{'-dynamo' if d else ''}" for c, n, bf, d in CASES],
)
def test_plain_export_streams_equal_to_the_module(tmp_path, cell, layers, batch_first, dynamo) -> None:
    model = PlainRNN(cell, layers, batch_first)
    example = torch.zeros(2, 6, FEATURES) if batch_first else torch.zeros(6, 2, FEATURES)
    src = export_plain(model, (example,), tmp_path / "plain.onnx", dynamo=dynamo)
    result = make_stateful(src, tmp_path / "stream.onnx")

    spec = read_spec(result.path)  # (batch, time, ...) like every rnnx file, time-major or not
    assert (spec.input.shape, spec.output.shape) == (("batch", "time", FEATURES), ("batch", "time", OUT))
    assert [s.shape for s in spec.state] == [(1, "batch", HIDDEN)] * (layers * (2 if cell == "lstm" else 1))
    assert result.max_abs_err < 1e-5 and len(result.checked) == 3
    # the module itself, at a batch size and length the export never saw, step by step
    batch, steps = 3, 9
    x = np.random.default_rng(0).standard_normal((batch, steps, FEATURES)).astype(np.float32)
    sess = StreamingSession(result.path, batch_size=batch)
    ys = np.stack([sess.step(x[:, i]) for i in range(steps)], axis=1)
    want = _eager(model, x) if batch_first else _eager(model, x.transpose(1, 0, 2)).transpose(1, 0, 2)
    np.testing.assert_allclose(ys, want, atol=1e-5)


def test_a_time_major_file_can_keep_its_layout(tmp_path) -> None:
    model = PlainRNN("lstm", batch_first=False)
    src = export_plain(model, (torch.zeros(5, 2, FEATURES),), tmp_path / "tm.onnx", dynamo=False)
    result = make_stateful(src, tmp_path / "s.onnx", batch_first=False)
    assert result.spec.input.shape == ("time", "batch", FEATURES) and result.spec.output.time_axis == 0
    x = np.random.default_rng(0).standard_normal((7, 2, FEATURES)).astype(np.float32)  # (T, B, F)
    sess = StreamingSession(result.path, batch_size=2)
    np.testing.assert_allclose(np.concatenate([sess.feed(x[:3]), sess.feed(x[3:])]), _eager(model, x), atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2], ids=["1-layer", "2-layers-sliced"])
def test_states_already_in_the_graph_are_paired(tmp_path, layers) -> None:
    result = make_stateful(export_lstm_with_state(tmp_path / "ls.onnx", layers), tmp_path / "s.onnx")
    assert [(s.name, s.input, s.output, s.shape) for s in result.spec.state] == [
        ("h0", "h0", "hn", (layers, "batch", HIDDEN)),
        ("c0", "c0", "cn", (layers, "batch", HIDDEN)),
    ]
    assert "paired the existing state h0 -> hn" in result.notes
    x = np.random.default_rng(0).standard_normal((3, 7, FEATURES)).astype(np.float32)
    sess = StreamingSession(result.path, batch_size=3)
    ys = np.stack([sess.step(x[:, t]) for t in range(7)], axis=1)
    zeros = torch.zeros(layers, 3, HIDDEN)
    with torch.no_grad():
        want = LstmWithState(layers)(torch.from_numpy(x), zeros, zeros)[0].numpy()
    np.testing.assert_allclose(ys, want, atol=1e-5)


class _NonCausal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x - x.mean(dim=1, keepdim=True))[0]  # looks at the future


class _OnesState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x, torch.ones(1, x.shape[0], HIDDEN))[0]


class _EncodedState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.init = nn.Linear(FEATURES, HIDDEN)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x, torch.tanh(self.init(x[:, 0]))[None])[0]  # h0 computed from the input


class _LastStep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0][:, -1]


@pytest.mark.parametrize(
    "module,error,match",
    [
        (nn.Linear(FEATURES, OUT), StatefulError, r"no recurrent node .* no state to expose"),
        (PlainRNN("gru", bidirectional=True), NotStreamableError, r"GRU '.*' is bidirectional: .* whole sequence"),
        (_OnesState(), StatefulError, r"the initial h of GRU '.*' \(.*\) is a non-zero constant"),
        (_EncodedState(), StatefulError, r"the initial h of GRU '.*' .* is computed inside the graph"),
        (_LastStep(), StatefulError, r"output .* no time axis"),
        (
            _NonCausal(),
            ParityError,
            r"step\(\) x6 at batch 2 vs the original: max abs err .* FAILED.*nothing was written",
        ),
    ],
    ids=["no-rnn", "bidirectional", "constant-state", "computed-state", "no-time-axis", "not-causal"],
)
def test_refusals_name_the_reason_and_write_nothing(tmp_path, module, error, match) -> None:
    src = export_plain(module.eval(), (torch.zeros(2, 6, FEATURES),), tmp_path / "m.onnx", dynamo=False)
    with pytest.raises(error, match=match):
        make_stateful(src, tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_rnnx_files_and_bad_axes_are_refused(tmp_path) -> None:
    rnnx_file = export_onnx(TINY["gru-1l"](), tmp_path / "r.onnx").path
    with pytest.raises(ModelFileError, match=r"already has 'rnnx.spec'"):
        make_stateful(rnnx_file, tmp_path / "o.onnx")
    src = export_plain(PlainRNN("gru"), (torch.zeros(2, 6, FEATURES),), tmp_path / "m.onnx", dynamo=False)
    with pytest.raises(StatefulError, match=r"time_axis: expected an axis of input \(rank 3\), got 5"):
        make_stateful(src, tmp_path / "o.onnx", batch_axis=0, time_axis=5)
    assert not (tmp_path / "o.onnx").exists()


def test_the_written_file_is_valid_onnx_with_its_spec(tmp_path) -> None:
    src = export_plain(PlainRNN("lstm"), (torch.zeros(1, 4, FEATURES),), tmp_path / "m.onnx", dynamo=False)
    out = make_stateful(src, tmp_path / "s.onnx").path
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    names = [i.name for i in model.graph.input]
    assert names == ["input", "h0_in", "c0_in"] and read_spec(out).exporter == "make_stateful"


def test_a_time_major_file_streams_through_a_pool(tmp_path) -> None:
    model = PlainRNN("gru", batch_first=False)
    src = export_plain(model, (torch.zeros(5, 2, FEATURES),), tmp_path / "tm.onnx", dynamo=False)
    path = make_stateful(src, tmp_path / "s.onnx").path
    x = np.random.default_rng(0).standard_normal((6, 3, FEATURES)).astype(np.float32)  # (T, B, F)
    with StreamPool(path, capacity=4) as pool:
        for i in range(3):
            pool.open(i)
        ys = np.stack([pool.step_many({i: x[t, i] for i in range(3)}).array for t in range(6)])  # (T, B, OUT)
    np.testing.assert_allclose(ys, _eager(model, x), atol=1e-5)


class _Tagger(nn.Module):  # token ids -> embedding -> GRU -> per-step logits
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.rnn, self.head = (
            nn.Embedding(10, FEATURES),
            nn.GRU(FEATURES, HIDDEN, batch_first=True),
            nn.Linear(HIDDEN, 10),
        )

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.rnn(self.emb(ids))[0])


def test_token_id_input(tmp_path) -> None:
    model = _Tagger().eval()
    src = export_plain(model, (torch.zeros(2, 5, dtype=torch.long),), tmp_path / "t.onnx", dynamo=False)
    result = make_stateful(src, tmp_path / "s.onnx")
    assert result.spec.input.shape == ("batch", "time") and result.spec.input.dtype == "int64"
    ids = np.random.default_rng(0).integers(0, 10, (3, 8))
    sess = StreamingSession(result.path, batch_size=3)
    ys = np.stack([sess.step(ids[:, t]) for t in range(8)], axis=1)
    with torch.no_grad():
        np.testing.assert_allclose(ys, model(torch.from_numpy(ids)).numpy(), atol=1e-5)


class _WithInitialState(nn.Module):
    """The tutorial's forward(x, h0[, c0]) -> (y, hn[, cn]): initial-state inputs, final states out."""

    def __init__(self, cell: str, layers: int, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cell = cell
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](
            FEATURES, HIDDEN, num_layers=layers, batch_first=batch_first
        )
        self.eval()

    def forward(self, x: Tensor, h0: Tensor, *c0: Tensor):
        y, state = self.rnn(x, (h0, c0[0]) if self.cell == "lstm" else h0)
        return (y, *state) if self.cell == "lstm" else (y, state)


# (cell, layers, batch_first, dynamo, dynamic shapes, initial-state inputs): every axis of a plain export
MATRIX = [
    ("lstm", 1, True, False, False, False),
    ("lstm", 3, False, True, False, False),
    ("gru", 2, True, True, False, False),
    ("rnn", 3, False, False, False, False),
    ("lstm", 2, True, False, True, False),
    ("gru", 1, False, True, True, False),
    ("lstm", 1, False, True, False, True),
    ("lstm", 3, True, False, True, True),
    ("gru", 3, True, True, True, True),
    ("gru", 1, False, False, False, True),
    ("rnn", 2, True, False, True, True),
    ("rnn", 1, False, False, False, True),
]


def _plain_export(tmp_path, cell, layers, batch_first, dynamo, dynamic, init):
    x = torch.zeros(2, 6, FEATURES) if batch_first else torch.zeros(6, 2, FEATURES)
    h = torch.zeros(layers, 2, HIDDEN)
    model = _WithInitialState(cell, layers, batch_first) if init else PlainRNN(cell, layers, batch_first)
    args = ((x, h, h.clone()) if cell == "lstm" else (x, h)) if init else (x,)
    names = ["x", "h0", "c0"][: len(args)]
    outs = ["y", "hn", "cn"][: len(args)]
    kw: dict = {}
    if dynamic and not dynamo:
        data = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
        axes = {"x": data, "y": data, **{n: {1: "batch"} for n in names[1:] + outs[1:]}}
        kw = dict(input_names=names, output_names=outs, dynamic_axes=axes)
    elif dynamic:
        batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
        kw = dict(
            input_names=names,
            output_names=outs,
            dynamic_shapes=(
                {0: batch, 1: time} if batch_first else {0: time, 1: batch},
                *({1: batch} for _ in names[1:]),
            ),
        )
    return model, export_plain(model, args, tmp_path / "plain.onnx", dynamo=dynamo, **kw)


@pytest.mark.parametrize(
    "cell,layers,batch_first,dynamo,dynamic,init",
    MATRIX,
    ids=[
        f"{c}-{n}l-{'bf' if bf else 'tm'}-{'dynamo' if d else 'legacy'}-{'dynamic' if dy else 'static'}"
        f"-{'h0' if i else 'no-h0'}"
        for c, n, bf, d, dy, i in MATRIX
    ],
)
def test_every_plain_export_streams_equal_to_eager_at_other_sizes(
    tmp_path, cell, layers, batch_first, dynamo, dynamic, init
) -> None:
    model, src = _plain_export(tmp_path, cell, layers, batch_first, dynamo, dynamic, init)
    result = make_stateful(src, tmp_path / "stream.onnx")
    batch, steps = 3, 9  # neither the export's batch nor its length
    x = np.random.default_rng(0).standard_normal((batch, steps, FEATURES)).astype(np.float32)
    sess = StreamingSession(result.path, batch_size=batch)
    ys = np.stack([sess.step(x[:, i]) for i in range(steps)], axis=1)
    xt = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        if init:
            h = torch.zeros(layers, batch, HIDDEN)
            want = (model(xt, h, h.clone()) if cell == "lstm" else model(xt, h))[0].numpy()
        else:
            want = model(xt).numpy()
    np.testing.assert_allclose(ys, want if batch_first else want.transpose(1, 0, 2), atol=1e-5)


def test_the_dynamo_exporters_unrolled_rnn_is_refused_with_the_way_out(tmp_path) -> None:
    _, src = _plain_export(tmp_path, "rnn", 1, True, True, False, False)
    with pytest.raises(StatefulError, match=r"no recurrent node .* unrolled at export .* re-export with dynamo=False"):
        make_stateful(src, tmp_path / "out.onnx")


BARE = [("lstm", 1, False), ("gru", 2, False), ("rnn", 2, False), ("lstm", 2, True), ("gru", 1, True)]


@pytest.mark.parametrize(
    "cell,layers,dynamo", BARE, ids=[f"{c}-{n}l-{'dynamo' if d else 'legacy'}" for c, n, d in BARE]
)
def test_a_bare_layer_exported_with_its_final_states_streams(tmp_path, cell, layers, dynamo) -> None:
    """The docstring's example: torch.onnx.export(nn.LSTM(8, 16), (torch.zeros(5, 1, 8),), f): static
    shapes, no h0, and the final h_n/c_n already graph outputs (onnx.checker refused the result)."""
    torch.manual_seed(0)
    layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](FEATURES, HIDDEN, num_layers=layers).eval()
    src = export_plain(layer, (torch.zeros(5, 1, FEATURES),), tmp_path / "bare.onnx", dynamo=dynamo)
    result = make_stateful(src, tmp_path / "s.onnx")
    assert any("repeats a final state" in n for n in result.notes)
    x = np.random.default_rng(0).standard_normal((3, 7, FEATURES)).astype(np.float32)  # (B, T, F)
    sess = StreamingSession(result.path, batch_size=3)
    ys = np.stack([sess.step(x[:, i]) for i in range(7)], axis=1)
    with torch.no_grad():
        want = layer(torch.from_numpy(x.transpose(1, 0, 2).copy()))[0].numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(ys, want, atol=1e-5)
