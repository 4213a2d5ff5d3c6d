"""The docs keep their promises: every error rnnx raises on purpose is explained on the
troubleshooting page, and the README stays the short front door (the rest lives in docs/).

The site itself is built by ``make docs`` (``mkdocs build --strict``: broken links, anchors
and API references fail), which ``make test`` runs before the suite."""

import inspect
import re
from pathlib import Path

import rnnx.errors

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300


def test_every_error_is_on_the_troubleshooting_page():
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    errors = [
        name
        for name, cls in inspect.getmembers(rnnx.errors, inspect.isclass)
        if issubclass(cls, rnnx.errors.RnnxError) and cls is not rnnx.errors.RnnxError
    ]
    assert len(errors) >= 20
    missing = [name for name in errors if f"`{name}`" not in page]
    assert not missing, (
        f"rnnx/errors.py classes not explained in docs/troubleshooting.md: {missing}; "
        "add what raises each and what to do about it"
    )


def test_readme_is_the_short_front_door():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move details into a docs/ page and link it"
    )


def _slug(heading: str) -> str:
    """The anchor mkdocs (and GitHub) give a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_reach_their_pages_and_headings():
    """README.md is not built by mkdocs, so its links into docs/ are checked here."""
    links = re.findall(r"\]\(((?:docs|examples)/[^)#\s]+)(?:#([^)\s]+))?\)", (ROOT / "README.md").read_text())
    assert links
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"README links to {path}#{anchor}: no such heading"


def test_every_command_is_in_the_readme_and_the_cli_guide():
    """The README's "CLI at a glance" and docs/guides/cli.md list every `rnnx` command."""
    from rnnx.cli import COMMANDS

    for page in (ROOT / "README.md", ROOT / "docs" / "guides" / "cli.md"):
        listed = set(re.findall(r"^\| `rnnx (\w+)", page.read_text(), re.M))
        assert listed == set(COMMANDS), f"{page.name}: lists {sorted(listed)}, the CLI has {sorted(COMMANDS)}"


def test_the_cli_guide_lists_every_option_of_every_command():
    """docs/guides/cli.md's synopsis of each command names each of its options, and no option it
    does not have (-v/-q, the same for every command, are under "Conventions"; hidden options are
    for tests)."""
    import click

    from rnnx.cli import COMMANDS, main

    page = (ROOT / "docs" / "guides" / "cli.md").read_text()
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None, name
        flags = [
            [o for o in p.opts + p.secondary_opts if o.startswith("--")]
            for p in command.params
            if isinstance(p, click.Option) and not p.hidden and p.name not in ("verbose", "quiet")
        ]
        synopsis = next(line for line in page.splitlines() if line.startswith(f"| `rnnx {name}")).split("` |")[0]
        listed = set(re.findall(r"--[a-z][a-z0-9-]*", synopsis))
        missing = [f[0] for f in flags if f and not listed & set(f)]
        unknown = listed - {o for f in flags for o in f}
        assert not missing and not unknown, f"rnnx {name}: the guide lacks {missing}, names unknown {sorted(unknown)}"
