"""The state contract: JSON round trip and validation of malformed contracts."""

import dataclasses
import json

import pytest

from rnnx.errors import SpecError
from rnnx.spec import (
    MAX_SPEC_BYTES,
    MAX_SPEC_DEPTH,
    DataSpec,
    IOSpec,
    ModelSpec,
    Seq2SeqSpec,
    StateSpec,
    StepGraph,
    TensorSpec,
)


def lstm_spec(**overrides) -> ModelSpec:
    fields = dict(
        input=IOSpec("x", ("batch", "time", 16), batch_axis=0, time_axis=1),
        output=IOSpec("y", ("batch", "time", 1), batch_axis=0, time_axis=1),
        state=(
            StateSpec("h", (2, "batch", 64), input="h_in", output="h_out"),
            StateSpec("c", (2, "batch", 64), input="c_in", output="c_out"),
        ),
        streamable=True,
        kind="lstm",
        config={"hidden_size": 64},
        opset=17,
        exporter="trace",
    )
    fields.update(overrides)
    return ModelSpec(**fields)


def test_round_trip_keeps_every_field():
    spec = lstm_spec()
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_json_has_the_documented_layout():
    d = json.loads(lstm_spec().to_json())
    assert d["format"] == 1
    assert d["input"] == {
        "name": "x",
        "batch_axis": 0,
        "time_axis": 1,
        "shape": ["batch", "time", 16],
        "dtype": "float32",
    }
    assert d["state"][0] == {
        "name": "h",
        "input": "h_in",
        "output": "h_out",
        "shape": [2, "batch", 64],
        "dtype": "float32",
        "init": "zeros",
    }
    assert d["streamable"] is True


def test_shapes_at_a_concrete_batch():
    spec = lstm_spec()
    assert spec.state[0].concrete_shape(5) == (2, 5, 64)
    assert spec.state[0].batch_axis == 1
    assert spec.input.concrete_shape(3) == (3, 16)  # one step: the time axis dropped
    assert spec.input.concrete_shape(3, steps=5) == (3, 5, 16)
    assert spec.input.feature_shape == (16,) and spec.state[0].feature_shape == (2, 64)
    assert TensorSpec("memory", ("batch", "time", 8)).concrete_shape(2, steps=4) == (2, 4, 8)


def test_role_fields_are_keyword_only():
    """The positional order of before the shared base (name, batch_axis, time_axis, shape) fails loudly."""
    with pytest.raises(TypeError, match="positional arguments but 5 were given"):
        IOSpec("x", 0, 1, ("batch", "time", 16))  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional arguments but 5 were given"):
        StateSpec("h", "h_in", "h_out", (2, "batch", 64))  # type: ignore[misc]
    state = StateSpec("h", (2, "batch", 64), input="h_in", output="h_out")
    assert isinstance(state, TensorSpec) and state.to_dict()["init"] == "zeros"


def _broken(path: list, value) -> str:
    d = json.loads(lstm_spec().to_json())
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(d)


@pytest.mark.parametrize(
    "path, value, match",
    [
        (["format"], 2, r"format: expected 1, got 2"),
        (["state"], "h", r"state: expected a list"),
        (["state", 0, "shape"], [2, 3, 64], r"exactly one 'batch' axis"),
        (["state", 0, "shape"], [2, "batch", "hidden"], r"expected ints and one 'batch'"),
        (["state", 0, "init"], "random", r"init: expected 'zeros', got 'random'"),
        (["state", 0, "dtype"], "complex64", r"dtype: expected one of .*got 'complex64'"),
        (["state", 1, "name"], "h", r"state names must be unique"),
        (["input", "batch_axis"], 2, r"input.batch_axis: expected the index of 'batch'"),
        (["input", "time_axis"], 0, r"input.time_axis: expected the index of 'time'"),
        (["input", "name"], KeyError, r"input: missing key 'name'"),
        (["streamable"], "yes", r"streamable: expected true or false"),
        (["output", "shape"], ["batch", "time", -1], r"non-negative"),
    ],
    ids=[
        "format",
        "state-not-list",
        "no-batch",
        "named-dim",
        "init",
        "dtype",
        "dup-names",
        "batch-axis",
        "time-axis",
        "missing-name",
        "streamable",
        "negative",
    ],
)
def test_malformed_contracts_are_rejected_with_the_field_named(path, value, match):
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_json(_broken(path, value))


def test_unparsable_text():
    with pytest.raises(SpecError, match="expected JSON"):
        ModelSpec.from_json("{not json")


def test_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        ModelSpec.from_json("[]")


def test_token_input_vocab_size_round_trips_and_old_json_loads():
    tokens = lstm_spec(input=IOSpec("x", ("batch", "time"), "int64", batch_axis=0, time_axis=1, vocab_size=20))
    d = json.loads(tokens.to_json())
    assert d["input"]["vocab_size"] == 20
    assert ModelSpec.from_json(tokens.to_json()) == tokens
    del d["input"]["vocab_size"]  # a file written before the field existed
    assert ModelSpec.from_dict(d).input.vocab_size is None


@pytest.mark.parametrize(
    "dtype, vocab",
    [("int64", 0), ("int64", "20"), ("int64", True), ("float32", 20)],
    ids=["zero", "string", "bool", "float-input"],
)
def test_bad_vocab_size_is_rejected(dtype, vocab):
    d = json.loads(lstm_spec().to_json())
    d["input"].update(shape=["batch", "time"], dtype=dtype, vocab_size=vocab)
    with pytest.raises(SpecError, match=r"input.vocab_size: expected a positive int"):
        ModelSpec.from_dict(d)


def test_data_contract_round_trips_and_is_optional():
    data = DataSpec(
        task="csv",
        features=("temp", "load"),
        target="load",
        horizon=2,
        outputs=("load+1", "load+2"),
        missing="ffill",
        window=8,
        normalization={"inside_graph": True, "input_mean": [0.0, 1.0]},
    )
    spec = lstm_spec(data=data)
    d = json.loads(spec.to_json())
    assert d["data"]["features"] == ["temp", "load"] and d["data"]["horizon"] == 2
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert "data" not in lstm_spec().to_dict() and ModelSpec.from_dict(lstm_spec().to_dict()).data is None


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("features", "temp", r"data\.features: expected a list of column names, got 'temp'"),
        ("horizon", 0, r"data\.horizon: expected a positive int, got 0"),
        ("vocab", 5, r"data\.vocab: expected a string, got 5"),
    ],
)
def test_malformed_data_contract_names_the_field(field, value, match):
    d = lstm_spec().to_dict()
    d["data"] = {"task": "csv", field: value}
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_dict(d)


def test_step_graph_round_trips_and_is_optional():
    spec = lstm_spec(step_graph=StepGraph("m.step.onnx", "ab" * 32))
    d = json.loads(spec.to_json())
    assert d["step_graph"] == {"file": "m.step.onnx", "sha256": "ab" * 32}
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert "step_graph" not in lstm_spec().to_dict() and ModelSpec.from_dict(lstm_spec().to_dict()).step_graph is None


@pytest.mark.parametrize(
    "value,match",
    [
        ({"file": "../m.step.onnx", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name .* got '\.\./m"),
        ({"file": "sub/m.step.onnx", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name"),
        ({"file": "m.step.bin", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name ending in \.onnx"),
        ({"file": "m.step.onnx", "sha256": "AB" * 32}, r"step_graph\.sha256: expected 64 lowercase hex digits"),
        ({"file": "m.step.onnx"}, r"step_graph.*sha256"),
        ("m.step.onnx", r"step_graph: expected an object, got str"),
    ],
)
def test_malformed_step_graph_names_the_field(value, match):
    d = lstm_spec().to_dict()
    d["step_graph"] = value
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_dict(d)


# --- every malformed contract is a SpecError naming the field (issue 16) ----------------------


def full_spec() -> ModelSpec:
    """A contract with every optional part filled (a seq2seq decoder with data and a step graph)."""
    bundle = Seq2SeqSpec(
        encoder="encoder.onnx",
        decoder="decoder.onnx",
        input=IOSpec("x", ("batch", "time", 4), batch_axis=0, time_axis=1),
        output=IOSpec("y", ("batch", 3), batch_axis=0, time_axis=None),
        feedback="prev",
        state=(StateSpec("h", (1, "batch", 8), input="h_in", output="h_out"),),
        context=(TensorSpec("memory", ("batch", "time", 8)),),
        encoder_outputs=(
            TensorSpec("h0", (1, "batch", 8)),
            TensorSpec("prev0", ("batch", 3)),
            TensorSpec("memory", ("batch", "time", 8)),
        ),
        init={"prev": "prev0", "h_in": "h0", "memory": "memory"},
        horizon=2,
        window=8,
    )
    return lstm_spec(
        role="decoder",
        seq2seq=bundle,
        step_graph=StepGraph("m.step.onnx", "ab" * 32),
        data=DataSpec(
            task="csv",
            features=("a", "b"),
            target="b",
            horizon=2,
            outputs=("b+1", "b+2"),
            normalization={"inside_graph": True},
            vocab="abc",
            window=8,
        ),
        extra={"source": "x"},
    )


# A contract exactly as rnnx wrote it before the tensor classes shared a base (format 1,
# every optional part present): it must read to the same spec and write back byte for byte,
# so files of either version read the same under the other.
STORED_FORMAT_1 = (
    '{"format": 1, "input": {"name": "x", "batch_axis": 0, "time_axis": 1, "shape": ["batch", "time"], '
    '"dtype": "int64", "vocab_size": 20}, "output": {"name": "y", "batch_axis": 0, "time_axis": 1, '
    '"shape": ["batch", "time", 1], "dtype": "float32"}, "state": [{"name": "h", "input": "h_in", '
    '"output": "h_out", "shape": [2, "batch", 64], "dtype": "float32", "init": "zeros"}, {"name": "c", '
    '"input": "c_in", "output": "c_out", "shape": [2, "batch", 64], "dtype": "float32", "init": "zeros"}], '
    '"streamable": true, "rnnx_version": "", "kind": "lstm", "config": {"hidden_size": 64}, "opset": 17, '
    '"exporter": "trace", "extra": {"source": "x"}, "precision": "fp32", "role": "decoder", "seq2seq": '
    '{"encoder": "encoder.onnx", "decoder": "decoder.onnx", "input": {"name": "x", "batch_axis": 0, '
    '"time_axis": 1, "shape": ["batch", "time", 4], "dtype": "float32"}, "output": {"name": "y", '
    '"batch_axis": 0, "time_axis": null, "shape": ["batch", 3], "dtype": "float32"}, "feedback": "prev", '
    '"state": [{"name": "h", "input": "h_in", "output": "h_out", "shape": [1, "batch", 8], "dtype": '
    '"float32", "init": "zeros"}], "context": [{"name": "memory", "shape": ["batch", "time", 8], "dtype": '
    '"float32"}], "encoder_outputs": [{"name": "h0", "shape": [1, "batch", 8], "dtype": "float32"}, '
    '{"name": "prev0", "shape": ["batch", 3], "dtype": "float32"}, {"name": "memory", "shape": ["batch", '
    '"time", 8], "dtype": "float32"}], "init": {"prev": "prev0", "h_in": "h0", "memory": "memory"}, '
    '"horizon": 2, "window": 8}, "data": {"task": "csv", "features": ["a", "b"], "outputs": ["b+1", "b+2"], '
    '"target": "b", "horizon": 2, "normalization": {"inside_graph": true}, "vocab": "abc", "window": 8}, '
    '"step_graph": {"file": "m.step.onnx", "sha256": "' + "ab" * 32 + '"}}'
)


def test_stored_contract_reads_the_same_and_writes_back_byte_for_byte():
    tokens = IOSpec("x", ("batch", "time"), "int64", batch_axis=0, time_axis=1, vocab_size=20)
    spec = ModelSpec.from_json(STORED_FORMAT_1)
    assert spec == dataclasses.replace(full_spec(), input=tokens)
    assert spec.to_json() == STORED_FORMAT_1


def _paths(node, prefix=()):
    """Every path to a value in a JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


WRONG_VALUES = [[1, 2], "x", {"a": 1}, None, 1.5, True, -1, 10**30, [[[[]]]], "", "../x", "\0"]


def test_every_field_set_to_every_wrong_type_is_a_spec_error_or_accepted():
    """12 wrong values in every field of a full contract: never TypeError/ValueError/KeyError
    escaping as a bug (``config: [1,2]`` was a TypeError, ``extra: "x"`` a ValueError)."""
    base = full_spec().to_dict()
    tried = refused = 0
    for path in list(_paths(base))[1:]:
        for wrong in WRONG_VALUES:
            d = json.loads(json.dumps(base))
            target = d
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = wrong
            tried += 1
            try:
                ModelSpec.from_json(json.dumps(d))
            except SpecError as e:
                refused += 1
                assert str(e).startswith("rnnx.spec"), (path, wrong, e)
    assert tried > 1000 and refused > tried // 2, (tried, refused)


@pytest.mark.parametrize(
    "path, value, match",
    [
        (["config"], [1, 2], r"rnnx\.spec\.config: expected an object, got list"),
        (["extra"], "x", r"rnnx\.spec\.extra: expected an object, got str"),
        (["opset"], "17", r"rnnx\.spec\.opset: expected an int"),
        (["kind"], ["lstm"], r"rnnx\.spec\.kind: expected a string"),
        (["input", "batch_axis"], [0], r"rnnx\.spec\.input\.batch_axis: expected an int"),
        (["input", "name"], {"a": 1}, r"rnnx\.spec\.input\.name: expected a string"),
        (["state", 0, "input"], 5, r"rnnx\.spec\.state\[0\]\.input: expected a string"),
        (["seq2seq", "encoder"], "../elsewhere/enc.onnx", r"rnnx\.spec\.seq2seq\.encoder: expected a plain"),
        (["seq2seq", "decoder"], "/abs/dec.onnx", r"rnnx\.spec\.seq2seq\.decoder: expected a plain"),
        (["seq2seq", "init"], {"prev": 3}, r"rnnx\.spec\.seq2seq\.init"),
    ],
    ids=[
        "config-list",
        "extra-str",
        "opset-str",
        "kind-list",
        "batch-axis-list",
        "name-object",
        "state-input-int",
        "encoder-climbs",
        "decoder-absolute",
        "init-int",
    ],
)
def test_a_wrong_type_names_the_field(path, value, match):
    d = full_spec().to_dict()
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_json(json.dumps(d))


@pytest.mark.parametrize("depth", [MAX_SPEC_DEPTH + 1, 100_000], ids=["just-too-deep", "deep"])
def test_deeply_nested_json_is_a_spec_error(depth):
    """100 000 nested lists were a RecursionError."""
    d = lstm_spec().to_dict()
    d["extra"] = {"x": json.loads("[" * min(depth, 500) + "]" * min(depth, 500))} if depth < 1000 else {}
    text = json.dumps(d) if depth < 1000 else json.dumps(d)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(SpecError, match=rf"rnnx\.spec: expected JSON nested at most {MAX_SPEC_DEPTH} deep"):
        ModelSpec.from_json(text)


def test_a_contract_over_the_size_limit_is_refused_before_parsing():
    text = lstm_spec(extra={"pad": "x" * MAX_SPEC_BYTES}).to_json()
    with pytest.raises(SpecError, match=rf"rnnx\.spec: expected at most {MAX_SPEC_BYTES} bytes, got {len(text)}"):
        ModelSpec.from_json(text)


def test_a_step_graph_file_name_follows_the_name_rule():
    d = lstm_spec().to_dict()
    d["step_graph"] = {"file": "m\n.onnx", "sha256": "ab" * 32}
    with pytest.raises(SpecError, match=r"step_graph\.file: expected a file name"):
        ModelSpec.from_dict(d)
