"""The one error body of the REST API, and the handlers that turn every failure into it.

Every non-2xx answer under /api is `{"error": {"kind", "message", "field", "hint"}}`
with the HTTP status of the error's kind (see `accessiq.errors`).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from accessiq.errors import AccessIQError

log = structlog.get_logger("accessiq.api")

_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation",
    429: "rate_limited",
}


class NotAuthenticatedError(AccessIQError):
    """No API token, or one that is unknown or revoked."""

    http_status = 401
    kind = "unauthorized"


class ForbiddenError(AccessIQError):
    """The token is valid but may not do this (a read-only token asked to change something)."""

    http_status = 403
    kind = "forbidden"


class ErrorDetail(BaseModel):
    kind: str
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorBody(BaseModel):
    """What every failed API call answers."""

    error: ErrorDetail


def error_response(
    status: int,
    kind: str,
    message: str,
    *,
    field: str | None = None,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(kind=kind, message=message, field=field, hint=hint))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def from_product_error(exc: AccessIQError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return error_response(
        exc.http_status,
        exc.kind,
        exc.message,
        field=getattr(exc, "field", None),
        hint=exc.hint,
        headers=headers,
    )


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    """(message, field) for the first problem of a request that did not validate."""
    problems: list[Any] = list(exc.errors())
    if not problems:
        return "the request is not valid", None
    first = problems[0]
    # `("body", "settings", "frequency")` -> `settings.frequency`; the part of the request stays out.
    location = [str(part) for part in first.get("loc", ())]
    where = location[0] if location else ""
    field = ".".join(location[1:]) if where in ("body", "query", "path", "header") else ".".join(location)
    message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "is required"
    text = f"{field}: {message}" if field else message
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problems)"
    return text, field or None


def from_validation_error(exc: RequestValidationError) -> JSONResponse:
    text, field = describe_validation(exc)
    return error_response(422, "validation", text, field=field)


def from_http_error(exc: StarletteHTTPException) -> JSONResponse:
    kind = _KINDS.get(exc.status_code, "error" if exc.status_code < 500 else "internal")
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, kind, detail, headers=getattr(exc, "headers", None))


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.internal_error", path=request.url.path, method=request.method)
    return error_response(500, "internal", "internal error; see the service log")
