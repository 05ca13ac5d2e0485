"""Request dependencies as `Annotated` aliases: the store, a transaction, the caller's API token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from accessiq.api import auth
from accessiq.api.errors import ForbiddenError, NotAuthenticatedError
from accessiq.api.launcher import RunLauncher
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store

_bearer = HTTPBearer(auto_error=False, description="An API token from `accessiq tokens create` or the web UI")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_launcher(request: Request) -> RunLauncher:
    launcher: RunLauncher = request.app.state.launcher
    return launcher


def get_input_policy(request: Request) -> InputPolicy:
    """What documents coming through the API or the web UI may reach: the operator's settings decide."""
    return InputPolicy.from_settings(request.app.state.settings)


StoreDep = Annotated[Store, Depends(get_store)]
LauncherDep = Annotated[RunLauncher, Depends(get_launcher)]
PolicyDep = Annotated[InputPolicy, Depends(get_input_policy)]


def get_session(store: StoreDep) -> Iterator[Session]:
    """One transaction for the route; it commits before the response is sent, or rolls back."""
    with store.transaction() as session:
        yield session


# scope="function": commit before the response goes out, so a failed commit is a failed request.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


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
) -> Caller:
    """The caller's live API token; 401 without one, 403 when a read-only token asks to change something."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise NotAuthenticatedError(
            "an API token is required",
            hint="send `Authorization: Bearer <token>`; create one with `accessiq tokens create`",
        )
    # A transaction of its own: routes that run syncs must not find the store locked by their caller check.
    with store.transaction() as session:
        token = auth.token_for(session, credentials.credentials)
        if token is None:
            raise NotAuthenticatedError("the API token is unknown or revoked")
        caller = Caller(token.id, token.name, token.scope)
    if request.method not in _SAFE_METHODS and caller.scope != "write":
        raise ForbiddenError(f"token {caller.name!r} is read-only", hint="use a token with scope write")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_metrics_caller(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller | None:
    """Who scrapes /metrics: any live API token when the app requires one there (ACCESSIQ_METRICS_AUTH)."""
    if not request.app.state.metrics_token_required:
        return None
    return get_caller(request, store, credentials)


def plain_reference(value: str | None) -> str | None:
    """Refuse references that look like ids but are not ASCII digits (`²`): the lookups would choke on them."""
    if value is not None and value.isdigit() and not value.isascii():
        raise ValueError(f"{value!r} is neither an id nor a name")
    return value


PlainRef = AfterValidator(plain_reference)


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
