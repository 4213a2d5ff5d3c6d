"""The one plain-text table renderer (parity reports, export summaries, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence


def render(head: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Aligned columns separated by two spaces, trailing spaces stripped.

    Args:
        head: column titles.
        rows: cells, already formatted as text.
        align: one character per column, ``"<"`` (left, the default) or ``">"`` (right).

    Returns:
        The header line, then one line per row.

    Example:
        >>> print(render(("name", "value"), [("a", "1.5"), ("long name", "10")], align="<>"))
        name       value
        a            1.5
        long name     10
    """
    table = [tuple(head)] + [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    sides = align.ljust(len(head), "<")
    return "\n".join(
        "  ".join(c.rjust(w) if s == ">" else c.ljust(w) for c, w, s in zip(r, widths, sides)).rstrip() for r in table
    )
