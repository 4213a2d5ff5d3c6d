"""The model zoo: scriptable RNN / LSTM / GRU / ConvLSTM / seq2seq models, gate-equation cells,
torch-compatible layer stacks, ``decompose`` and safetensors checkpoints.

Every model follows the rnnx contract: batch-first input, ``init_state(batch_size)``
(``@torch.jit.export``) and ``forward(x, state: List[Tensor]) -> (y, new_state)``.

Example:
    >>> from rnnx.models import build
    >>> model = build("lstm", input_size=5, hidden_size=8, output_size=3)
    >>> y, state = model(model.example_input(2, 7), model.init_state(2))
    >>> tuple(y.shape)
    (2, 7, 3)
"""

from rnnx.torch_support import check_torch_version

check_torch_version()  # a clear error before torch's own on an old install

from rnnx.models.cells import ConvLSTMCell, GRUCell, LSTMCell, RNNCell
from rnnx.models.checkpoint import load, load_extra, save
from rnnx.models.config import KINDS, ModelConfig
from rnnx.models.convlstm import ConvLSTM
from rnnx.models.decompose import decompose
from rnnx.models.from_torch import from_conv_cells, from_torch, reorder_gates
from rnnx.models.layers import GRULayers, LSTMLayers, RNNLayers
from rnnx.models.recurrent import RecurrentModel
from rnnx.models.registry import build, build_from_config
from rnnx.models.seq2seq import RNNDecoder, RNNEncoder, Seq2Seq
from rnnx.models.wrap import wrap

__all__ = [
    "build",
    "build_from_config",
    "ModelConfig",
    "KINDS",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "ConvLSTMCell",
    "RecurrentModel",
    "ConvLSTM",
    "Seq2Seq",
    "RNNEncoder",
    "RNNDecoder",
    "RNNLayers",
    "LSTMLayers",
    "GRULayers",
    "decompose",
    "save",
    "load",
    "load_extra",
    "wrap",
    "from_torch",
    "from_conv_cells",
    "reorder_gates",
]
