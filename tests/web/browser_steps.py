"""Steps the browser tests share: an administrator, signing in, screenshots."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accessiq.services import accounts as auth
from accessiq.services.launcher import RunLauncher
from accessiq.store.database import Store

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


class GatedLauncher(RunLauncher):
    """Runs queued syncs in-process, but only once the test opens the gate (to watch live progress)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, inline=True)
        self.gate = threading.Event()
        self.gate.set()

    def _run(self, run_id: int) -> object:
        self.gate.wait(timeout=30)
        return super()._run(run_id)


@dataclass
class Server:
    """The app serving on 127.0.0.1:port over a fresh SQLite store."""

    url: str
    store: Store
    launcher: GatedLauncher
    data_dir: Path
    console_errors: list[str] = field(default_factory=list)


def create_admin(store: Store) -> None:
    with store.transaction() as session:
        auth.create_administrator(session, ADMIN_EMAIL, ADMIN_PASSWORD)


def sign_in(page: Any) -> None:
    page.goto("/login")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/directories")


def start_wizard(page: Any, name: str, provider_title: str) -> None:
    """From the directories list: the wizard's first step, up to its credentials form."""
    page.click("#add-directory")
    page.fill("#name", name)
    # By the start of its title: "Okta" is also named in the title of the SCIM choice.
    title = page.locator("span.title", has_text=re.compile("^" + re.escape(provider_title)))
    page.locator("label.choice", has=title).click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/directories/new/credentials*")


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot of the current page as artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def company(snapshot: Any, users: int = 5) -> Path:
    """A small company in a file snapshot: people in Engineering (nesting Platform) and Sales."""
    for i in range(users):
        snapshot.user(
            f"u{i}",
            f"user{i}@example.com",
            department="Engineering" if i % 2 else "Sales",
            title="Engineer" if i % 2 else "Account executive",
            location={"city": "Lisbon"},
        )
    snapshot.group("g-platform", "Platform", members=["u1"])
    snapshot.group("g-eng", "Engineering", members=["u1", "u3", "g-platform"])
    snapshot.group("g-sales", "Sales", members=["u0", "u2", "u4"])
    return snapshot.write()


def file_directory(store: Store, name: str, path: Path, **settings: Any) -> int:
    """A file directory over `path`, made from a document as the CLI makes it; returns its id."""
    return applied_directory(
        store, {"name": name, "provider": "file", "connection": {"path": str(path)}, "settings": settings}
    )


def entra_directory(store: Store, sandbox: Any, url: str, name: str = "Contoso") -> int:
    """An Entra directory reading the Graph sandbox served at `url`; returns its id."""
    connection = {
        "tenant_id": sandbox.tenant_domain,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "authority_url": url,
        "graph_url": url,
    }
    return applied_directory(store, {"name": name, "provider": "entra", "connection": connection})


def applied_directory(store: Store, document: dict[str, Any]) -> int:
    """A directory made from `document` as the CLI makes it (`directories apply`); returns its id."""
    from accessiq.services import directories as dirs
    from accessiq.services.input_policy import InputPolicy
    from accessiq.sync.document import validate_document

    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def sync(store: Store, directory_id: int, *, dry_run: bool = False) -> int:
    """Sync Now (or a dry run) carried to its end in this process; returns the run id."""
    from accessiq.services import directories as dirs
    from accessiq.services import runs

    with store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, directory_id), dry_run=dry_run)
        run_id = run.id
    runs.run_now(store, run_id)
    return run_id


def connected_directory(store: Store, snapshot: Any) -> int:
    """Organizations, a directory over the snapshot, and its first applied sync; returns the directory id."""
    from accessiq.services import directories as dirs
    from accessiq.services import identity, runs
    from accessiq.services.input_policy import InputPolicy
    from accessiq.sync.document import validate_document

    path = company(snapshot)
    with store.transaction() as session:
        identity.create_organization(session, "acme", "Acme")
        identity.create_organization(session, "acme-eng", "Acme Engineering")
        directory, _ = dirs.apply_document(
            session,
            store.secrets,
            validate_document(
                {
                    "name": "Acme HR",
                    "provider": "file",
                    "connection": {"path": str(path)},
                    "settings": {"default_organization": "acme"},
                    "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
                }
            ),
            policy=InputPolicy.operator(),
        )
        run, _ = runs.request_sync(session, directory)
        directory_id, run_id = directory.id, run.id
    runs.run_now(store, run_id)
    return directory_id


def save_and_test(page: Any) -> str:
    """Save the credentials and test them; the test step's result text."""
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    return str(page.inner_text("#test-result"))


def preview_apply_finish(page: Any, users_created: int, groups: int, screenshot: str | None = None) -> None:
    """From the preview step: dry run, apply it, finish, and check the dashboard shows that run."""
    page.wait_for_url("**/setup/preview")
    page.click("#run-preview")
    page.locator("#apply-preview").wait_for()
    assert page.inner_text("[data-count=users_created]") == str(users_created)
    if screenshot:
        shot(page, screenshot)
    page.click("#apply-preview")
    page.wait_for_url("**/setup/schedule*")
    page.click("#finish")
    page.wait_for_url("**/directories/1")
    assert page.inner_text("[data-count=users_created]") == str(users_created)
    assert page.inner_text("[data-count=groups_processed]") == str(groups)


def map_one_group(page: Any, organization: str, group_label: str) -> list[str]:
    """Settings step with `organization` as default, then one mapping of the group shown as `group_label`.

    Returns the group picker's options (after its placeholder); the mappings step stays open.
    """
    page.wait_for_url("**/setup/settings")
    page.select_option("#default_organization", organization)
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/mappings")
    page.click("#add-mapping")
    row = page.locator("#mapping-rows tr").last
    names = row.locator("select[name=source_group] option").all_inner_texts()
    assert group_label in names, names
    row.locator("select[name=source_group]").select_option(label=group_label)
    row.locator("select[name=organization]").select_option(organization)
    return list(names[1:])
