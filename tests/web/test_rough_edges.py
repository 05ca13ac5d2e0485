"""The sync pages at a laptop's 1366 px: nothing overflows; the run log speaks one language (trigger
and mode, group and organization memberships, info versus warning notes); Sync Now's banner follows
the run; small runs stay visible on the chart; settings show only what applies to the provider."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_steps import (
    Server,
    connected_directory,
    create_admin,
    entra_directory,
    file_directory,
    shot,
    sign_in,
    sync,
)

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
from accessiq.services import directories as dirs
from accessiq.services import runs

TRIGGER = re.compile(r"^(manual|schedule|api|approval|push) · (full|incremental)$")


@pytest.fixture
def graph() -> Iterator[tuple[EntraSandbox, str]]:
    sandbox = EntraSandbox(30, 4, seed=5)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


@pytest.fixture
def laptop(browser: Any, server: Server) -> Iterator[Any]:
    """A signed-in page in a 1366x768 window."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.url)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    opened.on("pageerror", lambda error: server.console_errors.append(str(error)))
    create_admin(server.store)
    sign_in(opened)
    yield opened
    context.close()
    assert server.console_errors == [], server.console_errors


def _no_overflow(page: Any, selector: str) -> None:
    """The element fits its box and the window: nothing to scroll sideways."""
    box = page.locator(selector).first
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), (
        selector,
        box.evaluate("e => [e.scrollWidth, e.clientWidth]"),
    )
    assert page.locator("html").evaluate("e => e.scrollWidth <= e.clientWidth"), selector


def _long_company(snapshot: Any) -> None:
    """People with long emails and long ids, one without an email (a run with errors)."""
    for i in range(6):
        snapshot.user(
            f"3f2b8c1e-9d4a-4e7b-8c6f-{i:012d}",
            f"firstname.middlename.lastname.{i}@subsidiary.international-example.com",
            department="Research and Development, Europe",
            title="Principal Site Reliability Engineer",
        )
    snapshot.user("no-mail", email="")
    snapshot.group("g-all", "All employees of the international subsidiary", members=["no-mail"])
    snapshot.write()


def test_runs_table_and_mapping_preview_fit_1366(laptop: Any, server: Server, snapshot: Any) -> None:
    _long_company(snapshot)
    directory_id = file_directory(
        server.store,
        "International subsidiary HR export (nightly)",
        snapshot.path,
        attribute_mapping={"department": "department", "title": "title"},
    )
    dry = sync(server.store, directory_id, dry_run=True)
    runs.approve(server.store, dry)  # an approval run, and a dry run with three badges
    sync(server.store, directory_id, dry_run=True)

    for url, name in (("/runs", "70-runs-1366"), (f"/directories/{directory_id}", "71-dashboard-1366")):
        laptop.goto(url)
        _no_overflow(laptop, "table.runs")
        _no_overflow(laptop, ".card:has(table.runs)")
        shot(laptop, name)
    laptop.goto("/directories")
    _no_overflow(laptop, ".card:has(table)")
    shot(laptop, "70a-directories-1366")
    laptop.goto(f"/runs/{dry}")
    _no_overflow(laptop, "table.changes")
    shot(laptop, "70b-run-detail-1366")
    laptop.goto(f"/directories/{directory_id}/setup/test")
    laptop.get_by_text("Connection works.").wait_for()
    shot(laptop, "70c-wizard-test-1366")

    laptop.goto(f"/directories/{directory_id}/attributes")
    laptop.locator(".preview-matrix").wait_for()
    assert laptop.locator(".preview-matrix th[data-sample-head]").count() == 5
    _no_overflow(laptop, ".preview-matrix")
    _no_overflow(laptop, "#preview > div")
    shot(laptop, "72-attribute-preview-1366")

    laptop.goto(f"/directories/{directory_id}/setup/preview?run={dry}")
    _no_overflow(laptop, "table.changes")
    shot(laptop, "73-wizard-preview-1366")


def test_run_log_speaks_one_language(
    laptop: Any, server: Server, snapshot: Any, graph: tuple[EntraSandbox, str]
) -> None:
    sandbox, url = graph
    directory = entra_directory(server.store, sandbox, url, "Contoso Entra ID production tenant (West Europe)")
    first = sync(server.store, directory)
    some = next(iter(sandbox.snapshot()["users"]))
    sandbox.update_user(some, {"jobTitle": "Chief Sandbox Officer"})
    second = sync(server.store, directory)

    # A first sync reads everything: an ordinary fact, told as information, not as a warning.
    laptop.goto(f"/runs/{first}")
    note = laptop.locator("[data-note]", has_text="no cursor")
    assert "info" in (note.get_attribute("class") or "").split(), note.get_attribute("class")
    assert "warn" not in (note.get_attribute("class") or "").split()
    shot(laptop, "74-run-detail-first-sync-note")

    # Trigger and mode in one form, whatever the mode.
    laptop.goto(f"/runs?directory={directory}")
    triggers = laptop.locator("[data-trigger]").all_inner_texts()
    assert triggers == ["manual · incremental", "manual · full"], triggers
    assert all(TRIGGER.match(t) for t in triggers)
    assert laptop.locator(f"tr:has(a[href='/runs/{second}']) [data-trigger]").inner_text() == "manual · incremental"

    # Memberships: group and organization memberships, apart and labelled.
    file_directory = connected_directory(server.store, snapshot)
    with server.store.transaction() as session:
        applied = dirs.last_finished_run(session, dirs.get_directory(session, file_directory), applied=True)
        assert applied is not None
        applied_id = applied.id
    laptop.goto(f"/runs/{applied_id}")
    groups = laptop.inner_text("[data-count=group_memberships]")
    organizations = laptop.inner_text("[data-count=org_memberships]")
    # Platform (1), Engineering (2 direct users), Sales (3); acme for 5 users, acme-eng for 2.
    assert re.sub(r"\s+", " ", groups) == "Groups +6 / \N{MINUS SIGN}0", groups
    assert re.sub(r"\s+", " ", organizations) == "Organizations +7 / \N{MINUS SIGN}0", organizations
    shot(laptop, "75-run-detail-memberships")

    # Settings: no organizational units on Entra ID; the file provider has them.
    laptop.goto(f"/directories/{directory}/settings")
    assert laptop.locator("#filter_org_units").count() == 0
    help_text = laptop.locator(".field:has(#full_sync_interval) .help").inner_text()
    assert "full sync" in help_text and "24h" in help_text, help_text
    shot(laptop, "76-settings-entra-1366")
    laptop.goto(f"/directories/{file_directory}/settings")
    assert laptop.locator("#filter_org_units").get_attribute("placeholder") == "/Sales"
    # A snapshot file is read in full whenever it changes: there is nothing to reconcile.
    assert laptop.locator("#full_sync_interval").count() == 0


def test_sync_now_banner_follows_the_run(laptop: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    laptop.goto(f"/directories/{directory}")
    server.launcher.gate.clear()
    laptop.click("#sync-now")
    progress = laptop.locator("#run-progress[data-status=queued]")
    progress.wait_for()
    assert "Sync #2 is queued" in progress.inner_text()
    # One banner, the run's own: no second, frozen "queued" message beside it.
    assert laptop.locator("main > .notice", has_text="queued").count() == 0
    shot(laptop, "77-sync-now-queued")
    server.launcher.gate.set()
    laptop.locator("#last-sync a[href='/runs/2']").wait_for()
    assert "queued" not in laptop.inner_text("main")
    assert laptop.locator("#run-progress").count() == 0


def test_chart_keeps_small_runs_visible(laptop: Any, server: Server, snapshot: Any) -> None:
    for i in range(300):
        snapshot.user(f"p{i}", f"person{i}@example.com", title="Engineer")
    snapshot.write()
    directory_id = file_directory(server.store, "Big", snapshot.path, attribute_mapping={"title": "title"})
    big = sync(server.store, directory_id)
    snapshot.find("p7")["title"] = "Director"
    snapshot.write()
    small = sync(server.store, directory_id)

    laptop.goto(f"/directories/{directory_id}")
    created = laptop.locator(f"svg.chart rect[data-run='{big}'][data-kind=created]")
    updated = laptop.locator(f"svg.chart rect[data-run='{small}'][data-kind=updated]")
    big_height = float(created.get_attribute("height") or 0)
    small_height = float(updated.get_attribute("height") or 0)
    # 1 against 300: on a linear axis half a pixel, here a clear bar.
    assert small_height >= 8 and small_height >= big_height / 10, (small_height, big_height)
    assert "logarithmic" in laptop.inner_text(".legend")
    shot(laptop, "78-dashboard-chart-log-scale")
