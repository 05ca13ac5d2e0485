"""Sign-in for the web UI: session cookies, CSRF tokens, and the dependency every page uses.

The session cookie is random, HttpOnly, SameSite=Lax and Secure (unless the app
was built with `secure_cookies=False` for plain-http development). Every
state-changing request carries the session's CSRF token, as a form field
`csrf_token` or, for htmx, the `X-CSRF-Token` header. The sign-in form, before
any session exists, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from accessiq.services import Store, accounts

SESSION_COOKIE = "aiq_session"
LOGIN_CSRF_COOKIE = "aiq_login_csrf"
FLASH_COOKIE = "aiq_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = ("GET", "HEAD", "OPTIONS")


class LoginRequiredError(Exception):
    """No live session: the app answers with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign-in required")
        self.next_url = next_url


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token."""


def secure_cookies(request: Request) -> bool:
    return bool(request.app.state.secure_cookies)


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None = None, samesite: str = "lax"
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=secure_cookies(request),
        samesite=samesite,  # type: ignore[arg-type]
        path="/",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, secure=secure_cookies(request), samesite="lax")


def _lookup(store: Store, cookie: str) -> accounts.SignedIn | None:
    with store.read() as session:
        return accounts.session_for(session, cookie)


async def signed_in(request: Request) -> accounts.SignedIn:
    """The signed-in administrator; checks the CSRF token of state-changing requests."""
    cookie = request.cookies.get(SESSION_COOKIE)
    who = await run_in_threadpool(_lookup, request.app.state.store, cookie) if cookie else None
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(target if request.method in _SAFE else "/")
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not sent or not hmac.compare_digest(sent, who.csrf_token):
            raise CsrfError()
    request.state.admin = who
    return who


AdminDep = Annotated[accounts.SignedIn, Depends(signed_in)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(expected and sent and hmac.compare_digest(expected, sent))


def safe_next(url: str | None) -> str:
    """Only local paths: never send a signed-in browser to another site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def login_url(next_url: str) -> str:
    return "/login" + (f"?next={quote(next_url, safe='/')}" if next_url and next_url != "/" else "")
