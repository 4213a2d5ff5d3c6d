"""State files: ``.npz`` written atomically, read without executing code.

The file holds one array per state name plus ``__rnnx_state__``, a small JSON marker
(format and state names) stored as a unicode array, so a plain ``np.load`` with
``allow_pickle=False`` reads everything.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from rnnx.errors import StateError

MARKER = "__rnnx_state__"  # key of the JSON marker array
FORMAT = 1  # state file layout version

PathLike = Union[str, "os.PathLike[str]"]


def save_state_file(path: PathLike, state: Mapping[str, np.ndarray]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    Returns:
        The path written.
    """
    path = Path(path)
    for name, arr in state.items():
        if np.asarray(arr).dtype.hasobject:
            raise StateError(f"state[{name!r}]: expected a numeric array, got dtype object")
    marker = json.dumps({"format": FORMAT, "names": sorted(state)})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{MARKER: np.array(marker)}, **dict(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_state_file(path: PathLike) -> dict[str, np.ndarray]:
    """Read a state file written by :func:`save_state_file` (no pickle, no code).

    Raises:
        FileNotFoundError: no such file.
        StateError: not an rnnx state file, or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise StateError(f"state file {path}: expected an .npz written by save_state, "
                         f"got unreadable data ({type(e).__name__}: {e})") from None
    if MARKER not in arrays:
        raise StateError(f"state file {path}: expected an rnnx state file (key {MARKER!r}), "
                         f"got keys {sorted(arrays)}")
    try:
        marker = json.loads(str(arrays.pop(MARKER)))
    except json.JSONDecodeError as e:
        raise StateError(f"state file {path}: corrupt marker ({e})") from None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise StateError(f"state file {path}: expected format {FORMAT}, got {marker!r}")
    if sorted(arrays) != marker.get("names"):
        raise StateError(f"state file {path}: expected arrays {marker.get('names')}, "
                         f"got {sorted(arrays)}")
    return arrays
