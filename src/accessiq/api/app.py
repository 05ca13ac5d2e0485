"""Building the ASGI app: REST API under /api/v1, the admin web UI, /healthz, /metrics, static files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import Match

import accessiq
from accessiq.api import errors
from accessiq.api.deps import get_caller, get_metrics_caller
from accessiq.api.launcher import RunLauncher
from accessiq.api.metrics import registry_for, token_required
from accessiq.api.routes import directories, identity, runs
from accessiq.api.schemas import Health
from accessiq.config import Settings
from accessiq.errors import AccessIQError
from accessiq.store.database import Store
from accessiq.web import STATIC, build_router
from accessiq.web import errors as web_errors
from accessiq.web.security import CsrfError, LoginRequiredError

API_PREFIX = "/api/v1"

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


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": errors.ErrorBody, "description": description}
    for status, description in (
        (400, "The request body could not be parsed"),
        (401, "No API token, or an unknown or revoked one"),
        (403, "A read-only token asked to change something"),
        (404, "No such directory, run, user or organization"),
        (409, "Conflicts with the current state (duplicate, plan no longer applicable)"),
        (422, "The request or a setting in it is not valid; `field` names it"),
        (502, "The directory could not be read"),
    )
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
    metrics = registry_for(store)

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(get_caller)], responses=_ERROR_RESPONSES)
    for module in (directories, runs, identity):
        api.include_router(module.router)
    app.include_router(api)

    @app.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> Any:
        """Liveness and database reachability; 503 when the database does not answer."""
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return {"status": "ok", "database": store.dialect}

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["service"],
        dependencies=[Depends(get_metrics_caller)],
        responses={401: _ERROR_RESPONSES[401]},
        # The token is optional as far as the schema can tell: ACCESSIQ_METRICS_AUTH decides.
        openapi_extra={"security": [{}]},
    )
    def prometheus() -> Response:
        """Prometheus metrics: runs by status, run durations, users synced, last successful sync.

        Needs `Authorization: Bearer <API token>` (read is enough) when ACCESSIQ_METRICS_AUTH says so.
        """
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    app.include_router(build_router())
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _install_error_handlers(app)
    app.add_middleware(_SecurityHeaders)
    return app


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in ("/openapi.json", "/healthz", "/metrics")


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

    @app.exception_handler(AccessIQError)
    def product_error(request: Request, exc: AccessIQError) -> Response:
        if _is_api(request):
            return errors.from_product_error(exc)
        return web_errors.error_page(request, exc.http_status, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return errors.from_validation_error(exc)
        return web_errors.error_page(request, 422, errors.describe_validation(exc)[0])

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
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
        if _is_api(request):
            return errors.internal_error(request, exc)
        errors.log.exception("web.internal_error", path=request.url.path)
        return web_errors.error_page(request, 500, "An unexpected error happened; it is in the service log.")
