"""The `file` provider through the API and the UI reads only the snapshot directory; the CLI may name any path.

Issue #9: an API-created `file` directory could point at any JSON file on the
server, and the mapping preview showed its contents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.crypto import KEY_FILE
from accessiq.store.database import Store
from accessiq.sync.document import validate_document

from ..conftest import TEST_KEY, Snapshot
from .conftest import ServeApi
from .kit import admin_form, refused_field

PRIVATE = "private-record@server.example"


def _company(path: Path) -> Path:
    snapshot = Snapshot(path)
    snapshot.user("u1", PRIVATE)
    return snapshot.write()


def _file_directory(path: str, name: str = "HR") -> dict[str, Any]:
    return {"name": name, "provider": "file", "connection": {"path": path}}


@pytest.fixture
def outside(elsewhere: Path) -> Path:
    """A readable JSON snapshot on the server, outside the snapshot directory."""
    return _company(elsewhere / "private.json")


def test_a_path_climbing_out_of_the_snapshot_directory_is_refused(serve: ServeApi, outside: Path) -> None:
    api = serve()
    climbing = "../" * 40 + str(outside).lstrip("/")
    response = api("POST", "/api/v1/directories", json=_file_directory(climbing))
    assert refused_field(response) == "connection.path", response.text
    assert "ACCESSIQ_SNAPSHOT_DIR" in response.json()["error"]["hint"]


def test_an_absolute_path_outside_the_snapshot_directory_is_refused(serve: ServeApi, outside: Path) -> None:
    api = serve()
    response = api("POST", "/api/v1/directories", json=_file_directory(str(outside)))
    assert refused_field(response) == "connection.path", response.text


def test_a_symlink_in_the_snapshot_directory_pointing_out_is_refused(
    serve: ServeApi, data_dir: Path, outside: Path
) -> None:
    (data_dir / "snapshots" / "company.json").symlink_to(outside)
    api = serve()
    response = api("POST", "/api/v1/directories", json=_file_directory("company.json"))
    assert refused_field(response) == "connection.path", response.text


def test_a_product_file_is_refused_even_inside_the_snapshot_directory(serve: ServeApi, data_dir: Path) -> None:
    api = serve(snapshot_dir=data_dir)
    response = api("POST", "/api/v1/directories", json=_file_directory(KEY_FILE))
    assert refused_field(response) == "connection.path", response.text


def test_a_file_in_the_snapshot_directory_is_accepted_and_stored_by_its_full_path(
    serve: ServeApi, store: Store, data_dir: Path
) -> None:
    inside = _company(data_dir / "snapshots" / "company.json")
    api = serve()

    by_name = api("POST", "/api/v1/directories", json=_file_directory("company.json"))
    by_path = api("POST", "/api/v1/directories", json=_file_directory(str(inside), name="HR 2"))
    edited = api("PATCH", "/api/v1/directories/HR/settings", json={"frequency": "24h"})

    assert (by_name.status_code, by_path.status_code) == (201, 201), (by_name.text, by_path.text)
    assert by_name.json()["connection"]["path"] == str(inside)
    assert by_path.json()["connection"]["path"] == str(inside)
    assert edited.status_code == 200, edited.text


def test_the_cli_may_name_any_path(tmp_path: Path, outside: Path) -> None:
    document = tmp_path / "hr.json"
    document.write_text(json.dumps(_file_directory(str(outside))))
    env = {**os.environ, "ACCESSIQ_DATA_DIR": str(tmp_path / "data"), "ACCESSIQ_SECRET_KEY": TEST_KEY}
    env.pop("ACCESSIQ_DATABASE_URL", None)

    applied = subprocess.run(
        [sys.executable, "-m", "accessiq", "directories", "apply", str(document), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["connection"]["path"] == str(outside)


def test_the_web_form_refuses_a_path_outside_the_snapshot_directory(
    serve: ServeApi, store: Store, outside: Path
) -> None:
    post = admin_form(store, serve().client)

    page = post("/directories/new/credentials", {"name": "HR", "provider": "file", "connection.path": str(outside)})

    assert page.status_code == 422
    assert "connection.path" in page.text and "outside the snapshot directory" in page.text
    with store.transaction() as session:
        assert dirs.list_directories(session) == []


def test_the_mapping_preview_reads_no_file_outside_the_snapshot_directory(
    serve: ServeApi, store: Store, outside: Path
) -> None:
    with store.transaction() as session:
        dirs.apply_document(
            session, store.secrets, validate_document(_file_directory(str(outside))), policy=InputPolicy.operator()
        )
    api = serve()

    preview = api("POST", "/api/v1/directories/HR/mapping-preview", json={"attribute_mapping": {}})

    assert preview.status_code == 200, preview.text
    assert preview.json()["samples"] == []
    assert "outside the snapshot directory" in preview.json()["note"]
    assert PRIVATE not in preview.text
