"""What the directories list and a directory's dashboard say about syncs: the last applied sync is
"last sync"; a failed or discarded dry run is shown apart as the last attempt and never replaces it."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, company, connected_directory, create_admin, file_directory, shot, sign_in, sync

from accessiq.services import directories as dirs
from accessiq.services import runs


def test_failed_and_discarded_dry_runs_do_not_replace_the_last_sync(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)  # run 1: applied
    discarded = sync(server.store, directory, dry_run=True)
    runs.reject(server.store, discarded)
    snapshot.path.unlink()  # the next read fails: the snapshot file is gone
    failed = sync(server.store, directory, dry_run=True)
    with server.store.transaction() as session:
        assert runs.get_run(session, failed).status == "failed"
    create_admin(server.store)
    sign_in(page)

    row = page.locator("tr", has_text="Acme HR")
    assert row.locator("[data-last-sync] > a").get_attribute("href") == "/runs/1"
    assert "succeeded" in row.locator("td").nth(2).inner_text().lower()
    attempt = row.locator("[data-last-attempt]").inner_text()
    assert f"dry run #{failed}" in attempt and "failed" in attempt.lower(), attempt
    shot(page, "60-list-last-sync-and-attempt")

    page.goto(f"/directories/{directory}")
    assert page.locator("#last-sync a").get_attribute("href") == "/runs/1"
    assert "succeeded" in page.inner_text("#last-sync").lower()
    attempt = page.inner_text("#last-attempt")
    assert f"Dry run #{failed}" in attempt and "failed" in attempt.lower(), attempt
    shot(page, "61-dashboard-last-sync-and-attempt")

    # Once the discarded plan's successor is applied, the attempt and the sync are one run again.
    snapshot.write()
    with server.store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, directory))
        applied = run.id
    runs.run_now(server.store, applied)
    page.reload()
    assert page.locator("#last-sync a").get_attribute("href") == f"/runs/{applied}"
    assert page.locator("#last-attempt").count() == 0


def test_a_directory_whose_only_run_was_a_discarded_dry_run_was_never_synced(
    page: Any, server: Server, snapshot: Any
) -> None:
    directory = file_directory(server.store, "Preview only", company(snapshot))
    runs.reject(server.store, sync(server.store, directory, dry_run=True))
    create_admin(server.store)
    sign_in(page)

    row = page.locator("tr", has_text="Preview only")
    assert "never synced" in row.locator("td").nth(2).inner_text().lower()
    assert "discarded" in row.locator("[data-last-attempt]").inner_text()
    page.goto(f"/directories/{directory}")
    assert "never" in page.inner_text("#last-sync")
    assert "rejected" in page.inner_text("#last-attempt").lower()
