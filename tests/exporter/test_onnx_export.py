"""export_onnx: strategy choice, graph structure, dynamic axes, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from rnnx.errors import ConfigError, ExportError
from rnnx.exporter import export_onnx, read_spec
from rnnx.onnx_tools.graph import unused_initializers
from tests.zoo import make_model

EXPECTED_STRATEGY = [
    ("lstm-1l", "trace"),
    ("gru-2l-bi", "trace"),
    ("rnn-2l-tanh", "trace"),
    ("custom-forecaster", "trace"),
    ("lstm-1l-proj", "proj-native"),
    ("lstm-2l-proj-nobias", "proj-native"),
    ("convlstm-2l-k3", "scan"),
    ("custom-peephole", "scan"),
    ("lstm-1l-proj-bi", "proj-native"),
    ("rnn-relu", "scan"),
    ("rnn-2l-relu-bi", "layer-scan"),
]
STRUCTURE = ["lstm-1l", "lstm-2l-proj", "lstm-1l-proj-bi", "convlstm-k3", "gru-bi", "custom-peephole"]


@pytest.mark.parametrize("name,strategy", EXPECTED_STRATEGY, ids=[n for n, _ in EXPECTED_STRATEGY])
def test_auto_picks_the_first_strategy_that_passes(exported, name: str, strategy: str) -> None:
    _, result = exported(name, "onnx")
    assert result.strategy == strategy
    assert result.spec.exporter == strategy == read_spec(result.path).exporter
    assert [a.strategy for a in result.attempts][-1] == strategy
    assert all(not a.ok and a.reason for a in result.attempts[:-1])


@pytest.mark.parametrize("name", STRUCTURE)
def test_graph_has_symbolic_batch_and_time_and_concrete_features(exported, name: str) -> None:
    _, result = exported(name, "onnx")
    graph = onnx.load(str(result.path)).graph
    spec = result.spec
    for v in [*graph.input, *graph.output]:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        if v.name in ("x", "y"):
            assert dims[:2] == ["batch", "time"], v.name
            assert all(isinstance(d, int) and d > 0 for d in dims[2:]), v.name
        else:
            state = next(s for s in spec.state if v.name in (s.input, s.output))
            assert dims == list(state.shape), v.name
    assert [i.name for i in graph.input] == ["x", *(s.input for s in spec.state)]
    assert [o.name for o in graph.output] == ["y", *(s.output for s in spec.state)]


@pytest.mark.parametrize("name", STRUCTURE)
def test_graph_passes_checker_and_has_no_unused_initializers(exported, name: str) -> None:
    _, result = exported(name, "onnx")
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    assert unused_initializers(model.graph) == []
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["rnnx.spec"])["extra"]["producers"]["torch"] == torch.__version__


@pytest.mark.parametrize("name", ["lstm-2l-proj", "lstm-1l-proj-bi"])
def test_lstm_with_projection_runs_at_other_sizes(exported, name: str) -> None:
    model, result = exported(name, "onnx")
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = model.example_input(6, 13)
    state = [torch.randn(s.shape) for s in model.init_state(6)]
    ref_y, ref_state = model(x, state)
    y, h, c = sess.run(None, {"x": x.numpy(), "h_in": state[0].numpy(), "c_in": state[1].numpy()})
    assert y.shape == (6, 13, 3) and h.shape == (model.config.num_layers * (2 if "-bi" in name else 1), 6, 4)
    np.testing.assert_allclose(y, ref_y.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(c, ref_state[1].detach().numpy(), atol=1e-5)


def test_bidirectional_models_are_marked_not_streamable(exported) -> None:
    _, result = exported("lstm-1l-proj-bi", "onnx")
    assert read_spec(result.path).streamable is False


def test_the_users_model_is_not_mutated(tmp_path) -> None:
    model = make_model("lstm-2l-proj").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.rnn, nn.LSTM)  # not replaced by decompose's layers


def test_unknown_strategy_lists_the_valid_ones(tmp_path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"strategy: expected one of auto, trace, proj-native, scan, scan-legacy, layer-scan, dynamo, got 'fast'",
    ):
        export_onnx(make_model("lstm-1l"), tmp_path / "m.onnx", strategy="fast")


def test_forced_trace_of_a_python_loop_fails_with_the_reason(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"could not export PeepholeForecaster to ONNX: trace: .+"):
        export_onnx(
            make_model("custom-peephole"), tmp_path / "m.onnx", strategy="trace", example_input=torch.randn(2, 5, 5)
        )
    assert not (tmp_path / "m.onnx").exists()


class _Stateless(nn.Module):
    """A module whose forward ignores the contract: no (y, state) result."""

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(1, batch_size, 2)]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        return x


def test_contract_breaking_module_is_rejected(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"_Stateless.forward: expected \(y, state\), got Tensor"):
        export_onnx(_Stateless(), tmp_path / "m.onnx", example_input=torch.randn(2, 5, 3))


def test_every_strategy_failing_lists_each_reason(tmp_path) -> None:
    class Future(nn.Module):  # looks ahead in time but claims to be streamable
        def init_state(self, batch_size: int) -> list[torch.Tensor]:
            return [torch.zeros(batch_size, 3)]

        def forward(self, x, state):
            y = torch.flip(torch.cumsum(torch.flip(x, [1]), 1), [1])  # (B, T, F) reverse cumsum
            return y, [state[0] + x.sum(1)]

    with pytest.raises(
        ExportError,
        match=r"trace: parity probe failed.*; proj-native: no nn.LSTM/LSTMLayers with proj_size.*; "
        r"scan: parity probe failed.*; "
        r"scan-legacy: parity probe failed.*; layer-scan: no nn.RNN/LSTM/GRU layers",
    ):
        export_onnx(Future(), tmp_path / "m.onnx", example_input=torch.randn(2, 5, 3))


def test_missing_example_input_says_to_pass_one(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"CustomForecaster has no example_input.*pass example_input="):
        export_onnx(make_model("custom-forecaster"), tmp_path / "m.onnx")


def test_dynamo_is_opt_in_only(exported) -> None:
    _, result = exported("gru-1l", "onnx")
    assert "dynamo" not in [a.strategy for a in result.attempts]
    try:
        _, forced = exported("gru-1l", "onnx", "dynamo")
    except ExportError as e:  # torch 2.13: torch.export fails on nn.GRU; the reason is given, readable
        assert "dynamo: " in str(e)
        assert "\x1b[" not in str(e)
    else:
        assert forced.strategy == "dynamo" and forced.attempts[0].ok  # TorchScript-free: native GRU ops


_CRASHING_CANDIDATE = '''
import sys, torch
from torch import nn
from rnnx.errors import ExportError
from rnnx.exporter import export_onnx


class StepLoop(nn.Module):
    """A decoder-style Python loop: nn.GRU called once per step on x[:, t:t+1].

    Traced at T=5 the loop is unrolled; run at T=1, four GRU nodes get an empty
    sequence and onnxruntime aborts the whole process (SIGABRT in 1.32).
    """

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def init_state(self, batch_size):
        return [torch.zeros(1, batch_size, 4)]

    def forward(self, x, state):
        h, outs = state[0], []
        for t in range(x.size(1)):
            y, h = self.gru(x[:, t:t + 1], h)
            outs.append(y)
        return torch.cat(outs, 1), [h]


torch.manual_seed(0)
try:  # the trace candidate only: a rejected candidate is a rejected candidate, whatever the next one
    export_onnx(StepLoop(), sys.argv[1], example_input=torch.randn(2, 5, 3), strategy="trace")
except ExportError as e:
    print(type(e).__name__)
    print(" ".join(str(e).split()))
'''


def test_a_candidate_that_crashes_onnxruntime_is_rejected_not_fatal(tmp_path) -> None:
    import os
    import subprocess
    import sys

    # run in a child: before the fix this export killed the process running it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHING_CANDIDATE, str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"export killed the process (rc {proc.returncode}): {proc.stderr[-500:]}"
    error, reason = proc.stdout.split("\n")[:2]
    assert error == "ExportError"  # the candidate was rejected with its reason; the process lives on
    assert reason.startswith("could not export StepLoop to ONNX: trace: ") and "onnxruntime crashed" in reason


class _BuggyWhenTraced(nn.Module):
    """Runs eagerly, but raises a long TypeError (a stand-in for a bug) under tracing."""

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, 3)]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if torch.jit.is_tracing():
            raise TypeError("injected bug: " + "a long explanation " * 30 + "END")
        return x, [state[0] + x.sum(1)]


def test_failed_export_is_chained_to_the_cause_and_keeps_every_full_reason(tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        export_onnx(_BuggyWhenTraced(), tmp_path / "m.onnx", strategy="trace", example_input=torch.randn(2, 5, 3))
    cause = info.value.__cause__
    assert isinstance(cause, TypeError) and str(cause).startswith("injected bug")
    assert len(str(cause)) > 300 and str(info.value).endswith("a long explanation END")  # no 300-char cut


def test_every_attempts_exception_is_kept_and_logged_with_its_traceback(tmp_path, caplog) -> None:
    with caplog.at_level("DEBUG", logger="rnnx"):
        result = export_onnx(make_model("lstm-2l-proj"), tmp_path / "m.onnx")
    rejected = [a for a in result.attempts if not a.ok]
    assert rejected and all(isinstance(a.error, Exception) for a in rejected)
    tracebacks = [r for r in caplog.records if r.levelname == "DEBUG" and r.exc_info]
    assert [r.exc_info[1] for r in tracebacks] == [a.error for a in rejected]
    assert any(r.levelname == "INFO" and "trying the trace path" in r.getMessage() for r in caplog.records)


def test_another_threads_output_survives_an_export(tmp_path, capfd, caplog) -> None:
    """Export must not point the process's stdout/stderr at /dev/null (it once did, with
    ``os.dup2``, losing 40 of 133 lines another thread printed meanwhile). lstm-2l-proj makes
    torch print its whole IR graph when the trace path fails: that goes to DEBUG instead."""
    import os
    import sys
    import threading

    done = threading.Event()
    written: list[str] = []

    def chatter() -> None:
        i = 0
        while not done.is_set() or i < 20:
            line = f"worker line {i}"
            print(line, flush=True)  # Python level
            os.write(2, f"{line} on fd 2\n".encode())  # C level, as a native library would
            written.append(line)
            i += 1
            done.wait(0.005)

    worker = threading.Thread(target=chatter)
    with caplog.at_level("DEBUG", logger="rnnx"):
        worker.start()
        try:
            export_onnx(make_model("lstm-2l-proj"), tmp_path / "m.onnx")
        finally:
            done.set()
            worker.join()
    sys.stdout.flush()
    out, err = capfd.readouterr()
    assert len(written) >= 20
    assert all(f"{line}\n" in out for line in written) and all(f"{line} on fd 2\n" in err for line in written)
    assert "Torch IR graph" not in out + err
    assert any("Torch IR graph at exception" in r.getMessage() for r in caplog.records)


def test_exported_files_are_readable_by_others_under_umask_022(tmp_path) -> None:
    """Everything rnnx wrote used to be 0600 whatever the umask; a Triton server running as
    another user got "Permission denied"."""
    import os
    import stat

    from tests.zoo import TINY

    old = os.umask(0o022)
    try:
        result = export_onnx(TINY["convlstm-k3"](), tmp_path / "m.onnx")
    finally:
        os.umask(old)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["m.onnx", "m.step.onnx"] and result.step_graph_path is not None
    assert {n: oct(stat.S_IMODE(os.stat(tmp_path / n).st_mode)) for n in written} == {n: "0o644" for n in written}


def test_a_reexport_never_changes_the_step_graph_the_old_model_reads(tmp_path) -> None:
    """The new step graph used to land first over the old one's name: a kill before the model
    file left the old model unopenable (its step graph's SHA-256 no longer matched)."""
    import hashlib

    from rnnx.runtime import StreamingSession
    from tests.zoo import TINY

    first = export_onnx(TINY["convlstm-k3"](), tmp_path / "m.onnx")
    old_model, old_step = first.path.read_bytes(), first.step_graph_path.read_bytes()
    other = TINY["convlstm-k3"]()
    torch.nn.init.normal_(next(other.parameters()))  # other weights: another step graph
    second = export_onnx(other, tmp_path / "m.onnx")
    new_step = second.step_graph_path.read_bytes()
    assert new_step != old_step
    # where it went: beside the old one (which the old model file named), never over it
    assert second.step_graph_path.name == f"m.step.{hashlib.sha256(new_step).hexdigest()[:12]}.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", second.step_graph_path.name])
    assert read_spec(second.path).step_graph.file == second.step_graph_path.name
    with StreamingSession(second.path) as sess:
        assert sess.step_graph == second.step_graph_path
    third = export_onnx(TINY["convlstm-k3"](), tmp_path / "m.onnx")  # back to the first weights
    assert third.step_graph_path.name == "m.step.onnx" and third.path.read_bytes() == old_model


def test_the_export_writes_no_step_graph_that_fails_its_one_step_check(tmp_path, monkeypatch, caplog) -> None:
    """Mutation caught: the export without its T=1 check wrote whatever the inliner produced.
    The inliner is made to return a graph whose output is off by 1e-3 (a real, wrong graph)."""
    import logging

    from onnx import helper, numpy_helper

    import rnnx.exporter.onnx_export as onnx_export
    from tests.zoo import TINY, example_input

    real = onnx_export.inline_scans

    def off_by_a_thousandth(main):
        step = real(main)
        graph = step.graph
        for node in graph.node:
            node.output[:] = ["y/right" if o == "y" else o for o in node.output]
        graph.initializer.append(numpy_helper.from_array(np.array(1e-3, np.float32), "y/off"))
        graph.node.append(helper.make_node("Add", ["y/right", "y/off"], ["y"], name="y/off"))
        return step

    monkeypatch.setattr(onnx_export, "inline_scans", off_by_a_thousandth)
    model = TINY["lstm-1l"]()
    with caplog.at_level(logging.WARNING, logger="rnnx"):
        result = export_onnx(model, tmp_path / "m.onnx", example_input=example_input(model, 2, 5), strategy="scan")
    assert result.step_graph_path is None and read_spec(result.path).step_graph is None
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert "step graph" in caplog.text and "y" in caplog.text
