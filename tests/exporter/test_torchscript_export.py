"""export_torchscript: scripted file loads without rnnx, keeps forward and init_state."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from rnnx.errors import ExportError
from rnnx.exporter import export_torchscript, read_spec


def test_loads_and_runs_where_rnnx_is_not_importable(exported, tmp_path) -> None:
    model, result = exported("lstm-2l-proj", "torchscript")
    x = model.example_input(3, 6)
    torch.save(x, tmp_path / "x.pt")
    y_ref, _ = model(x, model.init_state(3))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["rnnx"] = None  # any import of rnnx now fails
        import torch
        files = {{"rnnx.spec": ""}}
        m = torch.jit.load({str(result.path)!r}, _extra_files=files)
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        y, state = m(x, m.init_state(3))
        torch.save(y, {str(tmp_path / "y.pt")!r})
        print(len(files["rnnx.spec"]) > 0, [tuple(s.shape) for s in state])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True [(2, 3, 4), (2, 3, 8)]"
    y = torch.load(tmp_path / "y.pt", weights_only=True)
    torch.testing.assert_close(y, y_ref.detach(), atol=1e-6, rtol=0)


def test_strategy_is_script_for_scriptable_models(exported) -> None:
    _, result = exported("convlstm-k3", "torchscript")
    assert result.strategy == "script" and read_spec(result.path).exporter == "script"
    assert read_spec(result.path).opset is None


class _Unscriptable(nn.Module):
    """Scripting fails on the untyped **kwargs helper; tracing works (no time-dependent code)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, 2)]

    def _mix(self, *args, **kwargs):
        return args[0] + args[1]

    def forward(self, x, state):
        y = torch.tanh(self.proj(x))  # (B, T, 2)
        return y, [self._mix(state[0], y.sum(1))]


def test_falls_back_to_trace_when_scripting_fails(tmp_path) -> None:
    result = export_torchscript(_Unscriptable(), tmp_path / "m.pt", example_input=torch.randn(2, 5, 3))
    assert result.strategy == "trace"
    assert [a.strategy for a in result.attempts] == ["script", "trace"] and not result.attempts[0].ok


class _UnrolledLoop(_Unscriptable):
    def forward(self, x, state):
        h = state[0]
        for t in range(x.shape[1]):
            h = self._mix(h, torch.tanh(self.proj(x[:, t])))
        return h.unsqueeze(1).expand(-1, x.shape[1], -1), [h]


def test_trace_fallback_that_breaks_parity_is_refused(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"trace fallback parity failed: "):
        export_torchscript(_UnrolledLoop(), tmp_path / "m.pt", example_input=torch.randn(2, 5, 3))
    assert not (tmp_path / "m.pt").exists()
