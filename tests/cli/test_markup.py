"""Directory data is text in the CLI, never rich markup: `[/]` does not crash it, `[link=…]` writes no hyperlink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Snapshot

# An unbalanced closing tag (a MarkupError when parsed), a style and a terminal hyperlink.
MARKUP = "[/] [bold]x [link=https://evil.example]click[/link]"
HYPERLINK = "\x1b]8;"  # OSC 8, how a terminal is told to open a link


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich writes colours and hyperlinks as if to a terminal (set before `cli` copies the environment)."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TERM", "xterm-256color")


def shown(out: str) -> str:
    """`out`, checked to show `MARKUP` as written and to hold no hyperlink."""
    assert MARKUP in out, out
    assert HYPERLINK not in out, out
    return out


def test_markup_in_directory_data_prints_as_written(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    snapshot.user("ann", display_name=f"Ann {MARKUP}", family_name=MARKUP)
    snapshot.group("g1", f"Engineering {MARKUP}", ["ann"])
    # A group the snapshot gets wrong: a per-record error that names its id.
    snapshot.groups.append({"id": f"g2 {MARKUP}", "name": "Broken", "members": "ann"})
    snapshot.write()
    cli("orgs", "create", "acme", "--name", f"Acme {MARKUP}")
    document = tmp_path / "corp.json"
    document.write_text(
        json.dumps(
            {
                "name": f"Corp {MARKUP}",
                "provider": "file",
                "connection": {"path": str(snapshot.path)},
                "settings": {"default_organization": "acme"},
                "group_mappings": [
                    {"source_group": f"Engineering {MARKUP}", "organization": "acme"},
                    {"source_group": f"Missing {MARKUP}", "organization": "acme"},
                ],
            }
        )
    )
    shown(cli("directories", "apply", str(document)).stdout)
    tested = shown(cli("directories", "test", "1", ok=False).stdout)
    assert f"\x1b[31mproblem\x1b[0m group mapping 'Missing {MARKUP}'" in tested

    first = shown(cli("sync", "1").stdout)
    # The product's own styles still render around the data.
    assert "\x1b[33msucceeded_with_errors" in first
    assert f"\x1b[31merror\x1b[0m group g2 {MARKUP}: 'members' must be a list" in first

    snapshot.find("ann")["display_name"] = f"Ann B {MARKUP}"
    snapshot.write()
    second = json.loads(cli("sync", "1", "--json").stdout)
    changes = shown(cli("runs", "show", str(second["id"]), "--changes").stdout)
    assert f"display_name: 'Ann {MARKUP}' -> 'Ann B {MARKUP}'" in changes

    for command in (
        ("users", "list"),
        ("users", "show", "ann@example.com"),
        ("groups", "list"),
        ("directories", "list"),
        ("directories", "show", "1"),
        ("directories", "groups", "1"),
        ("runs", "list"),
        ("orgs", "list"),
    ):
        shown(cli(*command).stdout)
    assert "\x1b[32mactive" in cli("users", "list").stdout

    missing = cli("users", "deactivate", f"{MARKUP}@example.com", ok=False)
    assert missing.returncode == 3
    assert f"\x1b[31merror:\x1b[0m no user '{MARKUP}@example.com'" in shown(missing.stderr)
