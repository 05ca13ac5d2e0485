"""The Okta sandbox's ASGI app: `/api/v1` users, groups, members and System Log, `/oauth2/v1/token`, `/_admin`."""

from __future__ import annotations

import asyncio
import bisect
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from accessiq.sandbox.okta import Fault, OAuthError, OktaError, OktaSandbox, RequestRecord, _family_of
from accessiq.sandbox.okta_query import Dialect, OktaQueryError, compile_query
from accessiq.sandbox.wire_faults import WIRE_FAULTS, asked_wait, body_fault, buffered, links_of

USER_FILTER = Dialect(
    attributes=(
        "status",
        "lastUpdated",
        "id",
        "profile.login",
        "profile.email",
        "profile.firstName",
        "profile.lastName",
    ),
    date_attributes=("lastUpdated",),
)
GROUP_FILTER = Dialect(
    attributes=("type", "lastUpdated", "lastMembershipUpdated", "id"),
    date_attributes=("lastUpdated", "lastMembershipUpdated"),
)
LOG_FILTER = Dialect(attributes=None, date_attributes=("published",), search=True)
USER_SEARCH = Dialect(
    attributes=None, date_attributes=("created", "activated", "statusChanged", "lastUpdated"), search=True
)
GROUP_SEARCH = Dialect(
    attributes=None, date_attributes=("created", "lastUpdated", "lastMembershipUpdated"), search=True
)


def okta_error_response(error: OktaError) -> Response:
    """Okta's error envelope (or, for an insufficient scope, a bare 403 with its challenge)."""
    if not error.body:
        return Response(status_code=error.status, headers=error.headers)
    return JSONResponse(
        {
            "errorCode": error.code,
            "errorSummary": error.summary,
            "errorLink": error.code,
            "errorId": "oae" + secrets.token_urlsafe(16)[:22],
            "errorCauses": [],
        },
        status_code=error.status,
        headers=error.headers,
    )


def create_app(sandbox: OktaSandbox) -> FastAPI:
    """The ASGI app over `sandbox`; `/_admin` changes the org and injects faults while a client reads it."""
    app = FastAPI(
        title="AccessIQ Okta sandbox", docs_url="/_admin/docs", openapi_url="/_admin/openapi.json", redoc_url=None
    )

    @app.middleware("http")
    async def record_and_inject(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/_admin"):
            response: Response = await call_next(request)
            return response
        record = RequestRecord(request.method, path, request.url.query)
        with sandbox._lock:
            sandbox.requests.append(record)
        response = await _answer(request, call_next, path)
        response.headers["X-Okta-Request-Id"] = secrets.token_urlsafe(18)
        record.status = response.status_code
        record.waits = asked_wait(response.headers)
        return response

    async def _answer(request: Request, call_next: Any, path: str) -> Response:
        if not sandbox.behaviour.org_exists:
            return HTMLResponse("<html><title>Not Found</title><body>Not Found</body></html>", status_code=404)
        api = path.startswith("/api/")
        limits: dict[str, str] = {}
        if api:
            limits, over = sandbox.charge(_family_of(path))
            if over:
                return _with(okta_error_response(_rate_limited()), limits)
        fault = sandbox.take_fault("api" if api else "token", path)
        if fault is not None and fault.kind in WIRE_FAULTS:
            return _with(await _wire_fault(fault.kind, request, await call_next(request)), limits)
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
            else:
                return _fault_response(fault)
        response: Response = await call_next(request)
        return _with(response, limits)

    async def _wire_fault(kind: str, request: Request, answer: Any) -> Response:
        links = links_of(answer)
        status, headers, body = await buffered(answer)
        if kind != "loop":
            faulty = body_fault(kind, status, headers, body)
        else:
            faulty = Response(body, status_code=status, headers=headers)
            # The next page is the one just served, its parameters in another order: a client that
            # only compares links goes round once more before it sees one again.
            again = request.url.replace(query=urlencode(list(reversed(request.query_params.multi_items()))))
            links = [f'<{again}>; rel="next"' if 'rel="next"' in line else line for line in links]
        for line in links:
            faulty.headers.append("link", line)
        return faulty

    @app.get("/.well-known/okta-organization", include_in_schema=False)
    async def organization(request: Request) -> JSONResponse:
        base = _base(request)
        return JSONResponse(
            {
                "id": sandbox.org_id,
                "pipeline": "idx",
                "_links": {"organization": {"href": base}, "alternate": {"href": base}},
            }
        )

    @app.post("/oauth2/v1/token", include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            return JSONResponse(sandbox.issue_token(form, f"{_base(request)}/oauth2/v1/token"))
        except OAuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)

    def api(family: str) -> Callable[[Callable[..., Response]], Callable[..., Any]]:
        """Wrap a handler: authorize for its family, turn OktaErrors into the envelope."""

        def wrap(handler: Callable[..., Response]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> Response:
                try:
                    sandbox.authorize(request.headers.get("authorization"), family)
                    with sandbox._lock:
                        return handler(request, **request.path_params)
                except OktaError as exc:
                    return okta_error_response(exc)
                except OktaQueryError as exc:
                    return okta_error_response(OktaError(400, "E0000053", f"Invalid search criteria. {exc}"))

            return endpoint

        return wrap

    @api("/api/v1/users")
    def list_users(request: Request) -> Response:
        params = request.query_params
        q = params.get("q")
        limit = _limit(params.get("limit"), 10 if q else 200, sandbox.behaviour.users_limit_max)
        users = sorted(sandbox.users.values(), key=lambda u: u["id"])
        if q:
            wanted = q.lower()
            found = [
                u
                for u in users
                if u["status"] != "DEPROVISIONED"
                and any(
                    str(u["profile"].get(k) or "").lower().startswith(wanted)
                    for k in ("firstName", "lastName", "email", "login")
                )
            ]
            sandbox.served["users"] += min(limit, len(found))
            return JSONResponse([_user(u, request) for u in found[:limit]])
        if params.get("filter") and params.get("search"):
            raise OktaError(400, "E0000001", "Api validation failed: filter and search cannot be combined")
        if params.get("filter"):
            test = compile_query(params["filter"], USER_FILTER)
            users = [u for u in users if test(u)]
        elif params.get("search"):
            test = compile_query(params["search"], USER_SEARCH)
            users = [u for u in users if test(u)]
        else:
            # List-all leaves DEPROVISIONED users out (§2.2).
            users = [u for u in users if u["status"] != "DEPROVISIONED"]
        page, links = _page(users, request, limit)
        sandbox.served["users"] += len(page)
        return _linked([_user(u, request) for u in page], links)

    @api("/api/v1/users")
    def get_user(request: Request, user_id: str) -> Response:
        user = sandbox.users.get(user_id) or _by_login(sandbox, user_id)
        return JSONResponse(_user(user, request))

    @api("/api/v1/groups")
    def list_groups(request: Request) -> Response:
        params = request.query_params
        q = params.get("q")
        limit = _limit(params.get("limit"), 300 if q else 200, 10_000 if q else sandbox.behaviour.groups_limit_max)
        groups = sorted(sandbox.groups.values(), key=lambda g: g["id"])
        if q:
            found = [g for g in groups if g["profile"]["name"].lower().startswith(q.lower())][:limit]
            sandbox.served["groups"] += len(found)
            return JSONResponse([_group(g, request) for g in found])
        if params.get("filter"):
            test = compile_query(params["filter"], GROUP_FILTER)
            groups = [g for g in groups if test(g)]
        elif params.get("search"):
            test = compile_query(params["search"], GROUP_SEARCH)
            groups = [g for g in groups if test(g)]
        page, links = _page(groups, request, limit)
        sandbox.served["groups"] += len(page)
        return _linked([_group(g, request) for g in page], links)

    @api("/api/v1/groups")
    def get_group(request: Request, group_id: str) -> Response:
        if group_id not in sandbox.groups:
            raise _not_found(group_id)
        return JSONResponse(_group(sandbox.groups[group_id], request))

    @api("/api/v1/groups")
    def group_members(request: Request, group_id: str) -> Response:
        if group_id not in sandbox.groups:
            raise _not_found(group_id)
        behaviour = sandbox.behaviour
        limit = _limit(request.query_params.get("limit"), behaviour.members_limit_default, behaviour.members_limit_max)
        members = sorted((sandbox.users[m] for m in sandbox.members[group_id]), key=lambda u: u["id"])
        page, links = _page(members, request, limit)
        sandbox.served["members"] += len(page)
        return _linked([_user(u, request) for u in page], links)

    @api("/api/v1/logs")
    def logs(request: Request) -> Response:
        params = request.query_params
        now = datetime.now(UTC)
        if params.get("after") and params.get("since"):
            raise OktaError(400, "E0000001", "Api validation failed: after and since cannot be combined")
        since = _date_param(params.get("since"), now - timedelta(days=7))
        until = _date_param(params.get("until"), now)
        if since < now - timedelta(days=180):
            raise OktaError(400, "E0000053", "Invalid search criteria. since must be within the last 180 days")
        limit = params.get("limit", "100")
        if not limit.isdigit() or not 0 <= int(limit) <= 1000:
            raise OktaError(400, "E0000001", "Api validation failed: limit must be between 0 and 1000")
        events = [e for e in sandbox.log if since <= _date_param(e["published"], now) < until]
        if params.get("filter"):
            test = compile_query(params["filter"], LOG_FILTER)
            events = [e for e in events if test(e)]
        events.sort(key=lambda e: e["published"], reverse=params.get("sortOrder") == "DESCENDING")
        if params.get("after"):
            ids = [e["uuid"] for e in events]
            events = events[ids.index(params["after"]) + 1 :] if params["after"] in ids else []
        page = events[: int(limit)]
        sandbox.served["logs"] += len(page)
        bounded = "until" in params
        links = {"self": str(request.url)}
        if len(events) > len(page) or not bounded:
            # A polling request always has a next link, even after an empty page (§2.5).
            after = page[-1]["uuid"] if page else params.get("after")
            query = {k: v for k, v in params.items() if k not in ("after", "since")}
            if after:
                query["after"] = after
            elif params.get("since"):
                query["since"] = params["since"]
            links["next"] = _url(request, query)
        return _linked(page, links)

    for path, handler in (
        ("/api/v1/users", list_users),
        ("/api/v1/users/{user_id}", get_user),
        ("/api/v1/groups", list_groups),
        ("/api/v1/groups/{group_id}", get_group),
        ("/api/v1/groups/{group_id}/users", group_members),
        ("/api/v1/logs", logs),
    ):
        app.add_api_route(path, handler, methods=["GET"], include_in_schema=False)

    def _page(items: list[dict[str, Any]], request: Request, limit: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """One page after the opaque `after` cursor (an object id), and its `Link` relations."""
        params = request.query_params
        ids = [i["id"] for i in items]
        start = bisect.bisect_right(ids, params["after"]) if params.get("after") else 0
        page = items[start : start + limit]
        links = {"self": str(request.url)}
        if start + limit < len(items) and page:
            cursor = page[-1]["id"]
            if sandbox.behaviour.repeat_link:
                cursor = items[min(limit, len(items)) - 1]["id"]
            query = {"after": cursor, **{k: v for k, v in params.items() if k != "after"}}
            links["next"] = _url(request, query)
        return page, links

    def _url(request: Request, query: Mapping[str, str]) -> str:
        base = sandbox.behaviour.link_base or _base(request)
        return f"{base}{request.url.path}?{urlencode(query, quote_via=quote)}"

    def _user(user: dict[str, Any], request: Request) -> dict[str, Any]:
        return {**user, "_links": {"self": {"href": f"{_base(request)}/api/v1/users/{user['id']}"}}}

    def _group(group: dict[str, Any], request: Request) -> dict[str, Any]:
        base = f"{_base(request)}/api/v1/groups/{group['id']}"
        return {**group, "_links": {"users": {"href": f"{base}/users"}, "apps": {"href": f"{base}/apps"}}}

    _admin_routes(app, sandbox)
    return app


def _admin_routes(app: FastAPI, sandbox: OktaSandbox) -> None:
    """`/_admin`: change the org and inject faults while a client syncs against the sandbox."""

    def fail(exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404 if isinstance(exc, KeyError) else 400)

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    def admin(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> JSONResponse:
                try:
                    body = await body_of(request) if method in ("POST", "PATCH", "PUT") else {}
                    result, status = handler(body, request, **request.path_params), 200
                    if isinstance(result, tuple):
                        result, status = result
                    return JSONResponse(result, status_code=status)
                except (KeyError, ValueError, TypeError) as exc:
                    return fail(exc)

            app.add_api_route(f"/_admin{path}", endpoint, methods=[method], name=handler.__name__)
            return handler

        return wrap

    @admin("GET", "/info")
    def info(body: dict[str, Any], request: Request) -> dict[str, Any]:
        snapshot = sandbox.snapshot()
        return {
            "org_url": str(request.base_url).rstrip("/"),
            "org_id": sandbox.org_id,
            "api_token": sandbox.api_token,
            "client_id": sandbox.client_id,
            "kids": sorted(sandbox.apps[sandbox.client_id].keys),
            "users": len(snapshot["users"]),
            "groups": len(snapshot["groups"]),
            "deprovisioned": sum(1 for s in snapshot["users"].values() if s == "DEPROVISIONED"),
            "seed": sandbox.seed,
            "behaviour": asdict(sandbox.behaviour),
        }

    @admin("POST", "/users")
    def add_user(body: dict[str, Any], request: Request) -> tuple[dict[str, Any], int]:
        return sandbox.add_user(body.get("profile", {}), department=body.get("department")), 201

    @admin("PATCH", "/users/{ref}")
    def update_user(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.update_user(ref, body.get("profile", body))

    @admin("POST", "/users/{ref}/lifecycle/{action}")
    def lifecycle(body: dict[str, Any], request: Request, ref: str, action: str) -> dict[str, Any]:
        statuses = {
            "suspend": "SUSPENDED",
            "unsuspend": "ACTIVE",
            "deactivate": "DEPROVISIONED",
            "activate": "ACTIVE",
            "unlock": "ACTIVE",
            "lock": "LOCKED_OUT",
        }
        if action not in statuses:
            raise ValueError(f"unknown lifecycle action {action!r}; one of {', '.join(statuses)}")
        return sandbox.set_status(ref, statuses[action])

    @admin("DELETE", "/users/{ref}")
    def delete_user(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.delete_user(ref, permanent=request.query_params.get("permanent") == "true")

    @admin("POST", "/groups")
    def add_group(body: dict[str, Any], request: Request) -> tuple[dict[str, Any], int]:
        return sandbox.add_group(str(body["name"]), body.get("description")), 201

    @admin("PATCH", "/groups/{ref}")
    def update_group(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.update_group(ref, body.get("profile", body))

    @admin("DELETE", "/groups/{ref}")
    def delete_group(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.delete_group(ref)

    @admin("POST", "/groups/{ref}/members")
    def members(body: dict[str, Any], request: Request, ref: str) -> dict[str, Any]:
        return sandbox.change_members(ref, body.get("add", []), body.get("remove", []))

    @admin("POST", "/faults")
    def add_fault(body: dict[str, Any], request: Request) -> tuple[dict[str, Any], int]:
        unknown = set(body) - {f.name for f in fields(Fault)}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = Fault(**body)
        if fault.kind == "error" and "status" not in body:
            fault.status = 503
        sandbox.inject(fault)
        return asdict(fault), 201

    @admin("DELETE", "/faults")
    def clear_faults(body: dict[str, Any], request: Request) -> dict[str, Any]:
        with sandbox._lock:
            sandbox.faults.clear()
        return {"faults": 0}

    @admin("PUT", "/permissions")
    def permissions(body: dict[str, Any], request: Request) -> dict[str, Any]:
        """`{"client_id"?, "scopes"?, "permissions"?}`: a service app's grants, or the API token's role."""
        return sandbox.set_permissions(
            client_id=body.get("client_id"), scopes=body.get("scopes"), permissions=body.get("permissions")
        )

    @admin("POST", "/keys")
    def register_key(body: dict[str, Any], request: Request) -> dict[str, Any]:
        kid = sandbox.register_key(
            body.get("client_id") or sandbox.client_id, str(body["private_key"]), body.get("kid")
        )
        return {"kid": kid}

    @admin("POST", "/tokens/revoke")
    def revoke(body: dict[str, Any], request: Request) -> dict[str, Any]:
        sandbox.revoke_api_token()
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


def _with(response: Response, headers: Mapping[str, str]) -> Response:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _linked(items: list[Any], links: Mapping[str, str]) -> Response:
    """A JSON list with one `Link` header line per relation, as Okta sends them."""
    response = JSONResponse(items)
    for rel, url in links.items():
        response.headers.append("link", f'<{url}>; rel="{rel}"')
    return response


def _rate_limited() -> OktaError:
    return OktaError(429, "E0000047", "API call exceeded rate limit due to too many requests.")


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "forbidden":
        return okta_error_response(
            OktaError(403, "E0000006", "You do not have permission to perform the requested action")
        )
    if fault.kind == "log_window":
        return okta_error_response(
            OktaError(400, "E0000053", "Invalid search criteria. since must be within the last 180 days")
        )
    if fault.kind == "concurrency":
        # The concurrency limit: limit and remaining 0, the reset only an estimate.
        headers = {
            "X-Rate-Limit-Limit": "0",
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": str(int(time.time()) + 1),
        }
        return okta_error_response(
            OktaError(429, "E0000047", "API call exceeded rate limit due to too many requests.", headers=headers)
        )
    if fault.kind == "throttle":
        reset = {
            "X-Rate-Limit-Limit": "600",
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": str(int(time.time()) + 1),
        }
        error = _rate_limited()
        error.headers = reset
        return okta_error_response(error)
    if fault.status >= 500:
        return okta_error_response(OktaError(fault.status, "E0000009", "Internal Server Error"))
    return okta_error_response(OktaError(fault.status, "E0000001", "Api validation failed"))


def _not_found(ref: str) -> OktaError:
    return OktaError(404, "E0000007", f"Not found: Resource not found: {ref} (UserGroup)")


def _by_login(sandbox: OktaSandbox, ref: str) -> dict[str, Any]:
    try:
        return sandbox.user(ref)
    except KeyError:
        raise OktaError(404, "E0000007", f"Not found: Resource not found: {ref} (User)") from None


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise OktaError(400, "E0000001", f"Api validation failed: limit {raw!r} is not a positive number")
    return min(int(raw), maximum)


def _date_param(raw: str | None, default: datetime) -> datetime:
    if not raw:
        return default
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise OktaError(400, "E0000053", f"Invalid search criteria. {raw!r} is not a date") from None


def _base(request: Request) -> str:
    parts = urlsplit(str(request.base_url))
    return f"{parts.scheme}://{parts.netloc}"
