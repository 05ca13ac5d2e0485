"""A foreground `accessiq sync` that dies, with no worker anywhere: the next sync recovers it.

Real processes on SQLite and PostgreSQL. The killed process is SIGKILLed mid-read (its snapshot
is a named pipe the test never finishes feeding) or mid-apply (a big snapshot whose apply
transaction the test watches for), then a second `accessiq sync` must recover the run once its
lease lapses, apply the sync and exit 0.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobkit import (
    FAST,
    Fifo,
    Processes,
    add_directory,
    all_runs,
    applying,
    count_users,
    process_env,
    snapshot_document,
    wait_for,
)
from sqlalchemy import text

from accessiq.store.database import Store

MakeProcesses = Callable[[dict[str, str]], Processes]
LEASE = float(FAST["ACCESSIQ_WORKER_LEASE_SECONDS"])
# After the lease lapses: the waiting sync polls twice a second, then reads and applies a small snapshot.
SLACK = 8.0
EX_TEMPFAIL = 75


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Store]:
    fixture = "sqlite_file_store" if request.param == "sqlite" else "pg_store"
    yield request.getfixturevalue(fixture)


def _printed_run(output: str) -> dict[str, Any]:
    """The run `accessiq sync --json` printed, from output that also holds log lines."""
    start = ("\n" + output).rindex("\n{\n")
    return dict(json.loads(output[start:]))


def _running(store: Store) -> list[int]:
    return [r.id for r in all_runs(store) if r.status == "running"]


def _held_for(condition: Callable[[], bool], seconds: float) -> Callable[[], bool]:
    """True once `condition` has been true on every poll for `seconds` (progress writes are milliseconds)."""
    since: list[float] = []

    def check() -> bool:
        if not condition():
            since.clear()
            return False
        since[:1] = since[:1] or [time.monotonic()]
        return time.monotonic() - since[0] >= seconds

    return check


def test_sync_killed_mid_read_is_recovered_by_the_next_sync(
    backend: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    fifo = Fifo(tmp_path / "pipe.json")
    directory_id = add_directory(backend, "Piped", fifo.path)
    procs = processes(process_env(backend, tmp_path))
    victim = procs.start("sync", "Piped")
    fifo.wait_reader()  # mid-read
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    fifo.abandon()
    [lost_id] = _running(backend)

    # Before anything recovers it, the run shows as lost once its lease has lapsed.
    time.sleep(LEASE + 0.5)
    listed = json.loads(procs.run("runs", "list", "--json").stdout)
    assert [(r["id"], r["status"], r["lost"]) for r in listed] == [(lost_id, "running", True)]
    assert "lost" in procs.run("runs", "list").stdout

    # The lease has lapsed by now; the rescuer recovers the run without waiting for anything else.
    rescue_started = time.monotonic()
    rescuer = procs.start("sync", "Piped", "--json")
    fifo.feed(snapshot_document(3, "piped"), timeout=LEASE + SLACK)
    assert rescuer.wait(30) == 0, procs.output(rescuer)
    assert time.monotonic() - rescue_started < LEASE + SLACK
    report = _printed_run(procs.output(rescuer))
    assert report["status"] == "succeeded" and report["counts"]["users_created"] == 3
    history = all_runs(backend, directory_id)
    assert history[0].id == lost_id and history[0].status == "failed"
    assert "worker lost" in (history[0].message or "")
    assert report["id"] == history[-1].id != lost_id
    assert _running(backend) == []
    assert count_users(backend, directory_id) == 3


def test_sync_killed_mid_apply_applies_nothing_and_the_next_sync_applies_it(
    backend: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(snapshot_document(10, "big")))
    directory_id = add_directory(backend, "Big", path)
    procs = processes(process_env(backend, tmp_path))
    assert procs.run("sync", "Big").returncode == 0
    # The next run creates thousands of users: its plan-and-apply transaction takes seconds.
    path.write_text(json.dumps(snapshot_document(20000, "big")))

    victim = procs.start("sync", "Big")
    wait_for(_held_for(lambda: applying(backend, directory_id), 0.15), 60, "the sync to be applying", every=0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_for(lambda: not applying(backend, directory_id), 30, "the dead process's transaction to roll back")
    assert count_users(backend, directory_id) == 10  # nothing of the killed run was applied
    assert len(_running(backend)) == 1

    started = time.monotonic()
    rescuer = procs.run("sync", "Big", timeout=120)
    assert rescuer.returncode == 0, rescuer.stderr
    assert "succeeded" in rescuer.stdout
    assert time.monotonic() - started < LEASE + SLACK + 30  # the 20,000-user apply itself takes seconds
    assert count_users(backend, directory_id) == 20000
    assert _running(backend) == []
    statuses = [r.status for r in all_runs(backend, directory_id)]
    assert statuses == ["succeeded", "failed", "succeeded"]
    if backend.dialect == "sqlite":
        with backend.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_second_sync_waits_for_the_live_one_or_exits_75_with_no_wait(
    backend: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    fifo = Fifo(tmp_path / "pipe.json")
    add_directory(backend, "Piped", fifo.path)
    procs = processes(process_env(backend, tmp_path))
    holder = procs.start("sync", "Piped", "--json")
    fifo.wait_reader()
    [run_id] = _running(backend)

    busy = procs.run("sync", "Piped", "--no-wait")
    assert busy.returncode == EX_TEMPFAIL, busy.stderr
    [line] = busy.stderr.strip().splitlines()
    assert f"run {run_id} of Piped is running in " in line and ":cli:" in line

    # Without --no-wait it follows the live run (its lease is renewed, so it is never recovered).
    follower = procs.start("sync", "Piped", "--json")
    # Started (a loaded machine takes seconds to start a process), then two leases of following.
    procs.wait_output(follower, "waiting for it", timeout=60)
    time.sleep(LEASE * 2)
    assert follower.poll() is None and _running(backend) == [run_id]
    fifo.feed(snapshot_document(2, "piped"))
    assert holder.wait(30) == 0, procs.output(holder)
    assert follower.wait(30) == 0, procs.output(follower)
    followed = procs.output(follower)
    assert _printed_run(followed)["id"] == run_id
    assert f"run {run_id} of Piped is running in" in followed


def test_sync_claims_a_queued_run_and_exits_non_zero_unless_it_succeeded(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot_document(2, "q")))
    add_directory(store, "Snap", path)
    procs = processes(process_env(store, tmp_path))

    # A queued run waiting for a worker (there is none) is run here.
    queued = json.loads(procs.run("runs", "request", "Snap", "--json").stdout)
    ran = procs.run("sync", "Snap", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["id"] == queued["id"]
    assert json.loads(ran.stdout)["status"] == "succeeded"
    assert "was queued; running it here" in ran.stderr

    # A queued dry run is not run as a sync that applies (nor the reverse).
    dry = json.loads(procs.run("runs", "request", "Snap", "--dry-run", "--json").stdout)
    mismatch = procs.run("sync", "Snap")
    assert mismatch.returncode == EX_TEMPFAIL and f"accessiq runs cancel {dry['id']}" in mismatch.stderr
    assert procs.run("runs", "cancel", str(dry["id"])).returncode == 0

    # failed
    path.write_text("{not json")
    failed = procs.run("sync", "Snap", "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["status"] == "failed"

    # canceled while it runs
    fifo = Fifo(tmp_path / "pipe.json")
    add_directory(store, "Piped", fifo.path)
    syncing = procs.start("sync", "Piped", "--json")
    fifo.wait_reader()
    [run_id] = _running(store)
    assert procs.run("runs", "cancel", str(run_id)).returncode == 0
    fifo.feed(snapshot_document(2, "piped"))
    assert syncing.wait(30) == 1
    assert _printed_run(procs.output(syncing))["status"] == "canceled"

    # blocked by the safety guard
    path.write_text(json.dumps(snapshot_document(2, "q")))
    assert procs.run("sync", "Snap").returncode == 0
    blocked_dir = tmp_path / "blocked.yaml"
    blocked_dir.write_text(
        json.dumps(
            {
                "name": "Snap",
                "provider": "file",
                "connection": {"path": str(path)},
                "settings": {"safety": {"max_deactivations": 1, "max_deactivation_percent": 100}},
            }
        )
    )
    assert procs.run("directories", "apply", str(blocked_dir)).returncode == 0
    path.write_text(json.dumps({"users": [], "groups": []}))
    blocked = procs.run("sync", "Snap", "--json")
    assert blocked.returncode == 1 and json.loads(blocked.stdout)["status"] == "blocked"
    assert _running(store) == []
