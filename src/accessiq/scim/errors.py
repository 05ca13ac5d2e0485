"""SCIM answers its errors in the SCIM error envelope (RFC 7644 §3.12), with `scimType` when one applies."""

from __future__ import annotations

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from scim2_models import Error, SCIMException
from starlette.exceptions import HTTPException as StarletteHTTPException

from accessiq.errors import AccessIQError

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
log = structlog.get_logger("accessiq.scim")


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE


def is_scim_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_response(
    status: int, detail: str, scim_type: str | None = None, retry_after: int | None = None
) -> ScimResponse:
    error = Error(status=status, scim_type=scim_type, detail=detail)
    response = ScimResponse(error.model_dump(), status_code=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def from_scim_exception(exc: SCIMException) -> ScimResponse:
    error = exc.to_error()
    return ScimResponse(error.model_dump(), status_code=int(error.status or 400))


def from_product_error(exc: AccessIQError, retry_after: int) -> ScimResponse:
    detail = exc.message + (f"; {exc.hint}" if exc.hint else "")
    status = exc.http_status if exc.http_status in (401, 403, 404, 409, 412, 413, 503) else 400
    if exc.http_status >= 500:
        status = 503
    return error_response(status, detail, retry_after=retry_after if status == 503 else None)


def from_validation_error(exc: RequestValidationError) -> ScimResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
    return error_response(400, f"{where}: {first.get('msg', 'invalid request')}", "invalidValue")


def from_http_error(exc: StarletteHTTPException) -> ScimResponse:
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, detail)


def internal_error(path: str) -> ScimResponse:
    log.exception("scim.internal_error", path=path)
    return error_response(500, "an unexpected error happened; it is in the service log")
