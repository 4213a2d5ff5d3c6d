"""The shared test registry itself: every entry honours the rnnx model contract."""

import pytest
import torch

from tests.zoo import NOT_STREAMABLE, TINY, USER_WRITTEN, example_input, parity_matrix


@pytest.mark.parametrize("name", sorted(TINY), ids=sorted(TINY))
def test_tiny_models_follow_the_contract_and_script(name):
    model = TINY[name]()
    assert not model.training
    scripted = torch.jit.script(model)
    x = example_input(model, 2, 3)
    y, state = model(x, model.init_state(2))
    y2, state2 = scripted(x, scripted.init_state(2))
    torch.testing.assert_close(y2, y)
    assert y.shape[:2] == (2, 3) and len(state2) == len(state)
    if name not in USER_WRITTEN:
        assert model.streamable == (name not in NOT_STREAMABLE)


def test_factories_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b = TINY["custom-peephole"](), TINY["custom-peephole"]()
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_parity_matrix_covers_every_kind_and_option():
    matrix = parity_matrix()
    ids = [i for i, _ in matrix]
    assert len(ids) == len(set(ids)) == 48
    kinds = {kw["kind"] for _, kw in matrix}
    assert kinds == {"rnn", "lstm", "gru", "convlstm"}
    assert any(kw.get("proj_size") for _, kw in matrix) and any(kw.get("nonlinearity") == "relu" for _, kw in matrix)
    assert {kw.get("kernel_size") for _, kw in matrix if kw["kind"] == "convlstm"} == {3, 5}
