"""Readers never wait for a sync: on SQLite the API, the web UI and the CLI answer while a writer holds the lock.

A sync's apply is one write transaction holding SQLite's write lock; here the test holds that lock
itself (as long as it likes), from its own connection, while real `accessiq` processes answer.
Before readers stopped taking the write lock up front, each of these calls waited out the lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from jobkit import Processes, add_directory, free_port, process_env, snapshot_document, wait_for
from sqlalchemy import select

from accessiq.jobs.queue import enqueue_run
from accessiq.services import accounts
from accessiq.store.database import Store
from accessiq.store.tables import ApiToken, Directory
from accessiq.sync.engine import execute_run

MakeProcesses = Callable[[dict[str, str]], Processes]


@contextmanager
def write_lock_held(store: Store) -> Iterator[None]:
    """Hold SQLite's write lock with an uncommitted write, as a sync's apply does."""
    database = store.engine.url.database
    assert database is not None
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE directories SET name = name || ' (applying)'")
        yield
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_api_web_ui_and_cli_answer_while_a_writer_holds_the_sqlite_lock(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    path = tmp_path / "corp.json"
    path.write_text(json.dumps(snapshot_document(5, "corp")))
    directory_id = add_directory(store, "Corp", path)
    with store.transaction() as session:
        run_id = enqueue_run(session, directory_id, trigger="manual")[0].id
    assert execute_run(store, run_id).status == "succeeded"
    with store.transaction() as session:
        admin = accounts.create_administrator(session, "ann@example.com", "correct horse battery")
        cookie, _ = accounts.start_session(session, admin)
        token = accounts.create_token(session, "reader", scope="read").secret

    procs = processes(process_env(store, tmp_path))
    port = free_port()
    serve = procs.start("serve", "--port", str(port))
    procs.wait_output(serve, "AccessIQ is running", timeout=60)
    base = f"http://127.0.0.1:{port}"
    # The session cookie is `Secure`; sent by hand, since this server speaks plain http on loopback.
    browser = httpx.Client(base_url=base, timeout=10, headers={"Cookie": f"aiq_session={cookie}"})
    with browser, write_lock_held(store):
        api = httpx.get(f"{base}/api/v1/runs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert api.status_code == 200 and [r["id"] for r in api.json()] == [run_id]
        listing = browser.get("/directories")
        assert listing.status_code == 200 and "Corp" in listing.text
        dashboard = browser.get(f"/directories/{directory_id}")
        assert dashboard.status_code == 200 and "Corp" in dashboard.text
        runs_page = browser.get("/runs")
        assert runs_page.status_code == 200
        listed = procs.run("runs", "list", "--json", timeout=10)
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
        shown = procs.run("directories", "list", "--json", timeout=10)
        assert shown.returncode == 0 and "Corp" in shown.stdout, shown.stderr

    # The token's use is recorded after the answer, once the lock is free.
    def recorded() -> bool:
        with store.read() as session:
            return session.scalar(select(ApiToken.last_used_at).where(ApiToken.name == "reader")) is not None

    wait_for(recorded, 30, "the token's use to be recorded")

    # A GET that writes (a wizard step records where an unfinished setup stopped) waits for the
    # writer and then writes, instead of failing: a read transaction cannot wait to write.
    with store.transaction() as session:
        session.get_one(Directory, directory_id).setup_step = "test"
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=base, timeout=30, headers={"Cookie": f"aiq_session={cookie}"}) as wizard:
        with write_lock_held(store):
            asking = threading.Thread(
                target=lambda: answers.append(wizard.get(f"/directories/{directory_id}/setup/settings"))
            )
            asking.start()
            asking.join(1.0)  # let it meet the lock
        asking.join()
    assert [a.status_code for a in answers] == [200]
    with store.read() as session:
        assert session.get_one(Directory, directory_id).setup_step == "settings"
