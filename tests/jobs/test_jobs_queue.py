"""The runs table as a queue, in one process on both backends: claims, leases, recovery, cancel."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from jobkit import add_directory, all_runs, count_users, snapshot_document, wait_for
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from accessiq.errors import ConflictError
from accessiq.jobs import queue
from accessiq.jobs.worker import LeaseKeeper, Worker, WorkerSettings, execute_with_lease
from accessiq.services import runs
from accessiq.store.database import Store
from accessiq.store.tables import Cursor, Directory, SyncRun, utcnow

LEASE = timedelta(seconds=30)


def _directory(store: Store, tmp_path: Path, name: str = "Acme", users: int = 3, **settings: object) -> int:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(snapshot_document(users, name.lower())))
    return add_directory(store, name, path, **settings)


def _request(store: Store, directory_id: int, trigger: str = "manual") -> int:
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id), trigger=trigger)
        return run.id


def _status(store: Store, run_id: int) -> SyncRun:
    with store.transaction() as session:
        return session.get_one(SyncRun, run_id)


def test_claim_takes_manual_before_scheduled_and_each_run_once(store: Store, tmp_path: Path) -> None:
    scheduled = _request(store, _directory(store, tmp_path, "A"), trigger="schedule")
    manual = _request(store, _directory(store, tmp_path, "B"))
    first = queue.claim_next(store, "w1", LEASE)
    second = queue.claim_next(store, "w2", LEASE)
    assert first is not None and second is not None
    assert (first.run_id, second.run_id) == (manual, scheduled)
    assert queue.claim_next(store, "w3", LEASE) is None
    run = _status(store, manual)
    assert run.status == "running" and run.lease_owner == "w1" and run.lease_expires_at is not None


def test_never_claims_a_queued_run_while_its_directory_runs(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path)
    with store.transaction() as session:
        # An approval applies a stored plan as a `running` run outside the queue.
        session.add(SyncRun(directory_id=directory_id, trigger="approval", mode="full", status="running"))
        queued_run = SyncRun(directory_id=directory_id, trigger="schedule", mode="full", status="queued")
        session.add(queued_run)
        session.flush()
        queued = queued_run.id
    assert queue.claim_next(store, "w1", LEASE) is None
    assert _status(store, queued).status == "queued"


def test_the_store_refuses_two_active_runs_of_one_directory(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path)
    for status in ("queued", "running"):
        with store.transaction() as session:
            session.add(SyncRun(directory_id=directory_id, trigger="manual", mode="full", status=status))
        with pytest.raises(IntegrityError), store.transaction() as session:
            session.add(SyncRun(directory_id=directory_id, trigger="api", mode="full", status=status))


def test_expired_lease_fails_the_run_and_queues_a_retry(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path)
    run_id = _request(store, directory_id)
    claim = queue.claim_next(store, "lost-worker", timedelta(milliseconds=1))
    assert claim is not None
    time.sleep(0.01)
    [recovered] = queue.recover_expired(store, max_attempts=2)
    assert recovered.run_id == run_id and recovered.status == "failed"
    failed = _status(store, run_id)
    assert failed.status == "failed" and failed.message is not None and "worker lost" in failed.message
    assert failed.finished_at is not None
    retry = _status(store, recovered.retry_run_id or 0)
    assert (retry.status, retry.attempt, retry.retry_of_run_id, retry.trigger) == (
        "queued",
        2,
        run_id,
        "manual",
    )
    # The retry too loses its worker: with max_attempts=2 it is not retried again.
    assert queue.claim_next(store, "lost-again", timedelta(milliseconds=1)) is not None
    time.sleep(0.01)
    [again] = queue.recover_expired(store, max_attempts=2)
    assert again.retry_run_id is None
    assert "not retried after 2 attempts" in (_status(store, again.run_id).message or "")
    # The old worker wakes up: it no longer holds its run.
    state = queue.lease_state(store, run_id, "lost-worker")
    assert not state.held and state.status == "failed"


def test_renewed_leases_are_not_recovered(store: Store, tmp_path: Path) -> None:
    run_id = _request(store, _directory(store, tmp_path))
    assert queue.claim_next(store, "w1", timedelta(seconds=1)) is not None
    states = queue.renew_leases(store, [run_id], "w1", timedelta(minutes=5))
    assert states[run_id].held
    assert queue.recover_expired(store) == []
    assert not queue.renew_leases(store, [run_id], "someone-else", LEASE)[run_id].held


def test_cancel_a_queued_run(store: Store, tmp_path: Path) -> None:
    run_id = _request(store, _directory(store, tmp_path))
    with store.transaction() as session:
        runs.cancel_run(session, runs.get_run(session, run_id))
    assert _status(store, run_id).status == "canceled"
    assert queue.claim_next(store, "w1", LEASE) is None
    with pytest.raises(ConflictError), store.transaction() as session:
        runs.cancel_run(session, runs.get_run(session, run_id))


def test_cancel_a_running_run_stops_it_at_the_checkpoint(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, users=5)
    run_id = _request(store, directory_id)
    canceled: list[bool] = []

    def cancel_while_reading(phase: str, users: int, groups: int) -> None:
        # An administrator runs `runs cancel` while the run reads the directory.
        if not canceled:
            with store.transaction() as session:
                runs.cancel_run(session, runs.get_run(session, run_id))
            canceled.append(True)

    run = execute_with_lease(store, run_id, cancel_while_reading)
    assert run.status == "canceled"
    assert count_users(store, directory_id) == 0
    with store.transaction() as session:
        assert session.get(Cursor, directory_id) is None
    assert _status(store, run_id).lease_expires_at is None


def test_execute_with_lease_refuses_a_run_a_worker_took(store: Store, tmp_path: Path) -> None:
    run_id = _request(store, _directory(store, tmp_path))
    assert queue.claim_next(store, "worker", LEASE) is not None
    with pytest.raises(ConflictError):
        execute_with_lease(store, run_id)


def test_release_puts_a_run_back_untouched(store: Store, tmp_path: Path) -> None:
    run_id = _request(store, _directory(store, tmp_path))
    assert queue.claim_next(store, "w1", LEASE) is not None
    assert queue.release_run(store, run_id, "w1")
    run = _status(store, run_id)
    assert (run.status, run.lease_owner, run.started_at) == ("queued", None, None)
    assert queue.claim_next(store, "w2", LEASE) is not None


def test_worker_threads_drain_the_queue(store: Store, tmp_path: Path) -> None:
    ids = [_directory(store, tmp_path, f"D{i}") for i in range(6)]
    run_ids = [_request(store, i) for i in ids]
    worker = Worker(store, concurrency=3, schedule=False, settings=WorkerSettings(poll_seconds=0.05, tick_seconds=0.1))
    worker.start()
    try:
        wait_for(lambda: all(_status(store, r).status == "succeeded" for r in run_ids), 30, "all runs")
    finally:
        worker.stop()
        assert worker.join(30)
    assert all(count_users(store, i) == 3 for i in ids)
    assert {_status(store, r).lease_expires_at for r in run_ids} == {None}


def test_worker_recovers_a_dead_workers_run_on_start(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path)
    run_id = _request(store, directory_id)
    assert queue.claim_next(store, "dead:1:x", LEASE) is not None
    with store.transaction() as session:
        # The dead worker's lease ran out while nobody was watching.
        session.execute(
            update(SyncRun).where(SyncRun.id == run_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    worker = Worker(store, schedule=False, settings=WorkerSettings(poll_seconds=0.05, tick_seconds=0.1))
    worker.start()
    try:
        wait_for(lambda: any(r.status == "succeeded" for r in all_runs(store, directory_id)), 30, "the retry")
    finally:
        worker.stop()
        assert worker.join(30)
    first, retry = all_runs(store, directory_id)
    assert first.status == "failed" and "worker lost" in (first.message or "")
    assert retry.retry_of_run_id == run_id and retry.status == "succeeded"
    assert count_users(store, directory_id) == 3


def test_heartbeats_hold_off_while_a_sync_plans_without_the_sqlite_write_lock(
    sqlite_file_store: Store, tmp_path: Path
) -> None:
    """A commit during an optimistic plan would make its apply fail and the plan be made again."""
    store = sqlite_file_store
    run_id = _request(store, _directory(store, tmp_path))
    lease = timedelta(seconds=1.5)  # a beat every 0.5 s; held off for at most 1 s
    claim = queue.claim_run(store, run_id, "w1", lease)
    keeper = LeaseKeeper(store, "w1", lease)
    keeper.start()
    try:
        with keeper.holding(claim):
            with store.writing_later() as session:
                before = session.get_one(SyncRun, run_id).lease_expires_at
                time.sleep(0.8)  # past a beat
                session.get_one(SyncRun, run_id).notes = ["planned"]
                session.flush()  # the write the apply makes: no other commit came first
            with store.writing_later() as session:
                session.get_one(SyncRun, run_id)
                time.sleep(2.5)  # a long plan: the lease is renewed all the same
                assert queue.lease_state(store, run_id, "w1").held
                assert _status(store, run_id).lease_expires_at > before
    finally:
        keeper.stop()
    assert queue.recover_expired(store) == []
