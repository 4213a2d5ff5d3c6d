"""export_seq2seq: two graphs, one contract in both files, dynamic batch/window/memory,
parity of the generated sequence against eager, and the errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import onnx
import pytest
import torch
from torch import nn

from rnnx.errors import ExportError, SpecError
from rnnx.exporter import check_parity, check_seq2seq_parity, export_seq2seq, read_spec
from rnnx.spec import METADATA_KEY, ModelSpec
from tests.zoo import S2S_INPUT, SEQ2SEQ, TINY


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """zoo id -> (Seq2SeqExport, eager model), exported once (parity checked at export)."""
    root, cache = tmp_path_factory.mktemp("s2s-bundles"), {}

    def get(name):
        if name not in cache:
            model = SEQ2SEQ[name]()
            cache[name] = (export_seq2seq(model, root / name), model)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(SEQ2SEQ))
def test_bundle_matches_eager_at_other_windows_batches_and_steps(bundles, name):
    done, model = bundles(name)
    report = done.report
    assert report.ok, report.table()
    windows = {r.steps for r in report.rows if r.case.startswith("forecast")}
    assert windows >= {1, 3, 8, model.window + 3} and 5 not in windows  # never the example's length
    assert {r.batch for r in report.rows} == {1, 3}
    assert {r.case for r in report.rows} == {"forecast3", "forecast5", "stream"}  # beyond the horizon too


@pytest.mark.parametrize("name", list(SEQ2SEQ))
def test_both_files_carry_one_contract(bundles, name):
    done, model = bundles(name)
    enc, dec = read_spec(done.encoder), read_spec(done.decoder)
    assert (enc.role, dec.role) == ("encoder", "decoder")
    assert enc.seq2seq == done.spec  # the decoder's copy also ties the encoder by its SHA-256:
    sha = hashlib.sha256(done.encoder.read_bytes()).hexdigest()
    assert dec.seq2seq == dataclasses.replace(done.spec, encoder_sha256=sha)
    assert enc.step_graph is None and dec.step_graph is None  # no Scan to inline: no step graph
    assert not list(done.decoder.parent.glob("*.step.onnx"))
    assert ModelSpec.from_json(dec.to_json()) == dec  # JSON round trip
    s = done.spec
    assert (s.horizon, s.window, s.feedback) == (model.horizon, model.window, "y_prev")
    assert s.init["y_prev"] == "y_init" and all(s.init[st.input] == f"{st.name}_init" for st in s.state)
    enc_graph, dec_graph = onnx.load(str(done.encoder)), onnx.load(str(done.decoder))
    assert [i.name for i in enc_graph.graph.input] == ["x"]
    assert [o.name for o in enc_graph.graph.output] == [t.name for t in s.encoder_outputs]
    assert [i.name for i in dec_graph.graph.input] == [
        "y_prev",
        *(st.input for st in s.state),
        *(c.name for c in s.context),
    ]


def _dims(graph, name):
    v = next(v for v in [*graph.input, *graph.output] if v.name == name)
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


def test_attention_memory_is_a_decoder_input_with_dynamic_length(bundles):
    done, _ = bundles("s2s-lstm-2l-attn-norm-residual")
    dec = onnx.load(str(done.decoder)).graph
    assert _dims(dec, "memory") == ["batch", "time", 6]
    assert _dims(dec, "h_in") == [2, "batch", 6] and _dims(dec, "base") == ["batch", 1]
    assert _dims(onnx.load(str(done.encoder)).graph, "x") == ["batch", "time", S2S_INPUT]
    assert [c.name for c in done.spec.context] == ["memory", "base"]


def test_without_attention_the_decoder_takes_no_memory(bundles):
    done, _ = bundles("s2s-lstm")
    assert [i.name for i in onnx.load(str(done.decoder)).graph.input] == ["y_prev", "h_in", "c_in"]
    assert done.spec.context == ()


def test_check_parity_takes_the_bundle_folder_or_a_file(bundles):
    done, model = bundles("s2s-gru-attn")
    for path in (done.folder, done.decoder):
        report = check_parity(model, path, batch_sizes=(2,))
        assert report.ok and {r.batch for r in report.rows} == {2}


def test_parity_catches_a_different_model(bundles):
    done, _ = bundles("s2s-gru-attn")
    other = SEQ2SEQ["s2s-gru-attn"]()
    with torch.no_grad():
        other.decoder.head.bias.add_(0.01)
    report = check_seq2seq_parity(other, done.folder)
    assert not report.ok and all(not r.ok for r in report.rows)


def test_bundle_checked_against_a_plain_model_says_so(bundles):
    done, _ = bundles("s2s-lstm")
    with pytest.raises(
        SpecError, match=r"a seq2seq bundle; expected an rnnx.models.Seq2Seq model .* got RecurrentModel"
    ):
        check_parity(TINY["lstm-1l"](), done.folder)


def test_old_specs_without_bundle_fields_still_load(bundles):
    done, _ = bundles("s2s-lstm")
    d = read_spec(done.decoder).to_dict()
    for key in ("role", "seq2seq"):
        d.pop(key)
    assert ModelSpec.from_dict(d).seq2seq is None
    bad = {**read_spec(done.decoder).to_dict(), "role": "middle"}
    with pytest.raises(SpecError, match=r"role: expected one of encoder, decoder \(or no role\), got 'middle'"):
        ModelSpec.from_dict(bad)
    broken = json.loads(read_spec(done.decoder).to_json())
    broken["seq2seq"]["init"].pop("h_in")
    with pytest.raises(SpecError, match=r"init: decoder input 'h_in' needs an encoder output"):
        ModelSpec.from_dict(broken)
    assert METADATA_KEY == "rnnx.spec"


def test_non_seq2seq_model_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"expected an rnnx.models.Seq2Seq .* Seq2Seq.from_modules"):
        export_seq2seq(TINY["gru-1l"](), tmp_path)


class _NoHorizon(nn.Module):
    """encode/step/forecast but no horizon, window or input_size: half the Seq2Seq API."""

    def encode(self, x):
        return x, [x], x, x

    def step(self, y, state, memory, base):
        return y, state

    def forecast(self, x, steps):
        return x


def test_half_seq2seq_api_is_refused_with_the_whole_api_named(tmp_path):
    # was an AttributeError ('_NoHorizon' has no attribute 'input_size') from deep inside the export
    with pytest.raises(
        ExportError,
        match=r"_NoHorizon: expected an rnnx.models.Seq2Seq \(encode, step, forecast, "
        r"horizon, window\)",
    ):
        export_seq2seq(_NoHorizon(), tmp_path)
    assert not list(tmp_path.iterdir())


class _BadEncoder(nn.Module):
    def forward(self, x):
        return x.sum(-1), []  # (B, T): not (B, T, H), and no state


def test_encoder_breaking_the_contract_is_named(tmp_path):
    from rnnx.models import Seq2Seq
    from tests.zoo import UserDecoderStep

    model = Seq2Seq.from_modules(_BadEncoder(), UserDecoderStep(), input_size=S2S_INPUT, horizon=2, window=3)
    with pytest.raises(ExportError, match=r"encoder: expected outputs of shape \(batch, T, H\)"):
        export_seq2seq(model, tmp_path)


def test_inspect_describes_a_bundle_file_and_its_flow(bundles):
    from click.testing import CliRunner

    from rnnx.cli import main
    from rnnx.onnx_tools.describe import describe

    done, _ = bundles("s2s-gru-attn")
    info = describe(done.decoder)
    assert info["seq2seq"]["role"] == "decoder" and info["seq2seq"]["init"]["memory"] == "memory"
    res = CliRunner().invoke(main, ["inspect", str(done.encoder)])
    assert res.exit_code == 0, res.output
    assert "the encoder of a seq2seq bundle" in res.output and "memory <- memory" in res.output
