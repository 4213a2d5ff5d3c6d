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
    with pytest.raises(
        CheckpointError, match=r"expected an rnnx zoo model with a ModelConfig \.config, got CustomForecaster"
    ):
        save(TINY["custom-forecaster"](), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"extra must be JSON-serialisable"):
        save(TINY["gru-1l"](), tmp_path / "m.safetensors", extra={"x": object()})
    assert not list(tmp_path.iterdir())  # failed saves write nothing


def _rewrite_meta(src, dst, **config_changes):
    """Copy checkpoint ``src`` to ``dst`` with its config's fields changed (weights kept)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
    meta["config"].update(config_changes)
    save_file(load_file(str(src)), str(dst), metadata={META_KEY: json.dumps(meta)})
    return dst


def test_absurd_config_is_refused_before_the_model_is_built(tmp_path):
    """A config claiming 10,000 layers used to cost 41 s and 1.5 GiB before the weight check.

    The message comes from the check made before anything is built (not from comparing a
    built model's weights), which is what keeps the refusal cheap.
    """
    src = save(TINY["lstm-2l"](), tmp_path / "ok.safetensors")
    bad = _rewrite_meta(src, tmp_path / "bad.safetensors", num_layers=10_000)
    with pytest.raises(CheckpointError, match=r"num_layers=10000 needs at least 10000 tensors, the file has \d+"):
        load(bad)
    huge = _rewrite_meta(src, tmp_path / "huge.safetensors", hidden_size=10**6)  # meta device: no allocation
    with pytest.raises(CheckpointError, match=r"weight .*: expected shape \(\d+, 1000000\)"):
        load(huge)


def test_lying_header_is_refused_before_any_data_is_read(tmp_path):
    src = save(TINY["gru-1l"](), tmp_path / "ok.safetensors")
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**6, 10**6]  # 4 TB claimed, a few bytes stored
    text = json.dumps(header).encode()
    (tmp_path / "lying.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(
        CheckpointError, match=rf"weight {name}: shape \[1000000, 1000000\] does not match its \d+ bytes"
    ):
        load(tmp_path / "lying.safetensors")
    (tmp_path / "long.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="header length 4611686018427387904 for a file of 10 bytes"):
        load(tmp_path / "long.safetensors")
