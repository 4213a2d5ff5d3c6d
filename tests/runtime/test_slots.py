"""SlotStore: slot arrays that grow, reuse freed slots and double-buffer for whole-pool steps."""

import numpy as np

from rnnx.runtime.contract import Contract, DataIO
from rnnx.runtime.slots import SlotStore
from rnnx.spec import StateSpec

F32 = np.dtype(np.float32)


def contract() -> Contract:
    io = DataIO("x", (None, None, 3), 0, 1, F32)
    states = (
        StateSpec("h", (2, "batch", 4), input="h_in", output="h_out"),
        StateSpec("c", ("batch", 5), input="c_in", output="c_out"),
    )
    return Contract(io, io, states)


def fill(store: SlotStore, slot: int, value: float) -> None:
    store.set(slot, {"h": np.full((2, 1, 4), value, np.float32), "c": np.full((1, 5), value, np.float32)})


def test_growth_keeps_every_state_and_bumps_the_version():
    store = SlotStore(contract(), capacity=2)
    slots = [store.acquire() for _ in range(2)]
    for s in slots:
        fill(store, s, s + 1.0)
    version = store.version
    third = store.acquire()  # full: doubles to 4
    assert store.capacity == 4 and store.version == version + 1 and third == 2
    for s in slots:
        assert (store.get(s)["h"] == s + 1.0).all() and (store.get(s)["c"] == s + 1.0).all()
    assert not store.get(third)["h"].any()
    assert store.arrays[0].shape == (2, 4, 4) and store.arrays[1].shape == (4, 5)


def test_released_slot_comes_back_zeroed():
    store = SlotStore(contract(), capacity=2)
    a, _ = store.acquire(), store.acquire()
    fill(store, a, 7.0)
    store.release(a)
    assert store.acquire() == a
    assert not store.get(a)["c"].any()


def test_gather_and_scatter_follow_the_batch_axis_of_each_state():
    store = SlotStore(contract(), capacity=4)
    for s in range(4):
        store.acquire()
        fill(store, s, float(s))
    idx = np.array([3, 1])
    h, c = store.gather(idx)
    assert h.shape == (2, 2, 4) and c.shape == (2, 5)
    assert (h[:, 0] == 3).all() and (c[1] == 1).all()
    store.scatter(idx, [h + 10, c + 10])
    assert (store.get(3)["h"] == 13).all() and (store.get(1)["c"] == 11).all()
    assert (store.get(0)["h"] == 0).all() and (store.get(2)["c"] == 2).all()


def test_flip_makes_the_other_set_current():
    store = SlotStore(contract(), capacity=1)
    store.acquire()
    fill(store, 0, 1.0)
    store.sets[1 - store.cur][0][...] = 5.0  # what a whole-pool step writes into the other set
    store.flip()
    assert (store.get(0)["h"] == 5.0).all()
