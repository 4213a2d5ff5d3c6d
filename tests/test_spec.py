"""The state contract: JSON round trip and validation of malformed contracts."""

import json

import pytest

from rnnx.errors import SpecError
from rnnx.spec import DataSpec, IOSpec, ModelSpec, StateSpec, StepGraph


def lstm_spec(**overrides) -> ModelSpec:
    fields = dict(
        input=IOSpec("x", 0, 1, ("batch", "time", 16)),
        output=IOSpec("y", 0, 1, ("batch", "time", 1)),
        state=(StateSpec("h", "h_in", "h_out", (2, "batch", 64)),
               StateSpec("c", "c_in", "c_out", (2, "batch", 64))),
        streamable=True, kind="lstm", config={"hidden_size": 64}, opset=17, exporter="trace",
    )
    fields.update(overrides)
    return ModelSpec(**fields)


def test_round_trip_keeps_every_field():
    spec = lstm_spec()
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_json_has_the_documented_layout():
    d = json.loads(lstm_spec().to_json())
    assert d["format"] == 1
    assert d["input"] == {"name": "x", "batch_axis": 0, "time_axis": 1,
                          "shape": ["batch", "time", 16], "dtype": "float32"}
    assert d["state"][0] == {"name": "h", "input": "h_in", "output": "h_out",
                             "shape": [2, "batch", 64], "dtype": "float32", "init": "zeros"}
    assert d["streamable"] is True


def test_shapes_at_a_concrete_batch():
    spec = lstm_spec()
    assert spec.state[0].concrete_shape(5) == (2, 5, 64)
    assert spec.state[0].batch_axis == 1
    assert spec.input.step_shape(3) == (3, 16)
    assert spec.input.feature_shape == (16,)


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
    ids=["format", "state-not-list", "no-batch", "named-dim", "init", "dtype", "dup-names",
         "batch-axis", "time-axis", "missing-name", "streamable", "negative"],
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
    tokens = lstm_spec(input=IOSpec("x", 0, 1, ("batch", "time"), "int64", vocab_size=20))
    d = json.loads(tokens.to_json())
    assert d["input"]["vocab_size"] == 20
    assert ModelSpec.from_json(tokens.to_json()) == tokens
    del d["input"]["vocab_size"]  # a file written before the field existed
    assert ModelSpec.from_dict(d).input.vocab_size is None


@pytest.mark.parametrize("dtype, vocab", [("int64", 0), ("int64", "20"), ("int64", True), ("float32", 20)],
                         ids=["zero", "string", "bool", "float-input"])
def test_bad_vocab_size_is_rejected(dtype, vocab):
    d = json.loads(lstm_spec().to_json())
    d["input"].update(shape=["batch", "time"], dtype=dtype, vocab_size=vocab)
    with pytest.raises(SpecError, match=r"input.vocab_size: expected a positive int"):
        ModelSpec.from_dict(d)


def test_data_contract_round_trips_and_is_optional():
    data = DataSpec(task="csv", features=("temp", "load"), target="load", horizon=2,
                    outputs=("load+1", "load+2"), missing="ffill", window=8,
                    normalization={"inside_graph": True, "input_mean": [0.0, 1.0]})
    spec = lstm_spec(data=data)
    d = json.loads(spec.to_json())
    assert d["data"]["features"] == ["temp", "load"] and d["data"]["horizon"] == 2
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert "data" not in lstm_spec().to_dict() and ModelSpec.from_dict(lstm_spec().to_dict()).data is None


@pytest.mark.parametrize("field,value,match", [
    ("features", "temp", r"data\.features: expected a list of column names, got 'temp'"),
    ("horizon", 0, r"data\.horizon: expected a positive int, got 0"),
    ("vocab", 5, r"data\.vocab: expected a string, got 5"),
])
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


@pytest.mark.parametrize("value,match", [
    ({"file": "../m.step.onnx", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name .* got '\.\./m"),
    ({"file": "sub/m.step.onnx", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name"),
    ({"file": "m.step.bin", "sha256": "ab" * 32}, r"step_graph\.file: expected a file name ending in \.onnx"),
    ({"file": "m.step.onnx", "sha256": "AB" * 32}, r"step_graph\.sha256: expected 64 lowercase hex digits"),
    ({"file": "m.step.onnx"}, r"step_graph.*sha256"),
    ("m.step.onnx", r"step_graph: expected an object, got str"),
])
def test_malformed_step_graph_names_the_field(value, match):
    d = lstm_spec().to_dict()
    d["step_graph"] = value
    with pytest.raises(SpecError, match=match):
        ModelSpec.from_dict(d)
