"""Pagination of list answers: `limit` and `offset` in, a JSON array and paging headers out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fastapi import Response

from accessiq.api.deps import Page

T = TypeVar("T")


def paginate(items: Sequence[T], page: Page, response: Response, *, complete: bool = True) -> list[T]:
    """The page's slice of `items`.

    Sets `X-Next-Offset` when more items follow and, when `items` is the whole
    list (`complete`), `X-Total-Count`.
    """
    chunk = list(items[page.offset : page.offset + page.limit])
    if len(items) > page.offset + page.limit:
        response.headers["X-Next-Offset"] = str(page.offset + page.limit)
    if complete:
        response.headers["X-Total-Count"] = str(len(items))
    return chunk
