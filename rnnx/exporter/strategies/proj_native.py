"""LSTM with ``proj_size`` as the native ONNX ``LSTM`` op: the projection folded into the weights.

torch refuses to export ``nn.LSTM(proj_size=P)``, but a projected layer is a plain LSTM in
disguise. With input weights ``W`` (4H, I), recurrent weights ``R`` (4H, P), projection
``W_hr`` (P, H) and ``h_full_t = o_t * tanh(c_t)`` (H), the layer emits ``h_t = W_hr h_full_t``
and its gates use ``R h_{t-1} = (R W_hr) h_full_{t-1}``. So the layer equals a plain LSTM of
hidden size H with recurrent weights ``R W_hr`` running on ``h_full``, followed by ``W_hr``:

- the next layer's input weights absorb the projection (``W_next W_hr``, block-diagonal over
  directions), so the whole stack is one plain ``nn.LSTM`` (one native op per layer);
- the last layer's outputs and every ``h_n`` are projected by ``W_hr`` (one ``MatMul`` each);
- the contract's projected ``h0`` (P) is lifted to ``h_full0 = pinv(W_hr) h0`` (H): then
  ``W_hr h_full0 = h0`` and the first step's gates are unchanged.

The lift is as exact as ``W_hr`` is well conditioned: the first step's error grows like
float32's epsilon times ``cond(W_hr)``. Measured on random LSTMs (H 8/64, P 4/32/63, states
of 0.5 scale, 3 steps, worst of 5): max |error| about 1e-7 up to cond 100, 1-2e-6 at cond
1e3, up to 2e-5 at cond 1e4 (over the 1e-5 float32 tolerance), 2e-4 at 1e5. Layers whose
``W_hr`` has a condition number above :data:`MAX_COND` are refused up front (the ``scan``
graphs take them); random initialisations sit near 6.

The state contract is unchanged: ``h`` (L*D, B, P), ``c`` (L*D, B, H).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx
import torch
from torch import Tensor, nn

from rnnx.exporter.strategies.base import ExportContext, Flat, export_traced
from rnnx.exporter.strategies.trace import refuse_relu_rnn

if TYPE_CHECKING:
    from rnnx.models.layers import LSTMLayers

MAX_COND = 1e3  # largest cond(W_hr) accepted: lifting h0 costs ~eps32 * cond (2e-6 at 1e3, see above)


def _projected_lstms(model: nn.Module) -> list[tuple[nn.Module, str, nn.LSTM | LSTMLayers, str]]:
    """(parent, attribute, layer, qualified name) for every nn.LSTM / rnnx LSTMLayers with ``proj_size`` > 0."""
    from rnnx.models.layers import LSTMLayers

    return [
        (parent, name, child, f"{path}.{name}" if path else name)
        for path, parent in model.named_modules()
        for name, child in parent.named_children()
        if isinstance(child, (nn.LSTM, LSTMLayers)) and child.proj_size > 0
    ]


def _checked_projection(w_hr: Tensor, name: str) -> Tensor:
    """``w_hr`` (P, H) in float64, refused when rank-deficient or worse conditioned than MAX_COND."""
    w = w_hr.detach().to(torch.float64)
    s = torch.linalg.svdvals(w)  # (P,), descending
    cond = float(s[0] / s[-1]) if s[-1] > 0 else float("inf")
    if not cond <= MAX_COND:
        raise ValueError(
            f"{name}: expected a projection of full rank {w.shape[0]} with condition "
            f"number <= {MAX_COND:g} (lifting the projected h0 would lose precision), "
            f"got condition number {cond:.3g}"
        )
    return w


class NativeProjLSTM(nn.Module):
    """Computes ``nn.LSTM(proj_size=P)`` with a plain ``nn.LSTM`` of hidden size H (module doc).

    Same call signature and results as the layer it replaces (``forward(input, hx)`` ->
    ``(output, (h_n, c_n))``, batch-first or not, batched or not), in eval mode.
    """

    lift: Tensor
    proj: Tensor
    out_proj: Tensor

    def __init__(self, src: nn.LSTM | LSTMLayers, name: str = "lstm") -> None:
        super().__init__()
        layers, dirs, hidden = src.num_layers, 2 if src.bidirectional else 1, src.hidden_size
        self.batch_first = bool(src.batch_first)
        self.lstm = nn.LSTM(
            src.input_size,
            hidden,
            num_layers=layers,
            bias=src.bias,
            batch_first=src.batch_first,
            bidirectional=src.bidirectional,
        )
        ref = src.get_parameter("weight_ih_l0")
        lift, proj, prev = [], [], None  # prev: last layer's block-diagonal W_hr (D*P, D*H)
        with torch.no_grad():
            for i in range(layers):
                w_hrs = []
                for sfx in ("", "_reverse")[:dirs]:
                    w_hr = _checked_projection(getattr(src, f"weight_hr_l{i}{sfx}"), f"{name}.weight_hr_l{i}{sfx}")
                    w_ih = getattr(src, f"weight_ih_l{i}{sfx}").to(torch.float64)  # (4H, I or D*P)
                    w_hh = getattr(src, f"weight_hh_l{i}{sfx}").to(torch.float64)  # (4H, P)
                    getattr(self.lstm, f"weight_ih_l{i}{sfx}").copy_(w_ih if prev is None else w_ih @ prev)
                    getattr(self.lstm, f"weight_hh_l{i}{sfx}").copy_(w_hh @ w_hr)  # (4H, H)
                    for b in ("bias_ih", "bias_hh"):
                        if src.bias:
                            getattr(self.lstm, f"{b}_l{i}{sfx}").copy_(getattr(src, f"{b}_l{i}{sfx}"))
                    lift.append(torch.linalg.pinv(w_hr).T)  # (P, H): h0 @ lift = h_full0
                    proj.append(w_hr.T)  # (H, P)
                    w_hrs.append(w_hr)
                prev = torch.block_diag(*w_hrs)  # (D*P, D*H)
        if prev is None:
            raise ValueError(f"{name}.num_layers: expected >= 1, got {layers}")
        self.lstm.to(device=ref.device, dtype=ref.dtype).eval()
        self.register_buffer("lift", torch.stack(lift).to(ref))  # (L*D, P, H)
        self.register_buffer("proj", torch.stack(proj).to(ref))  # (L*D, H, P)
        self.register_buffer("out_proj", prev.T.contiguous().to(ref))  # (D*H, D*P)
        self.state_size, self.hidden_size, self.rows = src.proj_size, hidden, layers * dirs

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """input (B, T, I) / (T, B, I) / (T, I); hx (h0 (L*D, B, P), c0 (L*D, B, H)), unbatched without B."""
        batched = input.dim() == 3
        if hx is None:
            batch = [input.size(0 if self.batch_first else 1)] if batched else []
            h0 = input.new_zeros([self.rows, *batch, self.state_size])
            c0 = input.new_zeros([self.rows, *batch, self.hidden_size])
        else:
            h0, c0 = hx
        if not batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            input = input.unsqueeze(1 if not self.batch_first else 0)
        h_full0 = torch.matmul(h0, self.lift)  # (L*D, B, H)
        out, (h_full, c_n) = self.lstm(input, (h_full0, c0))  # out (.., D*H), h_full (L*D, B, H)
        y = torch.matmul(out, self.out_proj)  # (.., D*P)
        h_n = torch.matmul(h_full, self.proj)  # (L*D, B, P)
        if not batched:
            y = y.squeeze(1 if not self.batch_first else 0)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return y, (h_n, c_n)


def fold_projections(model: nn.Module) -> int:
    """Replace every projected LSTM in ``model`` (in place) by a :class:`NativeProjLSTM`.

    Returns:
        How many layers were replaced.

    Raises:
        ValueError: a projection is rank-deficient or badly conditioned (names the parameter).
    """
    found = _projected_lstms(model)
    for parent, name, layer, path in found:
        setattr(parent, name, NativeProjLSTM(layer, path))
    return len(found)


class ProjNativeStrategy:
    """LSTMs with ``proj_size`` rewritten as plain LSTMs (:class:`NativeProjLSTM`), then traced.

    The graph has the native ``LSTM`` op (one per layer) and no Scan; tried right after
    ``trace``, which torch cannot do for projected LSTMs.
    """

    name = "proj-native"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        refuse_relu_rnn(ctx.model)
        if not fold_projections(ctx.model):
            raise ValueError("no nn.LSTM/LSTMLayers with proj_size to fold into a plain LSTM")
        return export_traced(Flat(ctx.model), (ctx.example, *ctx.state), ctx.spec, ctx.opset)
