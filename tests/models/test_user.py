"""user: Python references (file.py:factory, package.module:factory) and their weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from rnnx.errors import CheckpointError, ConfigError
from rnnx.models.user import is_reference, load_model, load_reference, load_weights, parse_shape

MODULE = """
import torch
from torch import nn
import rnnx

def make():
    return rnnx.wrap(nn.LSTM(3, 4, batch_first=True))

class Factories:
    @staticmethod
    def gru():
        return rnnx.wrap(nn.GRUCell(3, 4))
"""


@pytest.fixture()
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "nets.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)  # package.module references are found from the current folder
    return tmp_path


@pytest.mark.parametrize(
    "text,expected",
    [
        ("models/net.py:make", True),
        ("pkg.mod:make", True),
        ("pkg.mod:Cls.make", True),
        ("runs/sine", False),
        ("model.safetensors", False),
        ("pkg.mod", False),
        ("a b.py:make x", False),
    ],
)
def test_is_reference(text: str, expected: bool) -> None:
    assert is_reference(text) is expected


def test_package_module_reference_and_dotted_factory(package: Path) -> None:
    model = load_reference("userpkg.nets:make")
    assert isinstance(model.module, nn.LSTM) and not model.training
    assert isinstance(load_reference("userpkg.nets:Factories.gru").module, nn.GRUCell)


@pytest.mark.parametrize("layout", ["plain", "nested"], ids=["state_dict", "model_state_dict"])
def test_weights_of_the_wrapped_module_load_from_torch_save(package: Path, layout: str) -> None:
    source = nn.LSTM(3, 4, batch_first=True)
    data = source.state_dict() if layout == "plain" else {"epoch": 3, "model_state_dict": source.state_dict()}
    torch.save(data, package / "w.pt")
    model = load_reference("userpkg.nets:make", weights=package / "w.pt")
    assert torch.equal(model.module.weight_hh_l0, source.weight_hh_l0)


def test_safetensors_weights_of_the_wrapper_itself(package: Path) -> None:
    from safetensors.torch import save_file

    model = load_reference("userpkg.nets:make")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, package / "w.safetensors")
    again = load_model("userpkg.nets:make", weights=str(package / "w.safetensors"), example_shape="2,5,3")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert again.example_shape == (2, 5, 3)


def test_weights_that_do_not_fit_name_the_keys(package: Path) -> None:
    torch.save(nn.GRU(3, 4).state_dict(), package / "gru.pt")
    with pytest.raises(
        CheckpointError,
        match=r"gru.pt: weights do not fit the model .*missing \[.*"
        r"unexpected \[.*wrong shape \['weight_ih_l0'",
    ):
        load_reference("userpkg.nets:make", weights=package / "gru.pt")
    with pytest.raises(CheckpointError, match=r"no such weights file"):
        load_weights(nn.GRU(3, 4), package / "none.pt")


def test_torch_load_never_runs_code(package: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"weight": Evil()}, package / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt: not a state_dict torch.load\(weights_only=True\) can read"):
        load_weights(nn.Linear(2, 2), package / "evil.pt")


@pytest.mark.parametrize("text", ["2", "2,0,3", "a,b", ""])
def test_parse_shape_refuses_bad_shapes(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--example-shape: expected positive integers B,T,F"):
        parse_shape(text)


def test_factory_must_return_a_module(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def make():\n    return 3\n")
    with pytest.raises(ConfigError, match=r"bad.py:make: expected the factory to return a torch nn.Module, got int"):
        load_reference(f"{tmp_path / 'bad.py'}:make")
