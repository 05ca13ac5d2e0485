"""Request dependencies the ASGI faces share (API, web UI): the store, a transaction, the run launcher.

The composition root (`accessiq.server`) puts the store, settings and launcher on `app.state`;
these `Annotated` aliases hand them to routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from accessiq.services import Store
from accessiq.services.input_policy import InputPolicy
from accessiq.services.launcher import RunLauncher


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


def plain_reference(value: str | None) -> str | None:
    """Refuse references that look like ids but are not ASCII digits (`²`): the lookups would choke on them."""
    if value is not None and value.isdigit() and not value.isascii():
        raise ValueError(f"{value!r} is neither an id nor a name")
    return value


PlainRef = AfterValidator(plain_reference)
