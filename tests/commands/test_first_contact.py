"""First contact: five tutorial-style models through the CLI as a new user runs them.

A sine LSTM that hides its state, a hand-written GRU cell, a char-level Embedding + GRU,
an encoder–decoder forecaster with attention, and a plain ``torch.onnx.export`` file:
each goes through ``rnnx export file.py:factory`` (no ``--example-shape``: the input is
read off the module), ``rnnx check``, ``rnnx run`` and streaming, with at most the one
change the first error names.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.runtime import StreamingSession

TUTORIALS = '''
import torch
from torch import nn

import rnnx
from rnnx.models import Seq2Seq


class Sine(nn.Module):
    """The sine tutorial: forward(x) -> y; the LSTM's state never leaves forward."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 16, batch_first=True)
        self.fc = nn.Linear(16, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out)


class MyGRUCell(nn.Module):
    """A hand-written GRU cell: forward(x, h) -> h."""

    def __init__(self, input_size=5, hidden_size=12):
        super().__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, 3 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x, h):
        xr, xz, xn = self.x2h(x).chunk(3, 1)
        hr, hz, hn = self.h2h(h).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return (1 - z) * torch.tanh(xn + r * hn) + z * h


class CharRNN(nn.Module):
    """Embedding + GRU + Linear; input_size is the one-hot size, as the tutorial keeps it."""

    def __init__(self, vocab=20, hidden=24):
        super().__init__()
        self.input_size = vocab
        self.emb = nn.Embedding(vocab, 8)
        self.rnn = nn.GRU(8, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, h):
        o, h = self.rnn(self.emb(x), h)
        return self.out(o), h


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 16, batch_first=True)

    def forward(self, x):
        out, h = self.gru(x)
        return out, [h[0]]


class AttnDecoder(nn.Module):
    """One step: the previous value, the state, attention over the encoder outputs."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(1, 16)
        self.head = nn.Linear(32, 1)

    def forward(self, y_prev, state, memory):
        h = self.cell(y_prev, state[0])
        w = torch.softmax(torch.bmm(memory, h.unsqueeze(2)).squeeze(2), 1)
        return self.head(torch.cat([h, torch.bmm(w.unsqueeze(1), memory).squeeze(1)], 1)), [h]


def sine():
    torch.manual_seed(0)
    return Sine()


def gru_cell():  # as the first error said: rnnx.wrap(model, state=[("batch", 12)], step=True)
    torch.manual_seed(0)
    return rnnx.wrap(MyGRUCell(), state=[("batch", 12)], step=True)


def gru_cell_as_written():
    return MyGRUCell()


def char_rnn():  # as the first error said: rnnx.wrap(model, state=[(1, "batch", 24)])
    torch.manual_seed(0)
    return rnnx.wrap(CharRNN(), state=[(1, "batch", 24)])


def forecaster():  # the seq2seq bundle route; the first decoder input is the last observed target
    torch.manual_seed(0)
    return Seq2Seq.from_modules(Encoder(), AttnDecoder(), input_size=3, horizon=4, window=8, attention=True,
                                first_input=0)
'''


@pytest.fixture(scope="module")
def tutorials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tutorials")
    (root / "tutorials.py").write_text(textwrap.dedent(TUTORIALS))
    return root


def _cli(*args: object):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def _streams_like_run(path: Path, x: np.ndarray) -> None:
    """Streaming step by step equals the whole sequence run from zero state."""
    session = StreamingSession(path)
    stepped = np.stack([session.step(x[:, t]) for t in range(x.shape[1])], 1)
    np.testing.assert_allclose(stepped, StreamingSession(path).run(x), atol=1e-5)


@pytest.mark.parametrize(
    "factory,x",
    [
        ("sine", np.random.default_rng(0).standard_normal((1, 12, 1)).astype(np.float32)),
        ("gru_cell", np.random.default_rng(1).standard_normal((1, 12, 5)).astype(np.float32)),
        ("char_rnn", np.random.default_rng(2).integers(0, 20, (1, 12))),
    ],
    ids=["sine-lstm-hidden-state", "hand-written-gru-cell", "char-rnn"],
)
def test_a_tutorial_model_exports_checks_runs_and_streams(
    tutorials: Path, tmp_path: Path, factory: str, x: np.ndarray
) -> None:
    ref = f"{tutorials / 'tutorials.py'}:{factory}"
    _cli("export", ref, "--out", tmp_path)  # no --example-shape: read off the module
    model = tmp_path / "model.onnx"
    assert _cli("check", ref, model, "-q").stdout.startswith("PASS")
    np.save(tmp_path / "x.npy", x[0])
    _cli("run", model, tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy")[0], StreamingSession(model).run(x)[0], atol=1e-5)
    _streams_like_run(model, x)


def test_the_cell_as_written_is_told_the_exact_wrap_call(tutorials: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["export", f"{tutorials / 'tutorials.py'}:gru_cell_as_written", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert 'return rnnx.wrap(model, state=[("batch", 12)], step=True)' in res.stderr


def test_the_forecaster_exports_as_a_bundle_and_checks(tutorials: Path, tmp_path: Path) -> None:
    from rnnx.runtime import ForecastSession

    ref = f"{tutorials / 'tutorials.py'}:forecaster"
    _cli("export", ref, "--out", tmp_path)
    assert _cli("check", ref, tmp_path, "-q").stdout.startswith("PASS")
    window = np.random.default_rng(3).standard_normal((2, 8, 3)).astype(np.float32)
    assert ForecastSession(tmp_path).forecast(window, 4).shape == (2, 4, 1)


def test_a_plain_torch_onnx_export_streams_after_rnnx_stateful(tmp_path: Path) -> None:
    from tests.foreign import FEATURES, PlainRNN, export_plain

    plain = export_plain(PlainRNN("lstm", 2), (torch.zeros(2, 6, FEATURES),), tmp_path / "plain.onnx")
    _cli("stateful", plain, "--out", tmp_path / "s.onnx")
    x = np.random.default_rng(4).standard_normal((1, 10, FEATURES)).astype(np.float32)
    np.save(tmp_path / "x.npy", x[0])
    _cli("run", tmp_path / "s.onnx", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    _streams_like_run(tmp_path / "s.onnx", x)
