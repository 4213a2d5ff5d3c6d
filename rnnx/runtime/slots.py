"""Preallocated per-stream state storage for StreamPool: batch axis = slot.

Each state has one array whose batch axis has ``capacity`` slots; opening a stream
takes a free slot (doubling the arrays when none is left) and closing returns it to
the free list. Two sets of these arrays exist: ``arrays`` (the current set) and a
second one that a step over every slot writes into before :meth:`flip` makes it
current (see :mod:`rnnx.runtime.batch_engine`). A step over a subset of streams
gathers their slots into batch buffers with ``np.take(..., out=)`` and scatters the
new states back with fancy-index assignment.
"""

from __future__ import annotations

import numpy as np

from rnnx.runtime.contract import Contract


class SlotStore:
    """State slot arrays (double-buffered), the free list and cached gather buffers."""

    def __init__(self, contract: Contract, capacity: int = 8) -> None:
        self.contract = contract
        self.capacity = max(1, capacity)
        self.min_capacity = self.capacity  # shrinking stops here
        self.sets = [self._zeros(self.capacity), self._zeros(self.capacity)]
        self.cur = 0  # index of the set holding the current states
        self.version = 0  # bumped when the arrays are reallocated (bindings must be remade)
        self.ctx = np.zeros((self.capacity, contract.context), contract.input.dtype)
        self.free = list(range(self.capacity - 1, -1, -1))  # pop() hands out the lowest slot
        self._buffers: dict[int, list[np.ndarray]] = {}  # batch size -> gather buffers

    def _zeros(self, capacity: int) -> list[np.ndarray]:
        return [np.zeros(s.concrete_shape(capacity), s.dtype) for s in self.contract.states]

    @property
    def arrays(self) -> list[np.ndarray]:
        """The current state arrays, one per state, batch axis = slot."""
        return self.sets[self.cur]

    def flip(self) -> None:
        """Make the other set current (after a step wrote every slot into it)."""
        self.cur ^= 1

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
        grown = self._zeros(new)
        for s, dst, src in zip(self.contract.states, grown, self.arrays):
            dst[self._index(s.batch_axis, slice(0, old))] = src
        self.sets, self.cur, self.version = [grown, self._zeros(new)], 0, self.version + 1
        ctx = np.zeros((new, self.contract.context), self.ctx.dtype)
        ctx[:old] = self.ctx
        self.ctx, self.capacity = ctx, new
        self.free.extend(range(new - 1, old - 1, -1))

    def shrink(self, live: int, slots: list[int]) -> dict[int, int] | None:
        """Halve the arrays (repeatedly) when at most a quarter of the slots are in use.

        Args:
            live: number of slots in use.
            slots: the slots in use.

        Returns:
            ``{old slot: new slot}`` for the slots that moved (every other stays), or None
            when the arrays were kept.
        """
        if self.capacity <= self.min_capacity or live * 4 > self.capacity:
            return None
        new = max(self.min_capacity, 1 << max(0, (2 * live - 1).bit_length()))  # >= 2 * live
        used = set(slots)
        low_free = (s for s in range(new) if s not in used)
        moves = {old: next(low_free) for old in sorted(slots) if old >= new}
        source = np.arange(new)  # new slot k takes old slot source[k]
        for old, slot in moves.items():
            source[slot] = old
        self.sets = [
            [np.take(arr, source, axis=s.batch_axis) for s, arr in zip(self.contract.states, self.arrays)],
            self._zeros(new),
        ]
        self.cur, self.version, self.capacity = 0, self.version + 1, new
        self.ctx = self.ctx[source]
        kept = used - set(moves) | set(moves.values())
        self.free = [s for s in range(new - 1, -1, -1) if s not in kept]
        self._buffers = {n: b for n, b in self._buffers.items() if n <= new}
        return moves

    @staticmethod
    def _index(axis: int, idx: object) -> tuple:
        return (slice(None),) * axis + (idx,)

    def zero(self, slot: int) -> None:
        for s, arr in zip(self.contract.states, self.arrays):
            arr[self._index(s.batch_axis, slot)] = 0
        self.ctx[slot] = 0

    def get(self, slot: int) -> dict[str, np.ndarray]:
        """Copies of one stream's states, with a batch axis of size 1."""
        return {s.name: np.take(arr, [slot], axis=s.batch_axis) for s, arr in zip(self.contract.states, self.arrays)}

    def set(self, slot: int, state: dict[str, np.ndarray]) -> None:
        """Write one stream's (validated, batch-1) states into its slot."""
        for s, arr in zip(self.contract.states, self.arrays):
            arr[self._index(s.batch_axis, [slot])] = state[s.name]

    def gather(self, idx: np.ndarray, out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The states of slots ``idx`` stacked along the batch axis (into ``out`` or reused buffers)."""
        bufs = out if out is not None else self._gather_buffers(len(idx))
        for s, arr, buf in zip(self.contract.states, self.arrays, bufs):
            np.take(arr, idx, axis=s.batch_axis, out=buf, mode="clip")
        return bufs

    def _gather_buffers(self, n: int) -> list[np.ndarray]:
        bufs = self._buffers.get(n)
        if bufs is None:
            if len(self._buffers) > 64:
                self._buffers.clear()
            bufs = self._buffers[n] = self._zeros(n)
        return bufs

    def scatter(self, idx: np.ndarray, new_states: list[np.ndarray]) -> None:
        """Write batched new states back into slots ``idx``."""
        for s, arr, new in zip(self.contract.states, self.arrays, new_states):
            arr[self._index(s.batch_axis, idx)] = new
