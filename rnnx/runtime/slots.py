"""Preallocated per-stream state storage for StreamPool: batch axis = slot.

Each state has one array whose batch axis has ``capacity`` slots; opening a stream
takes a free slot (doubling the arrays when none is left) and closing returns it to
the free list. A batched step gathers the slots of the streams involved into
preallocated batch buffers with ``np.take(..., out=)`` and scatters the new states
back with fancy-index assignment.
"""

from __future__ import annotations

import numpy as np

from rnnx.runtime.contract import Contract


class SlotStore:
    """State slot arrays, the free list and cached gather buffers."""

    def __init__(self, contract: Contract, capacity: int = 8) -> None:
        self.contract = contract
        self.capacity = max(1, capacity)
        self.arrays = [np.zeros(s.concrete(self.capacity), s.dtype) for s in contract.states]
        self.ctx = np.zeros((self.capacity, contract.context), contract.input.dtype)
        self.free = list(range(self.capacity - 1, -1, -1))  # pop() hands out the lowest slot
        self._buffers: dict[int, list[np.ndarray]] = {}  # batch size -> gather buffers

    def acquire(self) -> int:
        """A zeroed free slot (grows the arrays when full)."""
        if not self.free:
            self._grow()
        slot = self.free.pop()
        self.zero(slot)
        return slot

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def _grow(self) -> None:
        old, new = self.capacity, self.capacity * 2
        for i, s in enumerate(self.contract.states):
            grown = np.zeros(s.concrete(new), s.dtype)
            grown[self._index(s.batch_axis, slice(0, old))] = self.arrays[i]
            self.arrays[i] = grown
        ctx = np.zeros((new, self.contract.context), self.ctx.dtype)
        ctx[:old] = self.ctx
        self.ctx, self.capacity = ctx, new
        self.free.extend(range(new - 1, old - 1, -1))

    @staticmethod
    def _index(axis: int, idx: object) -> tuple:
        return (slice(None),) * axis + (idx,)

    def zero(self, slot: int) -> None:
        for s, arr in zip(self.contract.states, self.arrays):
            arr[self._index(s.batch_axis, slot)] = 0
        self.ctx[slot] = 0

    def get(self, slot: int) -> dict[str, np.ndarray]:
        """Copies of one stream's states, with a batch axis of size 1."""
        return {s.name: np.take(arr, [slot], axis=s.batch_axis)
                for s, arr in zip(self.contract.states, self.arrays)}

    def set(self, slot: int, state: dict[str, np.ndarray]) -> None:
        """Write one stream's (validated, batch-1) states into its slot."""
        for s, arr in zip(self.contract.states, self.arrays):
            arr[self._index(s.batch_axis, [slot])] = state[s.name]

    def gather(self, idx: np.ndarray) -> list[np.ndarray]:
        """The states of slots ``idx`` stacked along the batch axis (reused buffers)."""
        n = len(idx)
        bufs = self._buffers.get(n)
        if bufs is None:
            if len(self._buffers) > 64:
                self._buffers.clear()
            bufs = [np.empty(s.concrete(n), s.dtype) for s in self.contract.states]
            self._buffers[n] = bufs
        for s, arr, buf in zip(self.contract.states, self.arrays, bufs):
            np.take(arr, idx, axis=s.batch_axis, out=buf, mode="clip")
        return bufs

    def scatter(self, idx: np.ndarray, new_states: list[np.ndarray]) -> None:
        """Write batched new states back into slots ``idx``."""
        for s, arr, new in zip(self.contract.states, self.arrays, new_states):
            arr[self._index(s.batch_axis, idx)] = new
