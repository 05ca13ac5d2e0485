"""A running Okta sandbox for tests: one server per session, reseeded before each test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from accessiq.connectors.http import HttpOptions, RetryPolicy
from accessiq.connectors.okta import OktaConnection, OktaConnector
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.okta import OktaBehaviour, OktaSandbox
from accessiq.sandbox.okta_app import create_app

# Small pages so every paging path runs on a small org.
TEST_BEHAVIOUR = OktaBehaviour(users_limit_max=7, groups_limit_max=4, members_limit_max=5)
TEST_USERS, TEST_GROUPS, TEST_SEED = 60, 16, 5


@dataclass
class OktaKit:
    """The sandbox object (in-process), its URL, and helpers to build connectors against it."""

    sandbox: OktaSandbox
    url: str
    sleeps: list[float] = field(default_factory=list)
    connectors: list[OktaConnector] = field(default_factory=list)

    def settings(self, **overrides: Any) -> OktaConnection:
        values: dict[str, Any] = {"org_url": self.url, "api_token": self.sandbox.api_token}
        values.update(overrides)
        return OktaConnection.model_validate({k: v for k, v in values.items() if v is not None})

    def http_options(self, **overrides: Any) -> HttpOptions:
        # Sleeps are recorded instead of slept, so retry tests run at full speed.
        options = HttpOptions(timeout=5.0, retry=RetryPolicy(attempts=4), sleep=self.sleeps.append, jitter=lambda: 0.5)
        return replace(options, **overrides)

    def connector(self, *, http: HttpOptions | None = None, **overrides: Any) -> OktaConnector:
        connector = OktaConnector(self.settings(**overrides), http=http or self.http_options())
        self.connectors.append(connector)
        return connector

    def client(self) -> httpx.Client:
        """A raw HTTP client with the API token, for wire-level assertions."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"SSWS {self.sandbox.api_token}"}, timeout=10)

    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/_admin{path}", json=body, params=params or None, timeout=10)

    def api_requests(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.sandbox.requests if r.path.startswith("/api/")]

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()


@contextmanager
def okta_server() -> Iterator[tuple[OktaSandbox, str]]:
    sandbox = OktaSandbox(TEST_USERS, TEST_GROUPS, seed=TEST_SEED, behaviour=replace(TEST_BEHAVIOUR))
    with SandboxServer(create_app(sandbox)) as server:
        yield sandbox, server.url


@contextmanager
def fresh_okta(server: tuple[OktaSandbox, str]) -> Iterator[OktaKit]:
    """The shared server reseeded to its initial org, with test behaviour and no faults."""
    sandbox, url = server
    sandbox.reset()
    sandbox.behaviour = replace(TEST_BEHAVIOUR)
    kit = OktaKit(sandbox, url)
    try:
        yield kit
    finally:
        kit.close()
