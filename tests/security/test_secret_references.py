"""Secret references (`env:`, `file:`) are the operator's tool: through the API and the UI a secret is a value.

Issue #9: a `write` token could create an Entra directory whose client secret was
`file:<data dir>/accessiq.key` (or `env:ACCESSIQ_SECRET_KEY`, or any variable or
readable file) and whose endpoints were the attacker's listener; testing the
connection sent the server's master key there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.crypto import KEY_FILE
from accessiq.store.database import Store
from accessiq.sync.document import validate_document

from ..conftest import TEST_KEY
from .conftest import ServeApi
from .kit import Listener, admin_form, entra_document, refused_field

OTHER_SECRET = "s3cr3t-of-another-service"


def _key_file(data_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    return f"file:{data_dir / KEY_FILE}", TEST_KEY


def _master_key_variable(data_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ACCESSIQ_SECRET_KEY", TEST_KEY)
    return "env:ACCESSIQ_SECRET_KEY", TEST_KEY


def _any_variable(data_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("PAYROLL_DB_PASSWORD", OTHER_SECRET)
    return "env:PAYROLL_DB_PASSWORD", OTHER_SECRET


def _any_file(data_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    readable = elsewhere / "readable.txt"
    readable.write_text(OTHER_SECRET)
    return f"file:{readable}", OTHER_SECRET


@pytest.mark.parametrize(
    "reference",
    [_key_file, _master_key_variable, _any_variable, _any_file],
    ids=["key-file", "master-key-variable", "any-variable", "any-file"],
)
def test_a_write_token_cannot_send_a_server_secret_to_its_listener(
    serve: ServeApi,
    listener: Listener,
    data_dir: Path,
    elsewhere: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: Callable[[Path, Path, pytest.MonkeyPatch], tuple[str, str]],
) -> None:
    ref, secret = reference(data_dir, elsewhere, monkeypatch)
    # The listener's origin is allowed: the secret reference alone must stop the attack.
    api = serve(allowed_endpoints=[listener.url])

    created = api("POST", "/api/v1/directories", json=entra_document(listener.url, ref))
    tested = api("POST", "/api/v1/directories/Contoso/test")

    assert refused_field(created) == "connection.client_secret", created.text
    assert "accessiq directories apply" in created.json()["error"]["message"]
    assert "ACCESSIQ_ALLOWED_SECRET_REFS" in created.json()["error"]["hint"]
    assert tested.status_code == 404
    assert not listener.received(secret)


def test_allowed_prefixes_are_honoured_and_others_still_refused(
    serve: ServeApi, store: Store, listener: Listener, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_dir = elsewhere / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "contoso").write_text("from-a-file\n")
    monkeypatch.setenv("AIQ_CONTOSO", "from-a-variable")
    monkeypatch.setenv("OTHER_CONTOSO", "not-allowed")
    api = serve(allowed_endpoints=[listener.url], allowed_secret_refs=["env:AIQ_", f"file:{secrets_dir}/"])

    by_variable = api("POST", "/api/v1/directories", json=entra_document(listener.url, "env:AIQ_CONTOSO", "A"))
    by_file = api("POST", "/api/v1/directories", json=entra_document(listener.url, f"file:{secrets_dir}/contoso", "B"))
    outside = api("POST", "/api/v1/directories", json=entra_document(listener.url, "env:OTHER_CONTOSO", "C"))

    assert (by_variable.status_code, by_file.status_code) == (201, 201), (by_variable.text, by_file.text)
    with store.transaction() as session:
        stored = {name: store.secrets.open(dirs.get_directory(session, name).secrets) for name in ("A", "B")}
        exported = dirs.export_document(session, dirs.get_directory(session, "A"))
    assert stored == {"A": {"client_secret": "from-a-variable"}, "B": {"client_secret": "from-a-file"}}
    assert exported["connection"]["client_secret"] == "env:AIQ_CONTOSO"
    assert refused_field(outside) == "connection.client_secret"


def test_the_master_key_stays_out_of_reach_even_when_references_are_allowed(
    serve: ServeApi, listener: Listener, data_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCESSIQ_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("AIQ_COPY_OF_THE_KEY", TEST_KEY)
    allowed = elsewhere / "allowed"
    allowed.mkdir()
    (allowed / "link-to-key").symlink_to(data_dir / KEY_FILE)
    api = serve(
        allowed_endpoints=[listener.url],
        allowed_secret_refs=["env:", f"file:{data_dir}/", f"file:{allowed}/"],
    )

    for name, ref in [
        ("variable", "env:ACCESSIQ_SECRET_KEY"),
        ("lower-case", "env:accessiq_secret_key"),
        ("key-file", f"file:{data_dir / KEY_FILE}"),
        ("symlink", f"file:{allowed / 'link-to-key'}"),
        ("copy", "env:AIQ_COPY_OF_THE_KEY"),
    ]:
        response = api("POST", "/api/v1/directories", json=entra_document(listener.url, ref, name))
        assert refused_field(response) == "connection.client_secret", (name, response.text)
        assert "never available" in response.json()["error"]["message"], name
    assert api("POST", "/api/v1/directories/variable/test").status_code == 404
    assert not listener.received(TEST_KEY)


def test_the_operators_reference_is_kept_when_the_api_sends_the_export_back(
    serve: ServeApi, store: Store, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", "the-operators-secret")
    with store.transaction() as session:
        dirs.apply_document(
            session,
            store.secrets,
            validate_document(entra_document(listener.url, "env:CONTOSO_SECRET")),
            policy=InputPolicy.operator(),
        )
    monkeypatch.setenv("CONTOSO_SECRET", "changed-since")
    api = serve()

    exported = api("GET", "/api/v1/directories/Contoso/export").json()
    replaced = api("PUT", "/api/v1/directories/Contoso", json=exported)

    assert replaced.status_code == 200, replaced.text
    with store.transaction() as session:
        directory = dirs.get_directory(session, "Contoso")
        assert store.secrets.open(directory.secrets) == {"client_secret": "the-operators-secret"}
        assert directory.secret_refs == {"client_secret": "env:CONTOSO_SECRET"}


def test_the_web_form_refuses_a_secret_reference(
    serve: ServeApi, store: Store, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYROLL_DB_PASSWORD", OTHER_SECRET)
    post = admin_form(store, serve(allowed_endpoints=[listener.url]).client)

    page = post(
        "/directories/new/credentials",
        {
            "name": "Contoso",
            "provider": "entra",
            "connection.tenant_id": "contoso.example",
            "connection.client_id": "00000000-0000-0000-0000-000000000001",
            "connection.client_secret": "env:PAYROLL_DB_PASSWORD",
            "connection.authority_url": listener.url,
            "connection.graph_url": listener.url,
        },
    )

    assert page.status_code == 422
    assert "connection.client_secret" in page.text and "accessiq directories apply" in page.text
    with store.transaction() as session:
        assert dirs.list_directories(session) == []
    assert not listener.received(OTHER_SECRET)
    assert os.environ["PAYROLL_DB_PASSWORD"] not in page.text
