import json

import pytest
import torch
from safetensors.torch import save_file

from rnnx.errors import CheckpointError
from rnnx.models import load, load_extra, save
from rnnx.models.checkpoint import META_KEY
from tests.zoo import TINY, USER_WRITTEN, example_input

ZOO = sorted(k for k in TINY if k not in USER_WRITTEN)


@pytest.mark.parametrize("name", ZOO, ids=ZOO)
def test_round_trip_every_zoo_model(tmp_path, name):
    model = TINY[name]()
    path = save(model, tmp_path / "m.safetensors", extra={"task": "sine", "mse": 0.01})
    back = load(path)
    assert back.config == model.config and not back.training
    x = example_input(model, 2, 3)
    torch.testing.assert_close(back(x, back.init_state(2))[0], model(x, model.init_state(2))[0])
    assert load_extra(path) == {"task": "sine", "mse": 0.01}


def test_directory_and_metadata(tmp_path):
    model = TINY["convlstm-k3"]()
    path = save(model, tmp_path)  # a directory -> model.safetensors inside
    assert path == tmp_path / "model.safetensors"
    assert load(tmp_path).kind == "convlstm"
    assert load_extra(tmp_path) == {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
    assert meta["format"] == 1 and meta["kind"] == "convlstm" and meta["config"]["image_size"] == [6, 6]
    assert "rnnx_version" in meta
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "m.safetensors"
    save(TINY["gru-1l"](), path)
    save(TINY["lstm-1l"](), path)
    assert load(path).kind == "lstm"


def _write_meta(path, meta, tensors=None):
    save_file(tensors or {"w": torch.zeros(1)}, str(path), metadata={META_KEY: meta} if meta is not None else None)


def test_error_paths(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.safetensors: no such checkpoint file"):
        load(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match=r"directory has no model\.safetensors"):
        load(tmp_path)
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors: not a readable safetensors file"):
        load(bad)
    foreign = tmp_path / "foreign.safetensors"
    _write_meta(foreign, None)
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: safetensors file without rnnx metadata"):
        load_extra(foreign)
    notjson = tmp_path / "notjson.safetensors"
    _write_meta(notjson, "{oops")
    with pytest.raises(CheckpointError, match=r"rnnx metadata is not valid JSON"):
        load(notjson)
    future = tmp_path / "future.safetensors"
    _write_meta(future, json.dumps({"format": 99}))
    with pytest.raises(CheckpointError, match=r"expected rnnx checkpoint format 1, got 99"):
        load(future)


def _rewrite(tmp_path, mutate_meta=None, mutate_tensors=None):
    path = save(TINY["lstm-1l"](), tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if mutate_meta:
        mutate_meta(meta)
    if mutate_tensors:
        mutate_tensors(tensors)
    _write_meta(path, json.dumps(meta), tensors)
    return path


def test_invalid_config_in_checkpoint(tmp_path):
    path = _rewrite(tmp_path, mutate_meta=lambda m: m["config"].update(proj_size=99))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: invalid config \(proj_size: expected 0 <= proj_size"):
        load(path)


def test_weights_not_matching_config(tmp_path):
    path = _rewrite(tmp_path, mutate_tensors=lambda t: t.pop("head.bias"))
    with pytest.raises(CheckpointError, match=r"weights do not match the config: missing \['head.bias'\]"):
        load(path)
    path = _rewrite(tmp_path, mutate_tensors=lambda t: t.update({"head.bias": torch.zeros(7)}))
    with pytest.raises(CheckpointError, match=r"weight head.bias: expected shape \(3,\), got \(7,\)"):
        load(path)


def test_save_rejects_non_zoo_models_and_bad_extra(tmp_path):
    with pytest.raises(CheckpointError, match=r"expected an rnnx zoo model with a ModelConfig \.config, got CustomForecaster"):
        save(TINY["custom-forecaster"](), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"extra must be JSON-serialisable"):
        save(TINY["gru-1l"](), tmp_path / "m.safetensors", extra={"x": object()})
    assert not list(tmp_path.iterdir())  # failed saves write nothing
