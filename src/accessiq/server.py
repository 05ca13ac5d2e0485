"""The composition root: the ASGI app with the API and the web UI mounted side by side.

`create_app(store)` builds it; nothing is created at import time. `accessiq serve` runs it next
to the scheduler and a worker. Faces know nothing of each other: this module decides which one
answers a path, and with which kind of error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from scim2_models import SCIMException
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

import accessiq
from accessiq import scim as scim_face
from accessiq import web as web_face
from accessiq.api import errors
from accessiq.api import router as api_face
from accessiq.api.metrics import token_required
from accessiq.config import Settings
from accessiq.errors import AccessIQError
from accessiq.scim import errors as scim_errors
from accessiq.services import Store
from accessiq.services.launcher import RunLauncher
from accessiq.web import STATIC
from accessiq.web import errors as web_errors
from accessiq.web.security import CsrfError, LoginRequiredError

# Scripts come only from this origin (htmx is vendored); nothing can frame the UI.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def create_app(
    store: Store,
    *,
    settings: Settings | None = None,
    inline_worker: bool = False,
    secure_cookies: bool = True,
    listen_host: str | None = None,
) -> FastAPI:
    """The complete app over `store`.

    `inline_worker=True` runs queued syncs on a thread of this process (for tests
    and demos without `accessiq worker`); otherwise Sync Now only queues the run.
    `secure_cookies=False` lets the sign-in cookie travel over plain http (local
    development only). `listen_host` is the address `accessiq serve` listens on: with
    ACCESSIQ_METRICS_AUTH=auto, /metrics wants an API token unless it is a loopback one.
    """
    launcher = RunLauncher(store, inline=inline_worker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        launcher.close()

    app = FastAPI(
        title="AccessIQ Directory Sync",
        version=accessiq.__version__,
        description="Connect directories, configure sync, run and review syncs. Authenticate with "
        "`Authorization: Bearer <API token>`.",
        openapi_url="/openapi.json",
        # Swagger UI would load its scripts from a CDN; the schema itself is served at /openapi.json.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings or Settings()
    app.state.metrics_token_required = token_required(app.state.settings.metrics_auth, listen_host)
    app.state.launcher = launcher
    app.state.secure_cookies = secure_cookies

    app.include_router(api_face.build_router(store))
    app.include_router(scim_face.build_router())
    app.include_router(web_face.build_router())
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _install_error_handlers(app)
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(_ReadersDoNotWait)
    return app


class _ReadersDoNotWait:
    """GET and HEAD only read: their transactions never wait for a sync that is writing (`Store.reading`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            with Store.reading():
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(api_face.API_PREFIX) or scim_face.is_scim_path(request.url.path):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _is_scim(request: Request) -> bool:
    return scim_face.is_scim_path(request.url.path)


def _is_api(request: Request) -> bool:
    return api_face.is_api_path(request.url.path)


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    allowed: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            allowed |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(allowed))


def _install_error_handlers(app: FastAPI) -> None:
    """API paths answer the one JSON error body; UI paths answer pages or sign-in redirects."""

    @app.exception_handler(SCIMException)
    def scim_error(request: Request, exc: SCIMException) -> Response:
        return scim_errors.from_scim_exception(exc)

    @app.exception_handler(AccessIQError)
    def product_error(request: Request, exc: AccessIQError) -> Response:
        if _is_scim(request):
            return scim_errors.from_product_error(exc, retry_after=scim_face.RETRY_AFTER)
        if _is_api(request):
            return errors.from_product_error(exc)
        return web_errors.error_page(request, exc.http_status, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _is_scim(request):
            return scim_errors.from_validation_error(exc)
        if _is_api(request):
            return errors.from_validation_error(exc)
        return web_errors.error_page(request, 422, errors.describe_validation(exc)[0])

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_scim(request):
            refusal = scim_errors.from_http_error(exc)
            if exc.status_code == 405:
                refusal.headers["Allow"] = _allowed_methods(app, request)
            return refusal
        if _is_api(request):
            response = errors.from_http_error(exc)
            if exc.status_code == 405:
                response.headers["Allow"] = _allowed_methods(app, request)
            return response
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = "There is no page here."
        return web_errors.error_page(request, exc.status_code, message)

    @app.exception_handler(LoginRequiredError)
    def login_required(request: Request, exc: LoginRequiredError) -> Response:
        return web_errors.login_required(request, exc)

    @app.exception_handler(CsrfError)
    def csrf_failed(request: Request, exc: CsrfError) -> Response:
        return web_errors.csrf_failed(request)

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> Response:
        if _is_scim(request):
            return scim_errors.internal_error(request.url.path)
        if _is_api(request):
            return errors.internal_error(request, exc)
        errors.log.exception("web.internal_error", path=request.url.path)
        return web_errors.error_page(request, 500, "An unexpected error happened; it is in the service log.")
