"""The Google sandbox's ASGI app: `/token`, the Directory API under `/admin/directory/v1`, and `/_admin`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields, replace
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from accessiq.sandbox.google import (
    QUOTA_STATUS,
    DirectoryError,
    Fault,
    GoogleSandbox,
    Member,
    OAuthError,
    RequestRecord,
)
from accessiq.sandbox.wire_faults import WIRE_FAULTS, asked_wait, body_fault, buffered

API = "/admin/directory/v1"
# Fields of users.list's `query` the sandbox understands (§3.2), by how they compare.
_BOOLEAN_FIELDS = {"isSuspended": "suspended", "isArchived": "archived", "isAdmin": "isAdmin"}
_TEXT_FIELDS = {
    "email": lambda u: [u["primaryEmail"], *u.get("aliases", [])],
    "givenName": lambda u: [u["name"]["givenName"]],
    "familyName": lambda u: [u["name"]["familyName"]],
    "name": lambda u: [u["name"]["fullName"]],
}
_CLAUSE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.]*)\s*([=:])\s*('(?:[^'\\]|\\.)*'|[^\s']+)")


def create_app(sandbox: GoogleSandbox) -> FastAPI:
    """The ASGI app over `sandbox`; `/_admin` changes the account and injects faults while a client reads it."""
    app = FastAPI(
        title="AccessIQ Google Workspace sandbox",
        docs_url="/_admin/docs",
        openapi_url="/_admin/openapi.json",
        redoc_url=None,
    )

    @app.middleware("http")
    async def record_and_inject(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/_admin"):
            admin_response: Response = await call_next(request)
            return admin_response
        record = RequestRecord(request.method, path, request.url.query)
        with sandbox._lock:
            sandbox.requests.append(record)
        sandbox.enter()
        try:
            fault = sandbox.take_fault("api" if path.startswith(API) else "token", path)
            response: Response
            if fault is not None and fault.kind == "delay":
                await asyncio.sleep(fault.delay)
                response = await call_next(request)
            elif fault is not None and fault.kind == "expire":
                # Every page token handed out so far runs out: this very request carries one.
                with sandbox._lock:
                    sandbox.page_tokens.clear()
                response = await call_next(request)
            elif fault is not None and fault.kind in WIRE_FAULTS:
                response = await _wire_fault(sandbox, fault.kind, request, await call_next(request))
            elif fault is not None:
                response = _fault_response(fault)
            else:
                response = await call_next(request)
        finally:
            sandbox.leave()
        record.status = response.status_code
        record.waits = asked_wait(response.headers)
        return response

    @app.post("/token", include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            return JSONResponse(sandbox.issue_token(form))
        except OAuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)

    def api(resource: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
        """Wrap a handler: authorize it for its resource, answer errors in Google's envelope."""

        def wrap(handler: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> Response:
                try:
                    sandbox.authorize(request.headers.get("authorization"), resource)
                    with sandbox._lock:
                        return JSONResponse(handler(request, **request.path_params))
                except DirectoryError as exc:
                    return JSONResponse(exc.envelope(), status_code=exc.status)

            return endpoint

        return wrap

    @api("users")
    def list_users(request: Request) -> dict[str, Any]:
        params = request.query_params
        _customer_or_domain(sandbox, params)
        limit = _max_results(params.get("maxResults"), 100, 500, sandbox.behaviour.users_max)
        projection = params.get("projection", "basic")
        if projection not in ("basic", "custom", "full"):
            raise DirectoryError(400, "invalid", f"Invalid value for: {projection} is not a valid value")
        source = sandbox.deleted_users if params.get("showDeleted") == "true" else sandbox.users
        users = [u for u in source.values() if _matches(sandbox, u, params.get("query"))]
        order = params.get("orderBy", "email")
        key = {
            "email": lambda u: (u["primaryEmail"],),
            "givenName": lambda u: (u["name"]["givenName"], u["id"]),
            "familyName": lambda u: (u["name"]["familyName"], u["id"]),
        }.get(order)
        if key is None:
            raise DirectoryError(400, "invalid", f"Invalid value for: {order} is not a valid value")
        users.sort(key=key, reverse=params.get("sortOrder") == "DESCENDING")
        page, token = _page(sandbox, request, users, key, limit)
        sandbox.served["users"] += len(page)
        mask = set((params.get("customFieldMask") or "").split(","))
        return _list_body("users", [_projected(u, projection, mask) for u in page], token)

    @api("users")
    def get_user(request: Request, user_key: str) -> dict[str, Any]:
        try:
            user = sandbox.user(user_key)
        except KeyError:
            raise DirectoryError(404, "notFound", "Resource Not Found: userKey") from None
        return _projected(user, request.query_params.get("projection", "basic"), set())

    @api("groups")
    def list_groups(request: Request) -> dict[str, Any]:
        params = request.query_params
        _customer_or_domain(sandbox, params)
        limit = _max_results(params.get("maxResults"), 200, 200, sandbox.behaviour.groups_max)

        def key(group: dict[str, Any]) -> tuple[str, ...]:
            return (group["email"],)

        groups = sorted(sandbox.groups.values(), key=key)
        page, token = _page(sandbox, request, groups, key, limit)
        sandbox.served["groups"] += len(page)
        return _list_body("groups", page, token)

    @api("members")
    def list_members(request: Request, group_key: str) -> dict[str, Any]:
        params = request.query_params
        group = sandbox.group_by_key(group_key)
        if group is None:
            raise DirectoryError(404, "notFound", "Resource Not Found: groupKey")
        limit = _max_results(params.get("maxResults"), 200, 200, sandbox.behaviour.members_max)
        gid = group["id"]
        direct = sandbox.members[gid]
        if params.get("includeDerivedMembership") == "true":
            entries = [(m, direct.get(m) or Member("USER")) for m in sandbox.derived_users(gid)]
            entries += [(m, v) for m, v in direct.items() if v.type == "GROUP"]
        else:
            entries = list(direct.items())
        roles = {r.strip().upper() for r in params.get("roles", "").split(",") if r.strip()}
        if roles - {"OWNER", "MANAGER", "MEMBER"}:
            raise DirectoryError(400, "invalid", "Invalid Input: roles")
        members = [_member(sandbox, m, v) for m, v in entries if not roles or v.role in roles]
        members.sort(key=lambda m: (m["id"],))

        def key(member: dict[str, Any]) -> tuple[str, ...]:
            return (member["id"],)

        page, token = _page(sandbox, request, members, key, limit)
        sandbox.served["members"] += len(page)
        return _list_body("members", page, token)

    app.add_api_route(f"{API}/users", list_users, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{API}/users/{{user_key}}", get_user, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{API}/groups", list_groups, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{API}/groups/{{group_key}}/members", list_members, methods=["GET"], include_in_schema=False)
    _admin_routes(app, sandbox)
    return app


def _admin_routes(app: FastAPI, sandbox: GoogleSandbox) -> None:
    """`/_admin`: change the account and inject faults while a client syncs against the sandbox."""

    def admin(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> JSONResponse:
                try:
                    raw = await request.body() if method in ("POST", "PATCH", "PUT") else b""
                    body = json.loads(raw) if raw else {}
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    result = handler(body, request, **request.path_params)
                    status = 201 if method == "POST" and path in ("/users", "/groups", "/faults") else 200
                    return JSONResponse(result, status_code=status)
                except (KeyError, ValueError, TypeError) as exc:
                    status = 404 if isinstance(exc, KeyError) else 400
                    return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=status)

            app.add_api_route(f"/_admin{path}", endpoint, methods=[method], name=handler.__name__)
            return handler

        return wrap

    @admin("GET", "/info")
    def info(body: dict[str, Any], request: Request) -> dict[str, Any]:
        snapshot = sandbox.snapshot()
        return {
            "api_url": _base(request),
            "token_url": f"{_base(request)}/token",
            "customer_id": sandbox.customer_id,
            "domain": sandbox.domain,
            "admin_email": sandbox.admin_email,
            "client_email": sandbox.client_email,
            "client_id": sandbox.client_id,
            "users": len(snapshot["users"]),
            "suspended_or_archived": sum(1 for u in snapshot["users"].values() if not u["active"]),
            "groups": len(snapshot["groups"]),
            "org_units": sorted(sandbox.org_units),
            "delegation": sorted(sandbox.delegation.get(sandbox.client_id, ())) or None,
            "seed": sandbox.seed,
            "behaviour": asdict(sandbox.behaviour),
        }

    @admin("GET", "/key")
    def key(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return sandbox.service_account_key(f"{_base(request)}/token")

    @admin("POST", "/users")
    def add_user(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return sandbox.add_user(
            body.get("fields", {}), org_unit=body.get("org_unit"), department=body.get("department")
        )

    @admin("PATCH", "/users/{ref}")
    def update_user(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.update_user(ref, body)

    @admin("POST", "/users/{ref}/{action}")
    def user_action(body: dict[str, Any], request: Request, ref: str, action: str) -> dict[str, Any]:
        states = {
            "suspend": {"suspended": True},
            "unsuspend": {"suspended": False},
            "archive": {"archived": True},
            "unarchive": {"archived": False},
        }
        if action == "move":
            return sandbox.move_user(ref, str(body["org_unit"]))
        if action not in states:
            raise ValueError(f"unknown action {action!r}; one of move, {', '.join(states)}")
        return sandbox.set_state(ref, **states[action])

    @admin("DELETE", "/users/{ref}")
    def delete_user(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.delete_user(ref)

    @admin("POST", "/org-units")
    def add_org_unit(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"orgUnitPath": sandbox.add_org_unit(str(body["path"]))}

    @admin("POST", "/groups")
    def add_group(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return sandbox.add_group(str(body["name"]), body.get("email"), body.get("description"))

    @admin("PATCH", "/groups/{ref}")
    def update_group(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.update_group(ref, body)

    @admin("DELETE", "/groups/{ref}")
    def delete_group(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.delete_group(ref)

    @admin("POST", "/groups/{ref}/members")
    def members(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.change_members(ref, body.get("add", []), body.get("remove", []), role=body.get("role", "MEMBER"))

    @admin("POST", "/faults")
    def add_fault(body: dict[str, Any], request: Request) -> dict[str, Any]:
        unknown = set(body) - {f.name for f in fields(Fault)}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = Fault(**body)
        if fault.kind == "quota" and fault.reason not in QUOTA_STATUS:
            raise ValueError(f"quota reasons: {', '.join(QUOTA_STATUS)}")
        sandbox.inject(fault)
        return asdict(fault)

    @admin("DELETE", "/faults")
    def clear_faults(body: dict[str, Any], request: Request) -> dict[str, Any]:
        with sandbox._lock:
            sandbox.faults.clear()
        return {"faults": 0}

    @admin("PUT", "/delegation")
    def delegation(body: dict[str, Any], request: Request) -> dict[str, Any]:
        """`{"scopes": [...]}` authorises those scopes for the service account's client ID; null removes it."""
        return sandbox.set_delegation(body.get("scopes"), body.get("client_id"))

    @admin("PUT", "/admins")
    def admins(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return sandbox.set_admin(str(body["email"]), body.get("privileges", []))

    @admin("POST", "/key/revoke")
    def revoke_key(body: dict[str, Any], request: Request) -> dict[str, Any]:
        sandbox.revoke_key()
        return {"revoked": True}

    @admin("PATCH", "/behaviour")
    def behaviour(body: dict[str, Any], request: Request) -> dict[str, Any]:
        with sandbox._lock:
            sandbox.behaviour = replace(sandbox.behaviour, **body)
        return asdict(sandbox.behaviour)

    @admin("GET", "/stats")
    def stats(body: dict[str, Any], request: Request) -> dict[str, Any]:
        return sandbox.stats()

    @admin("POST", "/stats/reset")
    def reset_stats(body: dict[str, Any], request: Request) -> dict[str, Any]:
        with sandbox._lock:
            sandbox.reset_stats()
        return {"reset": True}

    @admin("POST", "/reset")
    def reset(body: dict[str, Any], request: Request) -> dict[str, Any]:
        sandbox.reset()
        return {"reset": True}


# ---------------------------------------------------------------------- helpers


def _customer_or_domain(sandbox: GoogleSandbox, params: Mapping[str, str]) -> None:
    customer, domain = params.get("customer"), params.get("domain")
    if not customer and not domain:
        raise DirectoryError(400, "badRequest", "Bad Request")
    if customer and customer not in ("my_customer", sandbox.customer_id):
        raise DirectoryError(400, "badRequest", "Bad Request")
    if domain and domain.lower() != sandbox.domain:
        raise DirectoryError(403, "forbidden", "Not Authorized to access this resource/api")


def _max_results(raw: str | None, default: int, documented: int, served: int) -> int:
    """Page size: `maxResults` within Google's documented range, served at most `served` at a time.

    Google may return fewer items than asked for; a small `served` makes every page short.
    """
    if raw is None:
        return min(default, served)
    if not raw.isdigit() or not 1 <= int(raw) <= documented:
        raise DirectoryError(
            400, "invalid", f"Invalid value '{raw}'. Values must be within the range: [1, {documented}]"
        )
    return min(int(raw), served)


def _page(
    sandbox: GoogleSandbox,
    request: Request,
    items: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], tuple[str, ...]],
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page after the page token's position, and the token of the next page (None on the last)."""
    signature = json.dumps(sorted((k, v) for k, v in request.query_params.items() if k not in ("pageToken",)))
    signature = f"{request.url.path}?{signature}"
    after = sandbox.resume(request.query_params.get("pageToken"), signature)
    descending = request.query_params.get("sortOrder") == "DESCENDING"
    start = 0
    if after is not None:
        # Keys are unique and sorted: continue after the last one served, so changes between pages shift nothing.
        start = next(
            (i for i, item in enumerate(items) if (key(item) < after if descending else key(item) > after)),
            len(items),
        )
    page = items[start : start + limit]
    token = sandbox.page_token(signature, key(page[-1])) if page and start + limit < len(items) else None
    return page, token


def _matches(sandbox: GoogleSandbox, user: Mapping[str, Any], query: str | None) -> bool:
    """users.list `query`: clauses joined by an implicit AND (a subset of Google's search syntax)."""
    if not query or not query.strip():
        return True
    rest = query.strip()
    while rest:
        match = _CLAUSE.match(rest)
        if match is None:
            raise DirectoryError(400, "invalid", "Invalid Input: " + query)
        name, op, raw = match.groups()
        rest = rest[match.end() :].strip()
        value = _unquote(raw)
        if name == "orgUnitPath":
            unit = "/" + value.strip("/") if value.strip("/") else "/"
            if op != "=" or unit not in sandbox.org_units:
                raise DirectoryError(400, "invalid", "Invalid Input: INVALID_OU_ID")
            if not sandbox.in_unit(user["orgUnitPath"], unit):
                return False
        elif name in _BOOLEAN_FIELDS:
            if value.lower() not in ("true", "false"):
                raise DirectoryError(400, "invalid", "Invalid Input: " + query)
            if bool(user.get(_BOOLEAN_FIELDS[name])) != (value.lower() == "true"):
                return False
        elif name in _TEXT_FIELDS:
            texts = [t.lower() for t in _TEXT_FIELDS[name](user)]
            wanted = value.lower()
            if op == "=" and wanted not in texts:
                return False
            if op == ":" and not any(t.startswith(wanted[:-1]) if wanted.endswith("*") else wanted in t for t in texts):
                return False
        else:
            raise DirectoryError(400, "invalid", "Invalid Input: " + query)
    return True


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _projected(user: Mapping[str, Any], projection: str, mask: set[str]) -> dict[str, Any]:
    """customSchemas only with projection=full, or custom with the schema in customFieldMask."""
    record = dict(user)
    schemas = record.pop("customSchemas", None)
    if schemas and projection == "full":
        record["customSchemas"] = schemas
    elif schemas and projection == "custom":
        kept = {name: value for name, value in schemas.items() if name in mask}
        if kept:
            record["customSchemas"] = kept
    return record


def _member(sandbox: GoogleSandbox, member_id: str, value: Member) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "admin#directory#member",
        "etag": f'"sandbox/{member_id}"',
        "id": member_id,
        "role": value.role,
        "type": value.type,
        "status": "ACTIVE",
    }
    if value.type == "USER":
        user = sandbox.users.get(member_id)
        record["email"] = user["primaryEmail"] if user else None
        if user and user["suspended"]:
            record["status"] = "SUSPENDED"
    elif value.type == "GROUP":
        record["email"] = sandbox.groups[member_id]["email"]
    return record


def _list_body(kind: str, page: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    """A list answer: `kind`, `etag`, the items (left out when there are none, §3.2) and `nextPageToken`."""
    body: dict[str, Any] = {
        "kind": f"admin#directory#{kind}",
        "etag": f'"sandbox/{len(page)}-{page[-1]["id"] if page else "empty"}"',
    }
    if page:
        body[kind] = page
    if token:
        body["nextPageToken"] = token
    return body


async def _wire_fault(sandbox: GoogleSandbox, kind: str, request: Request, answer: Any) -> Response:
    status, headers, body = await buffered(answer)
    if kind != "loop":
        return body_fault(kind, status, headers, body)
    page = json.loads(body)
    resumed = sandbox.page_tokens.get(request.query_params.get("pageToken") or "")
    if isinstance(page, dict) and page.get("nextPageToken") and resumed is not None:
        # The next page is the one just served, behind a fresh token (Google's tokens are new on every
        # answer): a client that only compares tokens goes round forever.
        page["nextPageToken"] = sandbox.page_token(*resumed)
    return JSONResponse(page, status_code=status, headers=headers)


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "forbidden":
        error = DirectoryError(403, "forbidden", "Not Authorized to access this resource/api")
        return JSONResponse(error.envelope(), status_code=403)
    if fault.kind == "quota":
        status = QUOTA_STATUS[fault.reason]
        message = {
            "userRateLimitExceeded": "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per "
            "user' of service 'admin.googleapis.com'.",
            "quotaExceeded": "Quota exceeded: too many concurrent requests.",
            "rateLimitExceeded": "Rate limit exceeded for the Workspace account.",
        }[fault.reason]
        error = DirectoryError(status, fault.reason, message, domain="usageLimits")
        return JSONResponse(error.envelope(), status_code=status)
    error = DirectoryError(fault.status, "backendError", "Backend Error")
    return JSONResponse(error.envelope(), status_code=fault.status)


def _base(request: Request) -> str:
    parts = urlsplit(str(request.base_url))
    return f"{parts.scheme}://{parts.netloc}"
