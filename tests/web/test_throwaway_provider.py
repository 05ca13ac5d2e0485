"""Adding a provider is one connector module: a throwaway one, written into tmp_path and registered at
test time, shows up in the Add Directory wizard (every field kind, by its label), in
`GET /api/v1/providers` with its JSON schema, and in `accessiq providers`; nothing in a face changes."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_steps import Server, create_admin, shot, sign_in
from fastapi.testclient import TestClient
from starlette.datastructures import FormData, UploadFile
from typer.testing import CliRunner

from accessiq import connectors
from accessiq.errors import ConfigurationError
from accessiq.server import create_app
from accessiq.services import accounts, configure, providers
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document
from accessiq.web import forms

MODULE = "accessiq_throwaway_provider"
CONNECTOR = '''
"""A throwaway provider: the file provider behind a connection with one field of each kind."""

from typing import ClassVar, Literal

from pydantic import Field

from accessiq.connectors.file import FileConnection, FileConnector


class ThrowawayConnection(FileConnection):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key", "signing_key")

    api_key: str = Field(title="Throwaway API key", description="The key the throwaway service issued.")
    signing_key: str | None = Field(
        default=None,
        title="Signing key (PEM)",
        description="The PEM the throwaway service signs with.",
        json_schema_extra={"kind": "multiline_secret"},
    )
    search_bases: list[str] = Field(
        default_factory=list, title="Search bases", description="Where to look for people."
    )
    region: Literal["eu", "us", "apac"] = Field(default="eu", title="Data region", description="Where it lives.")
    audit: bool = Field(default=False, title="Verbose audit trail", description="Log every read.")


class ThrowawayConnector(FileConnector):
    provider = "throwaway"
    title = "Throwaway Directory"
    description = "A provider written at test time, to prove the faces read the catalog."
    settings_model = ThrowawayConnection


class UninstalledConnector(ThrowawayConnector):
    provider = "throwaway-missing"
    title = "Throwaway Uninstalled"
    description = "A provider whose optional dependency this server lacks."
    requires = ("accessiq_no_such_dependency",)
    install_hint = "pip install accessiq-throwaway"
'''
LABELS = {
    "path": "Snapshot file",
    "api_key": "Throwaway API key",
    "signing_key": "Signing key (PEM)",
    "search_bases": "Search bases",
    "region": "Data region",
    "audit": "Verbose audit trail",
}
PEM = "-----BEGIN PRIVATE KEY-----\nTHROWAWAY\n-----END PRIVATE KEY-----"


@pytest.fixture
def throwaway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The throwaway connector module on sys.path, registered as `throwaway` and `throwaway-missing`."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"{MODULE}.py").write_text(textwrap.dedent(CONNECTOR))
    monkeypatch.syspath_prepend(str(plugins))
    connectors.register_provider("throwaway", f"{MODULE}:ThrowawayConnector")
    connectors.register_provider("throwaway-missing", f"{MODULE}:UninstalledConnector")
    yield
    connectors.unregister_provider("throwaway")
    connectors.unregister_provider("throwaway-missing")
    sys.modules.pop(MODULE, None)


def test_the_catalog_describes_each_field_kind(throwaway: None) -> None:
    fields = {f.name: f for f in providers.get_provider("throwaway").fields}
    assert {name: f.label for name, f in fields.items()} == LABELS
    assert {name: f.kind for name, f in fields.items()} == {
        "path": "file",
        "api_key": "secret",
        "signing_key": "multiline_secret",
        "search_bases": "list",
        "region": "choice",
        "audit": "boolean",
    }
    assert fields["region"].choices == ("eu", "us", "apac")
    missing = providers.find_provider("throwaway-missing")
    assert not missing.available and missing.install_hint == "pip install accessiq-throwaway"


def test_the_form_parses_every_field_kind_and_reads_a_key_file(throwaway: None) -> None:
    """Without the page's script, the key file itself is posted and read on the server."""
    form = FormData(
        [
            ("connection.path", " /srv/snapshots/people.json "),
            ("connection.api_key", "tk-1"),
            ("connection.signing_key", ""),
            ("connection.signing_key.file", UploadFile(io.BytesIO(PEM.encode() + b"\n"), filename="key.pem")),
            ("connection.search_bases", "ou=people\n\n  ou=staff  \n"),
            ("connection.region", "apac"),
            ("connection.audit", "on"),
        ]
    )
    values = forms.connection_values(form, configure.connection_fields("throwaway"))
    assert values == {
        "path": "/srv/snapshots/people.json",
        "api_key": "tk-1",
        "signing_key": PEM,
        "search_bases": ["ou=people", "ou=staff"],
        "region": "apac",
        "audit": True,
    }
    unchecked = forms.connection_values(FormData([]), configure.connection_fields("throwaway"))
    assert unchecked["audit"] is False and unchecked["search_bases"] is None


def test_directories_apply_names_what_to_choose_or_install(
    throwaway: None, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`accessiq directories apply` validates a document the same way."""
    monkeypatch.setitem(connectors.PLANNED, "someday", ("Someday", "Not written yet."))
    problems = {}
    for provider in ("throwaway-missing", "someday", "nope"):
        document = validate_document({"name": "X", "provider": provider, "connection": {"path": "/x.json"}})
        with sqlite_store.transaction() as session, pytest.raises(ConfigurationError) as refused:
            dirs.apply_document(session, sqlite_store.secrets, document, policy=InputPolicy.operator())
        problems[provider] = str(refused.value)
    assert problems["throwaway-missing"] == (
        "provider: the throwaway-missing provider is not installed on this server (pip install accessiq-throwaway)"
    )
    assert problems["someday"].startswith("provider: provider 'someday' is planned but not available yet; choose one")
    assert problems["nope"].startswith("provider: unknown provider 'nope'; choose one of")
    for problem in (problems["someday"], problems["nope"]):
        choices = problem.split("choose one of ")[1].split(", ")
        assert "throwaway" in choices and "file" in choices and "throwaway-missing" not in choices


def test_the_api_lists_the_throwaway_provider_with_its_schema(throwaway: None, sqlite_store: Store) -> None:
    with sqlite_store.transaction() as session:
        token = accounts.create_token(session, "reader", scope="read").secret
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(sqlite_store), base_url="https://testserver") as client:
        listed = client.get("/api/v1/providers", headers=headers)
        one = client.get("/api/v1/providers/throwaway", headers=headers)
        missing = client.get("/api/v1/providers/throwaway-missing", headers=headers)
        unknown = client.get("/api/v1/providers/nope", headers=headers)
    assert listed.status_code == 200, listed.text
    found = {p["name"]: p for p in listed.json()}
    assert found["throwaway"] == one.json()
    schema = one.json()["connection_schema"]
    assert one.json()["title"] == "Throwaway Directory" and one.json()["available"] is True
    assert set(schema["properties"]) == set(LABELS)
    assert schema["properties"]["signing_key"]["kind"] == "multiline_secret"
    assert schema["properties"]["region"]["enum"] == ["eu", "us", "apac"]
    assert schema["required"] == ["path", "api_key"]
    assert missing.json()["available"] is False
    assert missing.json()["install_hint"] == "pip install accessiq-throwaway"
    assert unknown.status_code == 404 and "throwaway" in unknown.json()["error"]["message"] + str(
        unknown.json()["error"].get("hint")
    )


def test_the_cli_lists_and_shows_the_throwaway_provider(throwaway: None) -> None:
    # In process: a subprocess would not see a provider registered by this test.
    from accessiq.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["providers", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    found = {p["name"]: p for p in json.loads(listed.output)}
    assert found["throwaway"]["title"] == "Throwaway Directory"
    assert found["throwaway-missing"]["available"] is False
    assert found["throwaway-missing"]["install_hint"] == "pip install accessiq-throwaway"
    table = runner.invoke(app, ["providers", "list"])
    assert table.exit_code == 0 and "throwaway" in table.output, table.output
    shown = runner.invoke(app, ["providers", "show", "throwaway"])
    assert shown.exit_code == 0, shown.output
    assert "Throwaway Directory" in shown.output
    assert "  signing_key: Signing key (PEM) (multiline_secret, optional)" in shown.output
    for name, label in LABELS.items():
        assert f"  {name}: {label} (" in shown.output
    unknown = runner.invoke(app, ["providers", "show", "nope"])
    assert unknown.exit_code != 0


def test_the_wizard_offers_the_throwaway_provider_and_renders_each_field_kind(
    throwaway: None, page: Any, server: Server, snapshot: Any, tmp_path: Path
) -> None:
    snapshot.user("u0", "ann@example.com")
    path = snapshot.write()
    key_file = tmp_path / "signing.pem"
    key_file.write_text(PEM + "\n")
    create_admin(server.store)
    sign_in(page)

    page.click("#add-directory")
    page.fill("#name", "Throwaway Co")
    card = page.locator("label.choice", has_text="Throwaway Directory")
    assert "written at test time" in card.inner_text()
    unavailable = page.locator("label.choice", has_text="Throwaway Uninstalled")
    assert "pip install accessiq-throwaway" in unavailable.inner_text()
    assert unavailable.locator("input").is_disabled()
    for provider in providers.catalog():
        if not provider.available:
            assert "Not available" in page.locator("label.choice", has_text=provider.title).inner_text()
    card.click()
    shot(page, "50-throwaway-provider-card")
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/directories/new/credentials*")
    assert page.inner_text("h2") == "Throwaway Directory credentials"
    form = page.locator("form.card")
    text = form.inner_text()
    assert all(label in text for label in LABELS.values())
    assert not any(name in text for name in ("api_key", "signing_key", "search_bases"))  # labels, not names
    assert "stored" not in text
    api_key = page.get_by_label("Throwaway API key")
    assert api_key.get_attribute("type") == "password" and not api_key.get_attribute("placeholder")
    signing = page.get_by_label("Signing key (PEM) (optional)", exact=True)
    assert signing.evaluate("e => e.tagName") == "TEXTAREA"
    assert page.get_by_label("Search bases").evaluate("e => e.tagName") == "TEXTAREA"
    assert page.get_by_label("Data region").evaluate("e => e.tagName") == "SELECT"
    assert page.get_by_label("Verbose audit trail").get_attribute("type") == "checkbox"

    page.get_by_label("Snapshot file").fill(str(path))
    api_key.fill("tk-123")
    page.get_by_label("Signing key (PEM): choose a file").set_input_files(str(key_file))
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    # The page's CSP forbids eval, so wait through the locator rather than wait_for_function.
    expect(signing).to_have_value(PEM)
    page.get_by_label("Search bases").fill("ou=people\nou=staff")
    page.get_by_label("Data region").select_option("us")
    page.get_by_label("Verbose audit trail").check()
    shot(page, "51-throwaway-credentials")
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()

    with server.store.transaction() as session:
        directory = dirs.get_directory(session, "Throwaway Co")
        connection = dict(directory.connection or {})
        stored = configure.stored_secrets(server.store.secrets, directory)
        secrets = server.store.secrets.open(directory.secrets)
        directory_id = directory.id
    assert connection == {"path": str(path), "search_bases": ["ou=people", "ou=staff"], "region": "us", "audit": True}
    assert stored == {"api_key", "signing_key"}
    assert secrets == {"api_key": "tk-123", "signing_key": PEM}

    page.goto(f"/directories/{directory_id}/connection")
    for label in ("Throwaway API key", "Signing key (PEM) (optional)"):
        assert "stored — leave empty to keep" in (
            page.get_by_label(label, exact=True).get_attribute("placeholder") or ""
        )
    assert page.get_by_label("Search bases").input_value() == "ou=people\nou=staff"
    assert page.get_by_label("Data region").input_value() == "us"
    assert page.get_by_label("Verbose audit trail").is_checked()
    shot(page, "52-throwaway-connection")
    page.get_by_label("Data region").select_option("apac")
    page.get_by_role("button", name="Save connection").click()
    page.get_by_text("Connection saved and tested.").wait_for()
    with server.store.transaction() as session:
        directory = dirs.get_directory(session, directory_id)
        assert (directory.connection or {})["region"] == "apac"
        assert server.store.secrets.open(directory.secrets) == {"api_key": "tk-123", "signing_key": PEM}
