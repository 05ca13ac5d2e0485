"""Endpoints: loopback means a loopback address, the API and UI keep to public or allowed origins, and a read
stays on the origin it started with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.connectors.http import HttpClient, HttpOptions, RetryPolicy
from accessiq.endpoints import EndpointAllowList, is_loopback
from accessiq.errors import ConfigurationError, SourceError
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, GraphBehaviour, create_app
from accessiq.services import directories as dirs
from accessiq.services import runs
from accessiq.store.database import Store
from accessiq.store.tables import Cursor

from .conftest import ServeApi
from .kit import BODY, Listener, entra_document, refused_field


@pytest.fixture
def graph() -> Iterator[tuple[EntraSandbox, str]]:
    """A Graph sandbox on 127.0.0.1 whose pages are small, so a read follows nextLinks."""
    sandbox = EntraSandbox(12, 2, seed=5, behaviour=GraphBehaviour(page_min=2, page_max=3, empty_page_rate=0))
    with SandboxServer(create_app(sandbox)) as server:
        yield sandbox, server.url


def _connect(api: Any, graph: tuple[EntraSandbox, str]) -> None:
    """Connect the sandbox through the API, as the Contoso directory."""
    sandbox, url = graph
    document = entra_document(url, sandbox.client_secret)
    document["connection"].update(tenant_id=sandbox.tenant_id, client_id=sandbox.client_id)
    response = api("POST", "/api/v1/directories", json=document)
    assert response.status_code == 201, response.text


def _sync(api: Any, store: Store) -> dict[str, Any]:
    queued = api("POST", "/api/v1/directories/Contoso/sync", json={})
    assert queued.status_code == 202, queued.text
    runs.run_now(store, queued.json()["id"])
    return dict(api("GET", f"/api/v1/runs/{queued.json()['id']}").json())


# ------------------------------------------------------------------ loopback


@pytest.mark.parametrize("host", ["127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "127.1"])
def test_a_look_alike_host_is_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigurationError) as refused:
        EntraConnection.model_validate(
            {"tenant_id": "t", "client_id": "c", "client_secret": "s", "authority_url": f"http://{host}"}
        )
    assert refused.value.field == "connection.authority_url"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_real_loopback_addresses_may_use_plain_http(host: str) -> None:
    assert is_loopback(host)
    assert EntraConnection.model_validate(
        {"tenant_id": "t", "client_id": "c", "client_secret": "s", "graph_url": f"http://{host}:8899"}
    ).graph_url == (f"http://{host}:8899")


def test_the_api_refuses_a_look_alike_loopback_host(serve: ServeApi) -> None:
    api = serve(allowed_endpoints=["http://127.0.0.1:*"])
    response = api("POST", "/api/v1/directories", json=entra_document("http://127.evil.example:8898", "s"))
    assert refused_field(response) == "connection.authority_url"


# ------------------------------------------------------------------ public or allowed endpoints


def test_non_public_endpoints_are_refused_through_the_api(serve: ServeApi, listener: Listener) -> None:
    api = serve()
    sign_in = entra_document(listener.url, "s")
    graph_only = {
        **sign_in,
        "connection": {**sign_in["connection"], "authority_url": "https://login.microsoftonline.com"},
    }

    by_authority = api("POST", "/api/v1/directories", json=sign_in)
    by_graph = api("POST", "/api/v1/directories", json=graph_only)

    assert refused_field(by_authority) == "connection.authority_url"
    assert "ACCESSIQ_ALLOWED_ENDPOINTS" in by_authority.json()["error"]["hint"]
    assert refused_field(by_graph) == "connection.graph_url"
    assert listener.requests == []


def test_public_endpoints_need_no_allowance(serve: ServeApi) -> None:
    api = serve()
    us_government = entra_document("https://login.microsoftonline.us", "s")
    us_government["connection"]["graph_url"] = "https://graph.microsoft.us"
    default = entra_document("https://login.microsoftonline.com", "s", name="Global")
    del default["connection"]["authority_url"], default["connection"]["graph_url"]

    assert api("POST", "/api/v1/directories", json=us_government).status_code == 201
    assert api("POST", "/api/v1/directories", json=default).status_code == 201


@pytest.mark.parametrize("entry", ["{url}", "http://127.0.0.2:*"])
def test_allow_listed_endpoints_are_accepted(serve: ServeApi, listener: Listener, entry: str) -> None:
    api = serve(allowed_endpoints=[entry.format(url=listener.url)])
    response = api("POST", "/api/v1/directories", json=entra_document(listener.url, "s"))
    assert response.status_code == 201, response.text
    assert response.json()["connection"]["authority_url"] == listener.url


def test_another_port_of_an_allowed_host_is_still_refused(serve: ServeApi, listener: Listener) -> None:
    api = serve(allowed_endpoints=["http://127.0.0.2:1"])
    response = api("POST", "/api/v1/directories", json=entra_document(listener.url, "s"))
    assert refused_field(response) == "connection.authority_url"


# ------------------------------------------------------------------ a read stays on its origin


def test_a_foreign_next_link_fails_the_run_and_the_listener_gets_no_token(
    serve: ServeApi, store: Store, graph: tuple[EntraSandbox, str], listener: Listener
) -> None:
    api = serve(allowed_endpoints=["http://127.0.0.1:*"])
    _connect(api, graph)
    graph[0].behaviour.link_base = listener.url

    run = _sync(api, store)

    assert run["status"] == "failed"
    assert "outside" in run["errors"][0]["message"] and listener.url in run["errors"][0]["message"]
    assert not any("authorization" in {k.lower() for k in r.headers} for r in listener.requests)
    assert listener.requests == []
    assert run["counts"]["users_created"] == 0


def test_a_foreign_delta_link_fails_the_run_and_is_never_stored(
    serve: ServeApi, store: Store, graph: tuple[EntraSandbox, str], listener: Listener
) -> None:
    # Pages large enough for the whole tenant: the first page carries the deltaLink, no nextLink.
    graph[0].behaviour = GraphBehaviour(page_min=500, page_max=500, group_page_max=500, empty_page_rate=0)
    graph[0].behaviour.member_budget_min = graph[0].behaviour.member_budget_max = 500
    api = serve(allowed_endpoints=["http://127.0.0.1:*"])
    _connect(api, graph)
    graph[0].behaviour.link_base = listener.url

    run = _sync(api, store)

    assert run["status"] == "failed"
    assert "outside" in run["errors"][0]["message"]
    with store.transaction() as session:
        assert session.get(Cursor, dirs.get_directory(session, "Contoso").id) is None
    assert listener.requests == []


def test_a_request_off_the_configured_origin_is_never_sent(listener: Listener) -> None:
    """The HTTP core's own check, behind every link a provider module follows (and MSAL's token endpoint)."""
    with Listener(host="127.0.0.3") as elsewhere:
        client = HttpClient("Microsoft Graph", HttpOptions(timeout=5), origin=listener.url)
        with pytest.raises(SourceError, match="refusing to send a request"):
            client.request("GET", f"{elsewhere.url}/v1.0/users", headers={"Authorization": "Bearer the-token"})
        client.close()
    assert elsewhere.requests == []


# ------------------------------------------------------------------ error messages


def _checked_against(listener: Listener, allowed: list[str]) -> str:
    """The error `check` raises when the listener signs in but answers Graph with a 404 page."""
    connector = EntraConnector(
        EntraConnection.model_validate(
            {
                "tenant_id": "contoso.example",
                "client_id": "c",
                "client_secret": "s",
                "authority_url": listener.url,
                "graph_url": listener.url,
            }
        ),
        http=HttpOptions(timeout=5, retry=RetryPolicy(attempts=1)),
        allowed_endpoints=EndpointAllowList.parse(allowed),
    )
    try:
        with pytest.raises(SourceError) as failed:
            connector.check()
    finally:
        connector.close()
    return str(failed.value)


def test_errors_quote_no_answer_from_an_endpoint_outside_the_allow_list(listener: Listener) -> None:
    message = _checked_against(listener, [])
    assert "404" in message and BODY not in message
    assert "ACCESSIQ_ALLOWED_ENDPOINTS" in message


def test_errors_quote_the_answer_of_an_allowed_endpoint(listener: Listener) -> None:
    assert BODY in _checked_against(listener, [listener.url])
