"""The REST API face: its routes under /api/v1, /healthz and /metrics, as one router to mount."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from accessiq.api import errors
from accessiq.api.deps import get_caller, get_metrics_caller
from accessiq.api.metrics import registry_for
from accessiq.api.routes import directories, identity, providers, runs
from accessiq.api.schemas import Health
from accessiq.services import Store

API_PREFIX = "/api/v1"

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


def build_router(store: Store) -> APIRouter:
    """Every API route: /api/v1 behind an API token, and the service endpoints /healthz and /metrics."""
    metrics = registry_for(store)
    service = APIRouter()
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(get_caller)], responses=_ERROR_RESPONSES)
    for module in (directories, runs, identity, providers):
        api.include_router(module.router)

    @service.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> Any:
        """Liveness and database reachability; 503 when the database does not answer."""
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return {"status": "ok", "database": store.dialect}

    @service.get(
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

    service.include_router(api)
    return service


def is_api_path(path: str) -> bool:
    """Paths this face answers, with its JSON errors."""
    return path.startswith("/api/") or path in ("/openapi.json", "/healthz", "/metrics")
