"""The operations every interface (CLI, API, web) calls; none of them reaches into tables itself."""

from __future__ import annotations

# The store handle the composition root opens and hands to every face; faces name its type from here.
from accessiq.store.database import Store

__all__ = ["LIKE_ESCAPE", "Store", "contains_pattern", "parse_id"]

_MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL


def parse_id(ref: object) -> int | None:
    """A row id when `ref` spells one (ASCII digits only, in range), else None: then it is a name."""
    text = str(ref).strip()
    if text.isascii() and text.isdecimal() and int(text) <= _MAX_ID:
        return int(text)
    return None


LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A LIKE pattern for `text` anywhere, its `%`, `_` and `\\` literal: use it with `escape=LIKE_ESCAPE`."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return f"%{text}%"
