"""The API's request dependencies as `Annotated` aliases: the caller's API token, paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accessiq.api.errors import ForbiddenError, NotAuthenticatedError
from accessiq.dependencies import StoreDep
from accessiq.services import Store, accounts

_bearer = HTTPBearer(auto_error=False, description="An API token from `accessiq tokens create` or the web UI")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the API token's id, name and scope."""

    token_id: int
    name: str
    scope: str


def get_caller(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    background: BackgroundTasks,
) -> Caller:
    """The caller's live API token; 401 without one, 403 when a read-only token asks to change something."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise NotAuthenticatedError(
            "an API token is required",
            hint="send `Authorization: Bearer <token>`; create one with `accessiq tokens create`",
        )
    # Only read here, so no call waits for a sync that is writing; the use is recorded after the answer.
    with store.read() as session:
        token = accounts.token_for(session, credentials.credentials)
        if token is None:
            raise NotAuthenticatedError("the API token is unknown or revoked")
        caller = Caller(token.id, token.name, token.scope)
        if accounts.token_use_due(token):
            background.add_task(_mark_used, store, token.id)
    if request.method not in _SAFE_METHODS and caller.scope != "write":
        raise ForbiddenError(f"token {caller.name!r} is read-only", hint="use a token with scope write")
    return caller


def _mark_used(store: Store, token_id: int) -> None:
    with store.transaction(write=True) as session:
        accounts.mark_token_used(session, token_id)


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_metrics_caller(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    background: BackgroundTasks,
) -> Caller | None:
    """Who scrapes /metrics: any live API token when the app requires one there (ACCESSIQ_METRICS_AUTH)."""
    if not request.app.state.metrics_token_required:
        return None
    return get_caller(request, store, credentials, background)


@dataclass(frozen=True)
class Page:
    """Which slice of a list to return."""

    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=500, description="How many items at most.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="How many items to skip.")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]
