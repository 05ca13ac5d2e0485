"""Faults below a provider's error envelope, shared by the HTTP sandboxes.

A provider's own errors (429 with `Retry-After`, 5xx, 403, an expired token) are
answered by each sandbox in its provider's wire format. What this module does is
what no provider answers on purpose but every client meets sooner or later: a
connection that drops in the middle of a page, a body cut short behind a proxy
that fixed up its length, a proxy's HTML page with a 200, and a server whose
next-page link leads back to the page it just served.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Kinds every HTTP sandbox's `Fault` accepts on top of its provider's own.
WIRE_FAULTS = ("cut", "truncate", "malformed", "loop")

PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    b"<hr><center>nginx</center></body></html>"
)


class ConnectionCut(Exception):
    """Raised after part of a body went out: the server closes the connection mid-response."""


class CutResponse(Response):
    """Announces the whole body's length, sends half of it, then drops the connection."""

    def __init__(self, status_code: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(content=body[: max(1, len(body) // 2)], status_code=status_code, headers=dict(headers))
        self.headers["content-length"] = str(len(body))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        raise ConnectionCut("connection cut mid-response (an injected fault)")


async def buffered(response: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (without the length) and the whole body of a response from `call_next`."""
    chunks = [chunk async for chunk in response.body_iterator]
    body = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "link")}
    return response.status_code, headers, body


def asked_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds an answer asks the client to wait: `Retry-After` (seconds) or Okta's `X-Rate-Limit-Reset`."""
    if headers.get("retry-after", "").strip().isdigit():
        return float(headers["retry-after"])
    reset = headers.get("x-rate-limit-reset", "").strip()
    if reset.isdigit() and headers.get("x-rate-limit-remaining", "").strip() == "0":
        return max(0.0, float(reset) - time.time())
    return None


def links_of(response: Any) -> list[str]:
    """The `Link` header lines of a response (Okta sends one per relation)."""
    return [v for k, v in response.headers.items() if k.lower() == "link"]


def body_fault(kind: str, status: int, headers: Mapping[str, str], body: bytes) -> Response:
    """The answer a `cut`, `truncate` or `malformed` fault turns a good answer into."""
    if kind == "cut":
        return CutResponse(status, headers, body)
    if kind == "truncate":
        # A complete HTTP answer whose body stops early: the JSON ends in the middle of a record.
        return Response(body[: max(1, len(body) // 2)], status_code=status, headers=dict(headers))
    if kind == "malformed":
        plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return Response(PROXY_PAGE, status_code=200, headers=plain, media_type="text/html")
    raise ValueError(f"not a body fault: {kind}")
