"""Progress reporting that suits where stderr goes.

On a terminal, a tqdm bar (when tqdm is installed). Anywhere else (CI logs, files, pipes),
plain lines through the ``rnnx`` logger at most every ``interval`` seconds and once at the
end, so no ``\\r`` fragments end up in logs.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

logger = logging.getLogger(__name__)

PLAIN_INTERVAL_S = 10.0  # seconds between two plain progress lines


class Progress:
    """``update(n)``, ``set_postfix(**values)``, ``close()``; a context manager.

    Args:
        total: units expected (None when unknown).
        desc: what is progressing, e.g. ``"train sine"``.
        unit: the unit's name, e.g. ``"epoch"``.
        enabled: False hides everything.
        stream: where a bar would go (default: ``sys.stderr`` at construction).
        interval: seconds between plain lines.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = PLAIN_INTERVAL_S,
    ) -> None:
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self._interval = interval
        self._last = time.monotonic()
        self._bar = _tqdm(total, desc, unit, stream or sys.stderr) if enabled else None

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self._interval:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = {k: str(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.count:
            self._line()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> None:
        self._last = time.monotonic()
        done = f"{self.count}/{self.total}" if self.total else str(self.count)
        extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
        logger.info("%s: %s %s%s", self.desc, done, self.unit + ("s" if self.count != 1 else ""), extra)


def _tqdm(total: int | None, desc: str, unit: str, stream: TextIO) -> Any:
    """A tqdm bar when ``stream`` is a terminal and tqdm is installed, else None."""
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream, mininterval=0.1)
