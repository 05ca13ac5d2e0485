"""How the CLI prints: human tables by default, JSON for machines, errors as one line on stderr.

Values from directories and users are text, never rich markup: table cells are `Text` built from
them, messages pass them through `escape`, and a block that is all data prints with `markup=False`.
Only the product's own styling (`status`, literal tags in a message) renders, so a display name
like `[link=…]` can neither break a command nor write a terminal hyperlink.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from accessiq.services.configure import frequency_words


def _width(stream: TextIO) -> int | None:
    """A terminal's own width; piped output gets a wide page so tables are not folded into cells."""
    return None if stream.isatty() else int(os.environ.get("COLUMNS", "200"))


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(data: Any) -> None:
    # Plain print, not rich: scripts read this, so no wrapping or markup.
    print(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Cells are shown as written; a `Text` cell (such as `status`) keeps its style."""
    materialized = [list(row) for row in rows]
    if not materialized:
        console.print(f"[dim]no {title.lower() if title else 'rows'}[/dim]")
        return
    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        numeric = all(isinstance(row[index], int) and not isinstance(row[index], bool) for row in materialized)
        table.add_column(column, overflow="fold", justify="right" if numeric else "left")
    for row in materialized:
        table.add_row(*(_cell(cell) for cell in row))
    console.print(table)


def _cell(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def when(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


STATUS_STYLE = {
    "succeeded": "green",
    "succeeded_with_errors": "yellow",
    "failed": "red",
    "blocked": "magenta",
    "running": "cyan",
    "lost": "red",
    "queued": "cyan",
    "canceled": "dim",
    "active": "green",
    "deactivated": "red",
}


def status(value: str) -> Text:
    """A status in its colour: a table cell as it is, `.markup` inside a message."""
    return Text.styled(value, STATUS_STYLE.get(value, ""))


def run_status(run: dict[str, Any]) -> Text:
    """A run's status for a table: a running run whose process died shows as lost before recovery."""
    return status("lost") if run.get("lost") else status(run["status"])


def schedule_text(name: str, info: dict[str, Any]) -> str:
    """The schedule in a few lines, for `directories schedule` and `directories show`."""
    if not info["enabled"]:
        lines = [f"{escape(name)}: automatic sync off (frequency: {escape(frequency_words(info['frequency']))})"]
    else:
        words = escape(frequency_words(info["frequency"]))
        lines = [f"{escape(name)}: syncs {words}; next run {when(info['next_run_at'])}"]
    if info.get("awaiting_approval"):
        lines.append(
            f"  scheduled runs wait for blocked run {info['awaiting_approval']}: "
            f"accessiq runs approve|reject {info['awaiting_approval']}"
        )
    if info["consecutive_failures"]:
        lines.append(f"  {info['consecutive_failures']} consecutive failed run(s)")
        if info["backoff_until"]:
            lines.append(f"  backing off until {when(info['backoff_until'])}")
    lines.append(f"  last success {when(info['last_success_at'])}" + ("  [red]STALE[/red]" if info["stale"] else ""))
    return "\n".join(lines)
