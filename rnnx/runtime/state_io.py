"""State files: ``.npz`` written atomically, read without executing code, bounded before reading.

The file is a zip of ``<name>.npy`` members, one per state name, plus ``__rnnx_state__``,
a small JSON marker (format and state names) stored as a unicode array, so a plain
``np.load(path, allow_pickle=False)`` reads everything too.

Reading never trusts the file: every member's declared size and ``.npy`` header
(dtype, shape) is checked against the model's state contract before its data is
decompressed, so a small file that would inflate to gigabytes is refused at once.
Writing goes through :func:`rnnx.atomic.atomic_write`: a temporary file in the same
folder renamed over the target, the folder fsynced after, and temporaries left by a
killed writer removed by the next save.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Union

import numpy as np

from rnnx.atomic import atomic_write
from rnnx.errors import StateError
from rnnx.names import check_name

MARKER = "__rnnx_state__"  # key of the JSON marker array
FORMAT = 1  # state file layout version
MAX_MARKER_BYTES = 1 << 16  # the marker is a few hundred bytes
MAX_HEADER_BYTES = 1 << 12  # an .npy header of a plain numeric array is well under this
MAX_MEMBERS = 1024  # most arrays a state file may hold
MAX_MEMBER_BYTES = 1 << 30  # without a contract: most bytes one array may inflate to

PathLike = Union[str, "os.PathLike[str]"]
Expected = Mapping[str, tuple[tuple[int, ...], np.dtype]]  # name -> (shape, dtype)


def save_state_file(path: PathLike, state: Mapping[str, np.ndarray]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    State names follow :func:`rnnx.names.check_name` (the rule loading applies too), and
    names ``np.savez`` reserves (``file``, ``allow_pickle``) work; ``__rnnx_state__`` is this
    format's own marker.

    Returns:
        The path written.

    Raises:
        StateError: an array of objects (not numeric), or a name that is not a plain name
            (``../../x``, NUL, ``.``) or is the marker's.
    """
    path = Path(path)
    arrays = {name: np.asarray(arr) for name, arr in state.items()}
    for name, arr in arrays.items():
        _check_state_name(name, f"state[{name!r}]")
        if arr.dtype.hasobject:
            raise StateError(f"state[{name!r}]: expected a numeric array, got dtype object")
    marker = json.dumps({"format": FORMAT, "names": sorted(arrays)})
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in {MARKER: np.array(marker), **arrays}.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)
    return path


def load_state_file(path: PathLike, expected: Expected | None = None) -> dict[str, np.ndarray]:
    """Read a state file written by :func:`save_state_file` (no pickle, no code).

    Args:
        path: the ``.npz`` file.
        expected: ``{name: (shape, dtype)}`` of the state contract; each array's size,
            shape and dtype kind are checked against it before its data is read.

    Raises:
        FileNotFoundError: no such file.
        StateError: not an rnnx state file, corrupt, or not matching ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise StateError(f"state file {path}: expected at most {MAX_MEMBERS} arrays, got {len(infos)}")
            arrays = {}
            for info in infos:
                arrays[_key(path, info)] = _read_member(path, zf, info, expected)
    except StateError:
        raise
    except (
        ValueError,
        OSError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as e:
        raise StateError(
            f"state file {path}: expected an .npz written by save_state, got unreadable data ({type(e).__name__}: {e})"
        ) from None
    if MARKER not in arrays:
        raise StateError(f"state file {path}: expected an rnnx state file (key {MARKER!r}), got keys {sorted(arrays)}")
    try:
        marker = json.loads(str(arrays.pop(MARKER)))
    except json.JSONDecodeError as e:
        raise StateError(f"state file {path}: corrupt marker ({e})") from None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise StateError(f"state file {path}: expected format {FORMAT}, got {marker!r}")
    if sorted(arrays) != marker.get("names"):
        raise StateError(f"state file {path}: expected arrays {marker.get('names')}, got {sorted(arrays)}")
    return arrays


def _check_state_name(name: object, where: str) -> str:
    if name == MARKER:
        raise StateError(f"{where}: {MARKER!r} is reserved for the state file's marker; rename the state")
    return check_name(name, where, StateError)


def _key(path: Path, info: zipfile.ZipInfo) -> str:
    if not info.filename.endswith(".npy"):
        raise StateError(f"state file {path}: expected only .npy members, got {info.filename!r}")
    key = info.filename[:-4]
    return key if key == MARKER else _check_state_name(key, f"state file {path}: member {info.filename!r}")


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, expected: Expected | None) -> np.ndarray:
    """One array, its size and header checked before its data is decompressed."""
    key = _key(path, info)
    where = f"state file {path}: {key!r}"
    if key == MARKER:
        limit = MAX_MARKER_BYTES
    elif expected is not None:
        if key not in expected:
            raise StateError(f"{where}: not a state of this model; expected {sorted(expected)}")
        shape, dtype = expected[key]
        limit = MAX_HEADER_BYTES + math.prod(shape) * np.dtype(dtype).itemsize
    else:
        limit = MAX_MEMBER_BYTES
    if info.file_size > limit:
        raise StateError(f"{where}: expected at most {limit} bytes, the file declares {info.file_size}")
    with zf.open(info) as f:
        shape, dtype, fortran = _header(where, f)
        if dtype.hasobject:
            raise StateError(f"{where}: expected a numeric array, got dtype object")
        if key != MARKER and expected is not None:
            want_shape, want_dtype = expected[key]
            if tuple(shape) != tuple(want_shape) or not (
                dtype == want_dtype or dtype.kind == np.dtype(want_dtype).kind == "f"
            ):
                raise StateError(
                    f"{where}: expected shape {tuple(want_shape)} dtype "
                    f"{np.dtype(want_dtype).name}, got {tuple(shape)} {dtype.name}"
                )
        nbytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - f.tell()
        if nbytes != held:
            raise StateError(f"{where}: the header declares {nbytes} bytes of data, the member holds {held}")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise StateError(f"{where}: expected {nbytes} bytes of data, got {len(data)} (truncated)")
    arr = np.frombuffer(data, dtype)
    return arr.reshape(shape[::-1]).T.copy() if fortran else arr.reshape(shape).copy()


def _header(where: str, f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Shape, dtype and order from an ``.npy`` header (bounded; never unpickles)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, TypeError, SyntaxError) as e:
        raise StateError(f"{where}: expected an .npy array, got a bad header ({e})") from None
    return tuple(shape), np.dtype(dtype), bool(fortran)
