"""The operations every interface (CLI, API, web) calls; none of them reaches into tables itself."""

from __future__ import annotations

_MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL


def parse_id(ref: object) -> int | None:
    """A row id when `ref` spells one (ASCII digits only, in range), else None: then it is a name."""
    text = str(ref).strip()
    if text.isascii() and text.isdecimal() and int(text) <= _MAX_ID:
        return int(text)
    return None
