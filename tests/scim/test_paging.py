"""Listing without a filter reads one page from the database and counts the rest there."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import event

from accessiq.store.database import Store

from .conftest import Scim, issue, make_directory
from .test_latency import seed_people

PEOPLE = 10_000


def test_a_page_of_ten_thousand_users_reads_only_that_page(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store)
    ids = seed_people(store, directory, PEOPLE)
    scim = Scim(app_client, directory, issue(store, directory))
    assert scim("GET", "/Users?count=1").status_code == 200  # the token's first use is recorded once

    rows_read = []

    def count_rows(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM source_objects" in statement:
            rows_read.append(statement)

    engine = store.engine
    event.listen(engine, "after_cursor_execute", count_rows)
    try:
        started = time.perf_counter()
        page = scim("GET", "/Users", params={"startIndex": 9_901, "count": 100})
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "after_cursor_execute", count_rows)
    body = page.json()
    assert body["totalResults"] == PEOPLE
    assert (body["startIndex"], body["itemsPerPage"]) == (9_901, 100)
    assert [r["id"] for r in body["Resources"]] == ids[9_900:]
    # One COUNT and one page: the list never loads the other 9,900 users.
    assert len(rows_read) == 2
    assert any("count(" in s.lower() for s in rows_read) and any("LIMIT" in s.upper() for s in rows_read)
    print(f"page 100 of {PEOPLE} users ({store.dialect}): {elapsed * 1000:.0f} ms")
    assert elapsed < 0.5

    past = scim("GET", "/Users", params={"startIndex": PEOPLE + 1}).json()
    assert (past["totalResults"], past.get("Resources", [])) == (PEOPLE, [])
    assert scim("GET", "/Users", params={"count": 0}).json()["totalResults"] == PEOPLE


def test_pages_cover_every_user_once(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store)
    ids = seed_people(store, directory, 45)
    scim = Scim(app_client, directory, issue(store, directory))
    seen: list[str] = []
    for start in range(1, 46, 10):
        body = scim("GET", "/Users", params={"startIndex": start, "count": 10}).json()
        assert body["totalResults"] == 45
        seen += [r["id"] for r in body["Resources"]]
    assert seen == ids
    groups = scim("GET", "/Groups", params={"startIndex": 1, "count": 5}).json()
    assert groups["totalResults"] == 1 and [g["displayName"] for g in groups["Resources"]] == ["Engineering"]
