"""One rule for names that become file names, folder names or archive entries.

Triton model names (a folder of the repository), state names (an entry ``<name>.npy`` of a
state file) and the file names a contract points at (the step graph, the members of a
seq2seq bundle) all pass :func:`check_name`, on save and on load alike, so a name can
never climb out of its folder (``..``), name the folder itself (``.``), hide a NUL or a
line break, or carry a path separator.

Example:
    >>> check_name("encoder.onnx", "seq2seq.encoder")
    'encoder.onnx'
    >>> name_problem("../x")
    "contains '/'"
"""

from __future__ import annotations

import re

from rnnx.errors import RnnxError

MAX_NAME_BYTES = 255  # what most file systems allow for one path component (UTF-8 bytes)
RULE = "a plain name: 1 to 255 bytes, no '/', '\\\\', NUL or other control characters, not '.' or '..'"
_ALLOWED = re.compile(r"[^\x00-\x1f\x7f/\\]+")  # matched against the whole string


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a plain name, or None when it is one."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if name in ("", ".", ".."):
        return "is empty" if not name else f"is {name!r} (a folder, not a name)"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    if not _ALLOWED.fullmatch(name):
        bad = next(c for c in name if not _ALLOWED.fullmatch(c))
        return f"contains {bad!r}"
    return None


def check_name(name: object, where: str, error: type[RnnxError] = RnnxError) -> str:
    """Return ``name`` if it is a plain name, else raise ``error`` naming ``where``.

    Args:
        name: the value to check.
        where: what it is, for the message (``"triton model name"``, ``"state['h']"``).
        error: the :class:`~rnnx.errors.RnnxError` subclass to raise.

    Raises:
        error: ``name`` is not a string, is empty, ``.`` or ``..``, too long, or holds a
            separator or a control character.
    """
    problem = name_problem(name)
    if problem is not None:
        raise error(f"{where}: expected {RULE}; got {name!r}, which {problem}")
    return name  # type: ignore[return-value]  # name_problem proved it is a str
