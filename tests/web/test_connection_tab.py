"""The Connection tab tests what is on the screen, not what is saved, and saving a connection that fails its
test asks first; the credentials forms read labels, help and "one of" from the connector's description."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_steps import Server, applied_directory, create_admin, entra_directory, shot, sign_in

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app, make_certificate
from accessiq.services import directories as dirs


@pytest.fixture
def graph() -> Iterator[tuple[EntraSandbox, str]]:
    sandbox = EntraSandbox(12, 3, seed=5)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


def _stored_secret(server: Server, directory: int) -> str:
    with server.store.transaction() as session:
        found = dirs.get_directory(session, directory)
        return str(server.store.secrets.open(found.secrets)["client_secret"])


@pytest.fixture
def on_connection_tab(page: Any, server: Server, graph: tuple[EntraSandbox, str]) -> tuple[EntraSandbox, int]:
    """An Entra directory over the Graph sandbox, its Connection tab open with a wrong secret typed (unsaved)."""
    sandbox, url = graph
    directory = entra_directory(server.store, sandbox, url)
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{directory}/connection")
    page.fill("#connection-client_secret", "not-the-secret")
    return sandbox, directory


def test_test_connection_tests_the_values_on_the_screen(
    page: Any, server: Server, on_connection_tab: tuple[EntraSandbox, int]
) -> None:
    sandbox, directory = on_connection_tab
    page.click("#test-connection")
    page.get_by_text("The directory refused the credentials.").wait_for()
    result = page.inner_text("#test-result")
    assert "AADSTS7000215" in result and "not saved yet" in result, result
    assert _stored_secret(server, directory) == sandbox.client_secret, "a test saves nothing"
    shot(page, "74-connection-test-uses-unsaved-values")

    # An empty secret box means the stored secret: that one works.
    page.fill("#connection-client_secret", "")
    page.click("#test-connection")
    page.get_by_text("Connection works.").wait_for()
    assert "Tested with the saved values." in page.inner_text("#test-result")

    # A wrong tenant typed but not saved is what the test uses.
    page.fill("#connection-tenant_id", "nobody.onmicrosoft.com")
    page.click("#test-connection")
    page.locator("#test-result .notice.error").wait_for()
    assert "Connection works." not in page.inner_text("#test-result")

    # Values that saving would refuse are never sent anywhere: an endpoint outside the allow-list.
    page.fill("#connection-graph_url", "https://graph.example.com")
    page.click("#test-connection")
    page.get_by_text("These values cannot be used.").wait_for()
    assert "is not a public endpoint of this provider" in page.inner_text("#test-result")


def test_saving_a_failing_connection_asks_first(
    page: Any, server: Server, on_connection_tab: tuple[EntraSandbox, int]
) -> None:
    sandbox, directory = on_connection_tab
    page.click("#save-connection")
    page.locator("#confirm-failing").wait_for()
    assert "Not saved: the connection test failed" in page.inner_text("#confirm-failing")
    assert "The directory refused the credentials." in page.inner_text("#test-result")
    assert _stored_secret(server, directory) == sandbox.client_secret
    # The secret typed is carried back sealed, never shown: the box says so and stays empty.
    assert page.input_value("#connection-client_secret") == ""
    assert "typed, not saved yet" in (page.get_attribute("#connection-client_secret", "placeholder") or "")
    assert "not-the-secret" not in page.content()
    shot(page, "75-connection-save-failing-asks-to-confirm")

    page.click("#save-anyway")
    page.get_by_text("Connection saved although its test failed").wait_for()
    assert _stored_secret(server, directory) == "not-the-secret"

    page.fill("#connection-client_secret", sandbox.client_secret)
    page.click("#save-connection")
    page.get_by_text("Connection saved and tested.").wait_for()
    assert _stored_secret(server, directory) == sandbox.client_secret


def test_entra_credentials_read_the_connector_description_and_take_a_pem_file(
    page: Any, server: Server, graph: tuple[EntraSandbox, str], tmp_path: Path
) -> None:
    sandbox, url = graph
    pem = make_certificate(key_size=1024)
    sandbox.register_app(sandbox.client_id, certificate_pem=pem)
    bundle = tmp_path / "app.pem"
    bundle.write_text(pem)
    create_admin(server.store)
    sign_in(page)

    page.goto("/directories/new/credentials?name=Contoso&provider=entra")
    form = page.inner_text("main form.card")
    for label in (
        "Directory (tenant) ID",
        "Application (client) ID",
        "Client secret (this or Certificate is required)",
        "Certificate (this or Client secret is required)",
        "Sign-in endpoint (national clouds) (optional)",
        "Microsoft Graph endpoint (optional)",
    ):
        assert label in form, label
    for key in ("tenant_id", "client_id", "client_secret", "authority_url", "graph_url", "stored"):
        assert key not in form, key
    assert page.locator("textarea#connection-certificate").count() == 1

    page.fill("#connection-tenant_id", sandbox.tenant_domain)
    page.fill("#connection-client_id", sandbox.client_id)
    page.fill("#connection-authority_url", url)
    page.fill("#connection-graph_url", url)
    page.get_by_role("button", name="Save and test connection").click()
    beside = page.locator("[data-error-for='connection.client_secret']")
    beside.wait_for()
    assert beside.inner_text() == (
        "Give exactly one credential, a client secret or a certificate (PEM private key and certificate): "
        "one of the two is required."
    )
    assert "client_secret" not in page.inner_text("main")
    assert page.input_value("#connection-tenant_id") == sandbox.tenant_domain

    # A PEM file chosen beside the certificate box fills it, line breaks and all.
    page.set_input_files("#connection-certificate-file", str(bundle))
    page.wait_for_function("document.getElementById('connection-certificate').value.includes('END CERTIFICATE')")
    assert page.input_value("#connection-certificate") == pem.strip()
    shot(page, "76-entra-credentials-labels-and-pem")
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()

    with server.store.transaction() as session:
        created = dirs.get_directory(session, "Contoso")
        directory, secrets = created.id, server.store.secrets.open(created.secrets)
    assert secrets == {"certificate": pem.strip()}
    # Only the secret that was set shows as stored.
    page.goto(f"/directories/{directory}/connection")
    assert "stored" in (page.get_attribute("#connection-certificate", "placeholder") or "")
    assert "stored" not in (page.get_attribute("#connection-client_secret", "placeholder") or "")
    shot(page, "77-connection-only-the-set-secret-is-stored")


def test_a_secret_given_as_null_is_not_shown_as_stored(page: Any, server: Server) -> None:
    connection = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "client_secret": "a-secret",
        "certificate": None,
    }
    directory_id = applied_directory(server.store, {"name": "Contoso", "provider": "entra", "connection": connection})
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{directory_id}/connection")
    assert "stored" in (page.get_attribute("#connection-client_secret", "placeholder") or "")
    assert "stored" not in (page.get_attribute("#connection-certificate", "placeholder") or "")


def test_a_refused_new_directory_keeps_the_secret_typed(
    page: Any, server: Server, graph: tuple[EntraSandbox, str]
) -> None:
    sandbox, url = graph
    create_admin(server.store)
    sign_in(page)
    page.goto("/directories/new/credentials?name=Contoso&provider=entra")
    page.fill("#connection-tenant_id", sandbox.tenant_domain)
    page.fill("#connection-client_id", sandbox.client_id)
    page.fill("#connection-client_secret", sandbox.client_secret)
    page.fill("#connection-authority_url", url)
    page.fill("#connection-graph_url", f"{url}/v1.0")
    page.get_by_role("button", name="Save and test connection").click()

    beside = page.locator("[data-error-for='connection.graph_url']")
    beside.wait_for()
    assert beside.inner_text().startswith("Give the base URL only")
    assert page.input_value("#connection-graph_url") == f"{url}/v1.0"
    assert "typed, not saved yet" in (page.get_attribute("#connection-client_secret", "placeholder") or "")
    assert sandbox.client_secret not in page.content()
    shot(page, "78-wizard-credentials-refused-keeps-the-secret")

    page.fill("#connection-graph_url", url)
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    with server.store.transaction() as session:
        created = dirs.get_directory(session, "Contoso")
        assert server.store.secrets.open(created.secrets) == {"client_secret": sandbox.client_secret}
