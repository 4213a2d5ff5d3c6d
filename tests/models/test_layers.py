import itertools

import pytest
import torch
from torch import nn

from rnnx.models import GRULayers, LSTMLayers, RNNLayers

KINDS = [
    ("rnn-tanh", nn.RNN, RNNLayers, {}),
    ("rnn-relu", nn.RNN, RNNLayers, {"nonlinearity": "relu"}),
    ("gru", nn.GRU, GRULayers, {}),
    ("lstm", nn.LSTM, LSTMLayers, {}),
    ("lstm-proj", nn.LSTM, LSTMLayers, {"proj_size": 3}),
]
OPTIONS = list(itertools.product((1, 2), (True, False), (True, False), (True, False)))
OPT_IDS = [f"l{n}-{'bias' if b else 'nobias'}-{'bf' if f else 'tf'}-{'bi' if d else 'uni'}" for n, b, f, d in OPTIONS]


def _flat(out):
    y, state = out
    return [y, *state] if isinstance(state, tuple) else [y, state]


def _state(ref, batch):
    d = 2 if ref.bidirectional else 1
    h = torch.randn(
        ref.num_layers * d, batch, ref.proj_size or ref.hidden_size if isinstance(ref, nn.LSTM) else ref.hidden_size
    )
    if isinstance(ref, nn.LSTM):
        return (h, torch.randn(ref.num_layers * d, batch, ref.hidden_size))
    return h


@pytest.mark.parametrize("opts", OPTIONS, ids=OPT_IDS)
@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_layers_match_torch_on_every_option(torch_cls, ours_cls, extra, opts):
    layers, bias, batch_first, bidir = opts
    torch.manual_seed(0)
    kw = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidir, **extra)
    ref = torch_cls(5, 8, **kw)
    ours = ours_cls.from_torch(ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 4, 5) if batch_first else torch.randn(4, 2, 5)
    hx = _state(ref, 2)
    for args in ((x,), (x, hx)):
        for p, q in zip(_flat(ref(*args)), _flat(ours(*args))):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_gradients_match_torch(torch_cls, ours_cls, extra):
    torch.manual_seed(1)
    ref = torch_cls(5, 8, num_layers=2, bidirectional=True, **extra)
    ours = ours_cls.from_torch(ref)
    x = torch.randn(3, 2, 5)
    sum(t.sum() for t in _flat(ref(x))).backward()
    sum(t.sum() for t in _flat(ours(x))).backward()
    for (name, p), q in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_load_state_dict_from_torch_and_back(torch_cls, ours_cls, extra):
    ref = torch_cls(5, 8, num_layers=2, bidirectional=True, **extra)
    ours = ours_cls(5, 8, num_layers=2, bidirectional=True, **extra)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 2, 5)
    torch.testing.assert_close(_flat(ours(x))[0], _flat(ref(x))[0], atol=1e-5, rtol=1e-5)
    back = torch_cls(5, 8, num_layers=2, bidirectional=True, **extra)
    back.load_state_dict(ours.state_dict())
    torch.testing.assert_close(_flat(back(x))[0], _flat(ref(x))[0])


@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_unbatched_input_like_torch(torch_cls, ours_cls, extra):
    ref = torch_cls(5, 8, num_layers=2, **extra)
    ours = ours_cls.from_torch(ref)
    x = torch.randn(4, 5)  # (T, I)
    for p, q in zip(_flat(ref(x)), _flat(ours(x))):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_scripted_layers_give_identical_results(torch_cls, ours_cls, extra):
    ours = ours_cls.from_torch(torch_cls(5, 8, num_layers=2, bidirectional=True, batch_first=True, **extra))
    scripted = torch.jit.script(ours)
    x = torch.randn(2, 6, 5)
    for p, q in zip(_flat(ours(x)), _flat(scripted(x))):
        torch.testing.assert_close(q, p)


@pytest.mark.parametrize("torch_cls,ours_cls,extra", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_trace_at_one_step_has_only_elementary_ops(torch_cls, ours_cls, extra):
    ours = ours_cls.from_torch(torch_cls(5, 8, num_layers=2, bidirectional=True, batch_first=True, **extra)).eval()
    hx = _state(torch_cls(5, 8, num_layers=2, bidirectional=True, **extra), 2)
    traced = torch.jit.trace(ours, (torch.randn(2, 1, 5), hx))
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert not kinds & {"aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu", "prim::Loop"}
    assert "aten::linear" in kinds
    x = torch.randn(3, 1, 5)
    hx3 = _state(torch_cls(5, 8, num_layers=2, bidirectional=True, **extra), 3)
    for p, q in zip(_flat(ours(x, hx3)), _flat(traced(x, hx3))):  # batch stays dynamic
        torch.testing.assert_close(q, p)


def test_dropout_between_layers_only_in_training():
    ours = LSTMLayers(5, 8, num_layers=2, dropout=0.5)
    x = torch.randn(4, 2, 5)
    ours.eval()
    torch.testing.assert_close(ours(x)[0], ours(x)[0])
    ours.train()
    torch.manual_seed(0)
    a = ours(x)[0]
    torch.manual_seed(1)
    assert not torch.equal(a, ours(x)[0])


def test_from_torch_keeps_dtype_and_mode():
    ref = nn.GRU(5, 8).double().eval()
    ours = GRULayers.from_torch(ref)
    assert ours.weight_ih_l0.dtype == torch.float64 and not ours.training


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match=r"module: expected torch.nn.LSTM, got GRU"):
        LSTMLayers.from_torch(nn.GRU(5, 8))
