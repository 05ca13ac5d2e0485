"""Real `accessiq worker` / `accessiq serve` processes: scheduling at scale, SIGKILL, SIGTERM, cancel.

PostgreSQL: four worker processes and forty directories; a worker killed mid-apply.
SQLite: the single-process path (`serve`), its clean stop, and recovery on the next start.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobkit import (
    Fifo,
    Processes,
    add_directory,
    all_runs,
    applying,
    count_users,
    free_port,
    process_env,
    snapshot_document,
    wait_for,
)
from sqlalchemy import func, select

from accessiq.services import runs
from accessiq.store.database import Store
from accessiq.store.tables import Cursor, Directory, RunChange, RunError, SourceObject, SyncRun
from accessiq.sync.settings import parse_interval

MakeProcesses = Callable[[dict[str, str]], Processes]


def _request(store: Store, directory_id: int) -> int:
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id))
        return run.id


def _run(store: Store, run_id: int) -> SyncRun:
    with store.transaction() as session:
        return session.get_one(SyncRun, run_id)


def _cursor(store: Store, directory_id: int) -> tuple[object, ...]:
    with store.transaction() as session:
        cursor = session.get(Cursor, directory_id)
        mirror = session.scalar(select(func.count()).where(SourceObject.directory_id == directory_id))
        if cursor is None:
            return (None, mirror)
        return (cursor.value, cursor.last_full_sync_at, cursor.updated_at, mirror)


def _changes(store: Store, run_id: int) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count()).where(RunChange.run_id == run_id)) or 0)


# -- PostgreSQL: many workers ----------------------------------------------------------------


@pytest.mark.postgres
def test_four_workers_forty_directories_every_slot_once(
    pg_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    frequencies = ["2s", "3s", "4s"]
    ids: dict[int, timedelta] = {}
    for i in range(40):
        path = tmp_path / f"d{i}.json"
        path.write_text(json.dumps(snapshot_document(5, f"d{i}")))
        frequency = frequencies[i % len(frequencies)]
        ids[add_directory(pg_store, f"D{i:02}", path, frequency=frequency, schedule_enabled=True)] = parse_interval(
            frequency
        )
    procs = processes(process_env(pg_store, tmp_path))
    workers = [procs.start("worker", "--concurrency", "2", "--name", f"w{n}") for n in range(1, 5)]
    for worker in workers:
        procs.wait_output(worker, "worker.started")

    time.sleep(20)
    stop_at = datetime.now(UTC)
    for worker in workers:
        procs.terminate(worker)
    for worker in workers:
        code, output = procs.stop(worker)
        assert code == 0, output
        assert "worker.stopped" in output

    latencies: list[float] = []
    owners: set[str] = set()
    slots_due = slots_coalesced = 0
    for directory_id, interval in ids.items():
        history = all_runs(pg_store, directory_id)
        assert {r.trigger for r in history} == {"schedule"}
        # Nothing was lost or left half-done; only runs queued as the workers stopped still wait.
        for run in history:
            assert run.status == "succeeded" or (
                run.status == "queued" and run.scheduled_for and run.scheduled_for > stop_at - 2 * interval
            ), (run.id, run.status, run.message)
        done = [r for r in history if r.status == "succeeded"]
        # Never two runs of one directory at once.
        ordered = sorted(done, key=lambda r: r.started_at or stop_at)
        for before, after in itertools.pairwise(ordered):
            assert before.finished_at and after.started_at and after.started_at >= before.finished_at
        # Every due slot ran exactly once: each has a run of its own, or came due while the
        # directory's previous run was still queued or running and is covered by the next run.
        slots = [r.scheduled_for for r in history]
        assert all(slots) and len(set(slots)) == len(slots), f"directory {directory_id}: a slot ran twice"
        anchor = slots[0]
        assert anchor is not None
        for run, following in itertools.pairwise(history):
            assert run.scheduled_for and following.scheduled_for
            gap = following.scheduled_for - run.scheduled_for
            assert gap % interval == timedelta(0), f"directory {directory_id}: slot off the grid"
            for k in range(1, gap // interval):
                missed = run.scheduled_for + k * interval
                assert run.finished_at is None or run.finished_at > missed, (
                    f"directory {directory_id}: slot {missed} was due with no run active, yet not run"
                )
                slots_coalesced += 1
        last = history[-1]
        assert last.scheduled_for is not None
        upcoming = last.scheduled_for + interval
        assert upcoming > stop_at - timedelta(seconds=2) or (last.finished_at or stop_at) > upcoming - timedelta(
            seconds=1
        ), f"directory {directory_id} fell behind its schedule"
        slots_due += len(slots) + slots_coalesced
        latencies += [((r.started_at or stop_at) - (r.scheduled_for or stop_at)).total_seconds() for r in done]
        owners |= {(r.lease_owner or "").split(":")[0] for r in done}
    assert owners == {"w1", "w2", "w3", "w4"}
    latencies.sort()
    report = {
        "runs": len(latencies),
        "slots_coalesced": slots_coalesced,
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[int(len(latencies) * 0.95)], 3),
        "max_s": round(latencies[-1], 3),
    }
    print(f"\nslot-to-start latency: {report}")
    # Coalescing is right when workers lag, but on a healthy machine it is the exception.
    assert slots_coalesced < len(latencies) / 3, report


@pytest.mark.postgres
def test_sigkill_mid_apply_applies_nothing_and_is_retried(
    pg_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(snapshot_document(10, "big")))
    directory_id = add_directory(pg_store, "Big", path)
    first = _request(pg_store, directory_id)
    assert runs.run_now(pg_store, first).status == "succeeded"
    assert count_users(pg_store, directory_id) == 10
    cursor_before = _cursor(pg_store, directory_id)
    # The next run creates thousands of users: its plan-and-apply transaction takes seconds.
    path.write_text(json.dumps(snapshot_document(6000, "big")))

    procs = processes(process_env(pg_store, tmp_path))
    victim = procs.start("worker", "--no-scheduler", "--name", "victim")
    run_id = _request(pg_store, directory_id)

    wait_for(lambda: applying(pg_store, directory_id), 60, "the worker to be applying", every=0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_for(lambda: not applying(pg_store, directory_id), 30, "PostgreSQL to roll the dead worker's transaction back")

    # Nothing of the run was applied, the cursor did not move, the run is not finished yet.
    assert count_users(pg_store, directory_id) == 10
    assert _cursor(pg_store, directory_id) == cursor_before
    assert _changes(pg_store, run_id) == 0
    killed = _run(pg_store, run_id)
    assert killed.status == "running" and (killed.lease_owner or "").startswith("victim:")

    rescuer = procs.start("worker", "--no-scheduler", "--name", "rescuer")
    wait_for(
        lambda: any(r.status == "succeeded" and r.retry_of_run_id == run_id for r in all_runs(pg_store)),
        90,
        "the retry to succeed",
        every=0.2,
    )
    failed = _run(pg_store, run_id)
    assert failed.status == "failed" and "worker lost" in (failed.message or "")
    assert _changes(pg_store, run_id) == 0
    retry = next(r for r in all_runs(pg_store) if r.retry_of_run_id == run_id)
    assert retry.attempt == 2 and (retry.lease_owner or "").startswith("rescuer:")
    assert count_users(pg_store, directory_id) == 6000
    assert _cursor(pg_store, directory_id) != cursor_before
    code, output = procs.stop(rescuer)
    assert code == 0, output
    assert '"event": "run.worker_lost"' in output


@pytest.mark.postgres
def test_sigterm_after_the_grace_period_releases_the_run(
    pg_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    fifo = Fifo(tmp_path / "pipe.json")
    directory_id = add_directory(pg_store, "Piped", fifo.path)
    procs = processes(process_env(pg_store, tmp_path))
    worker = procs.start("worker", "--no-scheduler", ACCESSIQ_WORKER_GRACE_SECONDS="0")
    run_id = _request(pg_store, directory_id)
    fifo.wait_reader()  # the run is mid-read
    procs.terminate(worker)
    time.sleep(0.5)
    fifo.feed(snapshot_document(3, "piped"))
    code, output = procs.stop(worker)
    assert code == 0, output
    released = _run(pg_store, run_id)
    assert (released.status, released.started_at, released.lease_owner) == ("queued", None, None)
    assert count_users(pg_store, directory_id) == 0
    assert '"event": "worker.released"' in output

    # The next worker takes it from the start.
    worker = procs.start("worker", "--no-scheduler")
    fifo.feed(snapshot_document(3, "piped"))
    wait_for(lambda: _run(pg_store, run_id).status == "succeeded", 30, "the released run to succeed")
    assert count_users(pg_store, directory_id) == 3
    assert procs.stop(worker)[0] == 0


# -- SQLite: one process -----------------------------------------------------------------------



def test_sqlite_serve_runs_the_schedule_and_the_demo(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    ids = []
    for i in range(3):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(snapshot_document(4, f"s{i}")))
        ids.append(add_directory(store, f"S{i}", path, frequency="1s", schedule_enabled=True))
    procs = processes(process_env(store, tmp_path))
    # A narrow console: the printed commands must still come out whole, to be copied.
    serve = procs.start("serve", "--demo", "--port", str(free_port()), COLUMNS="40")
    procs.wait_output(serve, "AccessIQ is running", timeout=60)
    shown = re.search(
        r"^  its credentials:  accessiq (sandbox entra info --url http://127\.0\.0\.1:\d+)$",
        procs.output(serve),
        re.MULTILINE,
    )
    assert shown, procs.output(serve)
    info = procs.run(*shown.group(1).split())
    assert info.returncode == 0 and "client" in info.stdout and "secret" in info.stdout, info.stdout + info.stderr
    time.sleep(5)
    stop_at = datetime.now(UTC)
    code, output = procs.stop(serve)
    assert code == 0, output
    assert "AccessIQ stopped" in output and "worker.stopped" in output
    assert "Web UI: http://127.0.0.1:" in output or "no web UI" in output

    with store.transaction() as session:
        demo = session.scalar(select(Directory).where(Directory.name == "Demo"))
        assert demo is not None
        sandboxes = session.scalars(select(Directory).where(Directory.name.contains("sandbox)"))).all()
    assert [r.status for r in all_runs(store, demo.id)] == ["succeeded"]
    # Every provider's demo sandbox has people of its own: no first sync finds its users taken by
    # another sandbox's directory (the LDAP tree's few people without mail are its own errors).
    assert {d.provider for d in sandboxes} >= {"entra", "okta", "google", "ldap"}
    for directory in sandboxes:
        first = all_runs(store, directory.id)[0]
        assert first.status in ("succeeded", "succeeded_with_errors"), (directory.name, first.message)
        assert first.counts["users_created"] > 150 and first.counts["user_errors"] < 10, (directory.name, first.counts)
        with store.transaction() as session:
            clashes = session.scalars(
                select(RunError.message).where(RunError.run_id == first.id, RunError.message.contains("directory"))
            ).all()
        assert clashes == [], (directory.name, clashes[:3])
    for directory_id in ids:
        history = all_runs(store, directory_id)
        slots = [r.scheduled_for for r in history]
        assert len(slots) >= 4 and slots[0] is not None
        assert slots == [slots[0] + timedelta(seconds=k) for k in range(len(slots))]
        assert slots[-1] > stop_at - timedelta(seconds=2)
        done = [r for r in history if r.status != "queued"]
        assert {r.status for r in done} == {"succeeded"}
        for before, after in itertools.pairwise(done):
            assert before.finished_at and after.started_at and after.started_at >= before.finished_at


def test_sqlite_sigterm_lets_the_run_finish_and_cli_sync_now(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    fifo = Fifo(tmp_path / "pipe.json")
    directory_id = add_directory(store, "Piped", fifo.path)
    procs = processes(process_env(store, tmp_path))
    serve = procs.start("serve", "--port", str(free_port()))
    procs.wait_output(serve, "AccessIQ is running", timeout=60)
    # Sync Now from the CLI, twice: the second returns the first.
    queued = procs.run("runs", "request", "Piped", "--json")
    assert queued.returncode == 0, queued.stderr
    again = procs.run("runs", "request", "Piped", "--json")
    run_id = json.loads(queued.stdout)["id"]
    assert json.loads(again.stdout)["id"] == run_id
    fifo.wait_reader()
    procs.terminate(serve)
    time.sleep(0.5)
    assert serve.poll() is None  # still finishing its run
    fifo.feed(snapshot_document(3, "piped"))
    serve.wait(30)  # no second SIGTERM: that would end the grace period at once
    output = procs.output(serve)
    assert serve.returncode == 0, output
    assert '"event": "worker.released"' not in output
    assert _run(store, run_id).status == "succeeded"
    assert count_users(store, directory_id) == 3


def test_sqlite_runs_cancel_of_a_running_run(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    fifo = Fifo(tmp_path / "pipe.json")
    directory_id = add_directory(store, "Piped", fifo.path)
    procs = processes(process_env(store, tmp_path))
    worker = procs.start("worker")
    run_id = _request(store, directory_id)
    fifo.wait_reader()
    canceled = procs.run("runs", "cancel", str(run_id))
    assert canceled.returncode == 0, canceled.stderr
    assert "stops it at the next checkpoint" in canceled.stdout
    fifo.feed(snapshot_document(3, "piped"))
    wait_for(lambda: _run(store, run_id).status == "canceled", 30, "the run to be canceled")
    assert count_users(store, directory_id) == 0
    done = procs.run("runs", "cancel", str(run_id))
    assert done.returncode != 0 and "canceled" in done.stderr
    assert procs.stop(worker)[0] == 0


def test_sqlite_sigkill_is_recovered_on_the_next_start(
    sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses
) -> None:
    store = sqlite_file_store
    fifo = Fifo(tmp_path / "pipe.json")
    directory_id = add_directory(store, "Piped", fifo.path)
    procs = processes(process_env(store, tmp_path))
    first = procs.start("worker")
    run_id = _request(store, directory_id)
    fifo.wait_reader()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    fifo.abandon()
    assert _run(store, run_id).status == "running"

    second = procs.start("worker")
    fifo.feed(snapshot_document(3, "piped"), timeout=60)  # the retry reads the directory
    wait_for(
        lambda: any(r.status == "succeeded" for r in all_runs(store, directory_id)),
        30,
        "the retry",
        every=0.2,
    )
    lost, retry = all_runs(store, directory_id)
    assert lost.id == run_id and lost.status == "failed" and "worker lost" in (lost.message or "")
    assert retry.retry_of_run_id == run_id and retry.status == "succeeded"
    assert count_users(store, directory_id) == 3
    assert procs.stop(second)[0] == 0


def test_worker_stops_cleanly_when_idle(sqlite_file_store: Store, tmp_path: Path, processes: MakeProcesses) -> None:
    procs = processes(process_env(sqlite_file_store, tmp_path))
    worker = procs.start("worker", "--concurrency", "3")
    procs.wait_output(worker, "worker.started")
    started = time.monotonic()
    code, output = procs.stop(worker)
    assert code == 0 and time.monotonic() - started < 5, output
    assert "accessiq serve" in output  # where the UI is
