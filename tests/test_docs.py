"""The docs keep their promises: every error rnnx raises on purpose is explained on the
troubleshooting page, and the README stays the short front door (the rest lives in docs/).

The site itself is built by ``make docs`` (``mkdocs build --strict``: broken links, anchors
and API references fail), which ``make test`` runs before the suite."""

import inspect
from pathlib import Path

import rnnx.errors

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300


def test_every_error_is_on_the_troubleshooting_page():
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    errors = [name for name, cls in inspect.getmembers(rnnx.errors, inspect.isclass)
              if issubclass(cls, rnnx.errors.RnnxError) and cls is not rnnx.errors.RnnxError]
    assert len(errors) >= 20
    missing = [name for name in errors if f"`{name}`" not in page]
    assert not missing, (f"rnnx/errors.py classes not explained in docs/troubleshooting.md: {missing}; "
                         "add what raises each and what to do about it")


def test_readme_is_the_short_front_door():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (f"README.md has {lines} lines (at most {README_MAX_LINES}): "
                                       "move details into a docs/ page and link it")
