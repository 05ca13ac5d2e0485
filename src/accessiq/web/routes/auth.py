"""Sign in, sign out, and the first-start setup of the first administrator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from accessiq.dependencies import StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import accounts, sign_in
from accessiq.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AdminDep,
    clear_cookie,
    login_csrf_ok,
    new_login_csrf,
    safe_next,
    set_cookie,
)
from accessiq.web.templating import redirect, render

router = APIRouter()


def _form_page(request: Request, template: str, context: dict[str, object], status_code: int = 200) -> Response:
    """A page with a sign-in style form and a fresh double-submit CSRF cookie."""
    token = new_login_csrf()
    response = render(request, template, {**context, "login_csrf": token}, status_code=status_code)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600, samesite="strict")
    return response


def _has_admins(store: StoreDep) -> bool:
    with store.transaction() as session:
        return accounts.count_administrators(session) > 0


@router.get("/", include_in_schema=False)
def home(request: Request, admin: AdminDep) -> Response:
    return redirect(request, "/directories")


@router.get("/login", include_in_schema=False)
def login_page(request: Request, store: StoreDep, next: str | None = None) -> Response:
    if not _has_admins(store):
        return redirect(request, "/setup")
    return _form_page(request, "login.html", {"next": safe_next(next), "email": ""})


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    store: StoreDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not login_csrf_ok(request, csrf_token):
        return _form_page(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "email": email,
                "error": "Your sign-in form expired. Please try again.",
            },
            status_code=400,
        )
    limits = sign_in.Limits.from_settings(request.app.state.settings)
    # The peer address; behind a proxy uvicorn takes it from X-Forwarded-For of the proxies it trusts.
    address = request.client.host if request.client else None
    try:
        with store.transaction() as session:
            admin = sign_in.sign_in(session, email, password, address=address, limits=limits)
            cookie = accounts.start_session(session, admin)[0] if admin else None
    except sign_in.TooManyAttemptsError as exc:
        response = _form_page(
            request, "login.html", {"next": safe_next(next), "email": email, "error": exc.message}, status_code=429
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if cookie is None:
        return _form_page(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "email": email,
                "error": "Wrong email or password.",
            },
            status_code=401,
        )
    response = redirect(request, safe_next(next))
    set_cookie(request, response, SESSION_COOKIE, cookie, max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    clear_cookie(request, response, LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, store: StoreDep, admin: AdminDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE, "")
    with store.transaction() as session:
        accounts.end_session(session, cookie)
    response = redirect(request, "/login", "You are signed out.", "info")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


@router.get("/setup", include_in_schema=False)
def setup_page(request: Request, store: StoreDep) -> Response:
    """Create the first administrator; only while there is none."""
    if _has_admins(store):
        return redirect(request, "/login")
    return _form_page(request, "setup.html", {"email": ""})


@router.post("/setup", include_in_schema=False)
def setup(
    request: Request,
    store: StoreDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not login_csrf_ok(request, csrf_token):
        return _form_page(
            request, "setup.html", {"email": email, "error": "The form expired. Please try again."}, status_code=400
        )
    if password != confirm:
        return _form_page(
            request, "setup.html", {"email": email, "error": "The passwords do not match."}, status_code=422
        )
    try:
        with store.transaction() as session:
            # Checked again inside the transaction: two first visitors cannot both become the first admin.
            if accounts.count_administrators(session) > 0:
                return redirect(request, "/login")
            admin = accounts.create_administrator(session, email, password)
            cookie, _ = accounts.start_session(session, admin)
    except AccessIQError as exc:
        return _form_page(request, "setup.html", {"email": email, "error": exc.message}, status_code=422)
    response = redirect(request, "/directories", "Welcome! Your administrator account is ready.")
    set_cookie(request, response, SESSION_COOKIE, cookie, max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    clear_cookie(request, response, LOGIN_CSRF_COOKIE)
    return response
