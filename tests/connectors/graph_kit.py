"""A running Graph sandbox for tests: one server per session, reseeded before each test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.connectors.http import HttpOptions, RetryPolicy
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, GraphBehaviour, create_app

# Small pages, frequent empty pages and replays: every paging path runs on a small directory.
TEST_BEHAVIOUR = GraphBehaviour(
    page_min=3,
    page_max=25,
    group_page_max=5,
    member_budget_min=3,
    member_budget_max=15,
    empty_page_rate=0.15,
    replay_rate=0.3,
)
TEST_USERS, TEST_GROUPS, TEST_SEED, TEST_DEPARTED = 80, 16, 11, 3


@dataclass
class GraphKit:
    """The sandbox object (in-process), its URL, and helpers to build connectors against it."""

    sandbox: EntraSandbox
    url: str
    sleeps: list[float] = field(default_factory=list)
    connectors: list[EntraConnector] = field(default_factory=list)

    def settings(self, **overrides: Any) -> EntraConnection:
        values: dict[str, Any] = {
            "tenant_id": self.sandbox.tenant_id,
            "client_id": self.sandbox.client_id,
            "client_secret": self.sandbox.client_secret,
            "authority_url": self.url,
            "graph_url": self.url,
        }
        values.update(overrides)
        return EntraConnection.model_validate({k: v for k, v in values.items() if v is not None})

    def http_options(self, **overrides: Any) -> HttpOptions:
        # Sleeps are recorded instead of slept, so retry tests run at full speed.
        options = HttpOptions(
            timeout=5.0, retry=RetryPolicy(attempts=4), sleep=self.sleeps.append, jitter=lambda: 0.5
        )
        return replace(options, **overrides)

    def connector(
        self, *, fields: tuple[str, ...] = (), http: HttpOptions | None = None, **overrides: Any
    ) -> EntraConnector:
        connector = EntraConnector(
            self.settings(**overrides), fields=fields, http=http or self.http_options()
        )
        self.connectors.append(connector)
        return connector

    def token(self, client_id: str | None = None, secret: str | None = None) -> str:
        response = httpx.post(
            f"{self.url}/{self.sandbox.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id or self.sandbox.client_id,
                "client_secret": secret or self.sandbox.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client(self) -> httpx.Client:
        """A raw HTTP client with a valid bearer token, for wire-level assertions."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token()}"}, timeout=10
        )

    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/_admin{path}", json=body, params=params or None, timeout=10)

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()


@contextmanager
def graph_server() -> Iterator[tuple[EntraSandbox, str]]:
    sandbox = EntraSandbox(
        TEST_USERS, TEST_GROUPS, seed=TEST_SEED, departed=TEST_DEPARTED, behaviour=replace(TEST_BEHAVIOUR)
    )
    with SandboxServer(create_app(sandbox)) as server:
        yield sandbox, server.url


@contextmanager
def fresh_kit(server: tuple[EntraSandbox, str]) -> Iterator[GraphKit]:
    """The shared server reseeded to its initial directory, with default behaviour and no faults."""
    sandbox, url = server
    sandbox.reset()
    sandbox.behaviour = replace(TEST_BEHAVIOUR)
    kit = GraphKit(sandbox, url)
    try:
        yield kit
    finally:
        kit.close()
