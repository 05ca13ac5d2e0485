"""A running Google Workspace sandbox for tests: one server per module, reseeded before each test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

from accessiq.connectors.google import GoogleConnection, GoogleConnector
from accessiq.connectors.http import HttpOptions, RetryPolicy
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.google import GoogleBehaviour, GoogleSandbox
from accessiq.sandbox.google_app import create_app

# Small pages so every paging path runs on a small account.
TEST_BEHAVIOUR = GoogleBehaviour(users_max=7, groups_max=4, members_max=5)
TEST_USERS, TEST_GROUPS, TEST_SEED = 60, 16, 5


@dataclass
class GoogleKit:
    """The sandbox object (in-process), its URL, and helpers to build connectors against it."""

    sandbox: GoogleSandbox
    url: str
    sleeps: list[float] = field(default_factory=list)
    connectors: list[GoogleConnector] = field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def key(self) -> str:
        return json.dumps(self.sandbox.service_account_key(self.token_url))

    def settings(self, **overrides: Any) -> GoogleConnection:
        values: dict[str, Any] = {
            "service_account": self.key(),
            "admin_email": self.sandbox.admin_email,
            "api_url": self.url,
            "token_url": self.token_url,
        }
        values.update(overrides)
        return GoogleConnection.model_validate(values)

    def http_options(self, **overrides: Any) -> HttpOptions:
        # Sleeps are recorded instead of slept, so retry tests run at full speed.
        options = HttpOptions(timeout=5.0, retry=RetryPolicy(attempts=4), sleep=self.sleeps.append, jitter=lambda: 0.5)
        return replace(options, **overrides)

    def connector(
        self,
        *,
        org_units: tuple[str, ...] = (),
        fields: tuple[str, ...] = (),
        http: HttpOptions | None = None,
        **overrides: Any,
    ) -> GoogleConnector:
        connector = GoogleConnector(self.settings(**overrides), fields=fields, http=http or self.http_options())
        connector.org_units = org_units
        self.connectors.append(connector)
        return connector

    def queries(self, path: str) -> list[dict[str, list[str]]]:
        """The query parameters of every request to `path` (`users`, `groups`), in order."""
        full = f"/admin/directory/v1/{path}"
        return [parse_qs(r.query) for r in self.sandbox.requests if r.path == full]

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()


@contextmanager
def google_server() -> Iterator[tuple[GoogleSandbox, str]]:
    sandbox = GoogleSandbox(TEST_USERS, TEST_GROUPS, seed=TEST_SEED, behaviour=replace(TEST_BEHAVIOUR))
    with SandboxServer(create_app(sandbox)) as server:
        yield sandbox, server.url


@contextmanager
def fresh_google(server: tuple[GoogleSandbox, str]) -> Iterator[GoogleKit]:
    """The shared server reseeded to its initial account, with test behaviour and no faults."""
    sandbox, url = server
    sandbox.reset()
    sandbox.behaviour = replace(TEST_BEHAVIOUR)
    kit = GoogleKit(sandbox, url)
    try:
        yield kit
    finally:
        kit.close()
