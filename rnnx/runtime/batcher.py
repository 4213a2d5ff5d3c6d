"""Background micro-batcher: groups concurrent submissions into one pool call.

Submissions from any thread go into a queue; one worker thread takes up to
``max_batch`` of them, waiting at most ``max_wait`` seconds after the first, and runs
them as one batched step. Two submissions for the same stream never share a batch:
the later one is carried over, in order, to the next batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Hashable, Optional

Item = tuple[Hashable, Any, Future]  # (stream id, validated input, future)
_STOP = object()


class Batcher:
    """Worker thread that runs ``step(items)`` on batches of submitted items."""

    def __init__(self, step: Callable[[list[Item]], None], max_batch: int, max_wait_s: float) -> None:
        self._step, self.max_batch, self.max_wait_s = step, max_batch, max_wait_s
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._backlog: deque[Item] = deque()  # carried over: same stream already in the batch
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rnnx-batcher", daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        self._queue.put(item)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Finish what was submitted, then end the worker thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not (self._stopping and not self._backlog):
            batch = self._collect()
            if batch:
                self._step(batch)

    def _take(self, item: Item, batch: list[Item], seen: set) -> None:
        if item[0] in seen or len(batch) >= self.max_batch:
            self._backlog.append(item)
        else:
            seen.add(item[0])
            batch.append(item)

    def _collect(self) -> list[Item]:
        batch: list[Item] = []
        seen: set = set()
        carried, self._backlog = self._backlog, deque()
        for item in carried:
            self._take(item, batch, seen)
        deadline = None if not batch else time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch and not self._stopping:
            if deadline is None:
                try:
                    got = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                deadline = time.monotonic() + self.max_wait_s
            else:
                left = deadline - time.monotonic()
                try:
                    got = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
            if got is _STOP:
                self._stopping = True
                break
            self._take(got, batch, seen)
        return batch
