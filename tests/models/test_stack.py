"""LayerStack: the one loop over recurrent layers, shared by RNN/LSTM/GRU layers and ConvLSTM."""

import pytest
import torch
import torch.nn.functional as F

from rnnx.models import GRULayers, LSTMLayers, RNNLayers, build, decompose
from rnnx.models.stack import LayerStack

# state_dict keys as they were before the stack loop was folded into LayerStack: checkpoints
# written then must still load (strict) into the models built now.
RNN_2L = [f"rnn.{p}_l{i}" for i in range(2) for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")] + [
    "head.weight",
    "head.bias",
]
LSTM_2L_PROJ_BI = [
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "rnn.weight_hr_l0",
    "rnn.weight_ih_l0_reverse",
    "rnn.weight_hh_l0_reverse",
    "rnn.bias_ih_l0_reverse",
    "rnn.bias_hh_l0_reverse",
    "rnn.weight_hr_l0_reverse",
    "rnn.weight_ih_l1",
    "rnn.weight_hh_l1",
    "rnn.bias_ih_l1",
    "rnn.bias_hh_l1",
    "rnn.weight_hr_l1",
    "rnn.weight_ih_l1_reverse",
    "rnn.weight_hh_l1_reverse",
    "rnn.bias_ih_l1_reverse",
    "rnn.bias_hh_l1_reverse",
    "rnn.weight_hr_l1_reverse",
    "head.weight",
    "head.bias",
]
CONV_2L = [
    "cells.0.conv.weight",
    "cells.0.conv.bias",
    "cells.1.conv.weight",
    "cells.1.conv.bias",
    "head.weight",
    "head.bias",
]
CONV_2L_NOBIAS = ["cells.0.conv.weight", "cells.1.conv.weight", "head.weight", "head.bias"]
REC = dict(input_size=5, hidden_size=4, output_size=3, num_layers=2)
CONV = dict(input_size=2, hidden_size=4, image_size=(6, 6), output_size=1, num_layers=2)
FAMILIES = [
    ("rnn", lambda: build("rnn", **REC), RNN_2L),
    ("gru", lambda: build("gru", **REC), RNN_2L),
    ("lstm-proj-bi", lambda: build("lstm", **REC, proj_size=3, bidirectional=True), LSTM_2L_PROJ_BI),
    (
        "lstm-proj-bi-decomposed",
        lambda: decompose(build("lstm", **REC, proj_size=3, bidirectional=True)),
        LSTM_2L_PROJ_BI,
    ),
    ("gru-decomposed", lambda: decompose(build("gru", **REC)), RNN_2L),
    ("convlstm", lambda: build("convlstm", **CONV), CONV_2L),
    ("convlstm-nobias", lambda: build("convlstm", **CONV, bias=False), CONV_2L_NOBIAS),
]


@pytest.mark.parametrize("make,keys", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_state_dict_keys_are_unchanged_so_old_checkpoints_load(make, keys):
    model = make()
    assert list(model.state_dict()) == keys
    old = {k: torch.full_like(v, 0.25) for k, v in model.state_dict().items()}  # a checkpoint with those keys
    model.load_state_dict(old)  # strict
    assert all(torch.equal(v, old[k]) for k, v in model.state_dict().items())


def test_layer_stack_keys_of_the_torch_compatible_layers_are_torchs():
    lstm = LSTMLayers(5, 4, num_layers=2, bidirectional=True, proj_size=3)
    assert isinstance(lstm.layers, LayerStack)
    assert list(lstm.state_dict()) == [k[len("rnn.") :] for k in LSTM_2L_PROJ_BI[:-2]]


def _by_hand(stack, x, state, dropout):
    """The stack's promise written out: layer i on rows [i*w, (i+1)*w), dropout before layers 1.., states stacked."""
    w, news = stack.width, [[] for _ in state]
    for i, layer in enumerate(stack):
        if i > 0:
            x = F.dropout(x, dropout, True)
        x, *new = layer(x, *[s[i * w : (i + 1) * w] for s in state])
        for out, s in zip(news, new):
            out.append(s)
    return x, [torch.cat(s, 0) for s in news]


STACKS = [
    ("rnn-bi", lambda: RNNLayers(3, 4, num_layers=3, bidirectional=True, dropout=0.5), (5, 2, 3), [(6, 2, 4)]),
    ("gru", lambda: GRULayers(3, 4, num_layers=2, dropout=0.5), (5, 2, 3), [(2, 2, 4)]),
    (
        "lstm-proj-bi",
        lambda: LSTMLayers(3, 4, num_layers=2, bidirectional=True, proj_size=2, dropout=0.5),
        (5, 2, 3),
        [(4, 2, 2), (4, 2, 4)],
    ),
    (
        "convlstm",
        lambda: build("convlstm", input_size=2, hidden_size=3, image_size=(4, 4), num_layers=2, dropout=0.5),
        (2, 3, 2, 4, 4),
        [(2, 2, 3, 4, 4)] * 2,
    ),
]


@pytest.mark.parametrize("make,x_shape,state_shapes", [s[1:] for s in STACKS], ids=[s[0] for s in STACKS])
def test_stack_runs_each_layer_on_its_state_rows_with_dropout_between_bitwise(make, x_shape, state_shapes):
    torch.manual_seed(0)
    model = make().train()
    stack = model.layers if hasattr(model, "layers") else model.cells
    x = torch.randn(x_shape)
    state = [torch.randn(s) for s in state_shapes]
    torch.manual_seed(1)
    y, new = stack(x, state, 0.5)
    torch.manual_seed(1)  # the same dropout masks, drawn in the same order
    y_ref, new_ref = _by_hand(stack, x, state, 0.5)
    assert torch.equal(y, y_ref)
    assert len(new) == len(new_ref) and all(torch.equal(a, b) for a, b in zip(new, new_ref))
    model.eval()
    y_eval, _ = stack(x, state, 0.5)  # no dropout in eval
    assert torch.equal(y_eval, _by_hand(stack, x, state, 0.0)[0])
    args = (x, state) if not hasattr(model, "layers") else (x, state[0] if len(state) == 1 else tuple(state))
    assert torch.equal(torch.jit.script(model)(*args)[0], model(*args)[0])  # the stack compiles in every model
