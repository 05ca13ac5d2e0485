"""The scheduler: due times, coalesced missed slots, backoff, staleness, and ticks against the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobkit import add_directory, all_runs, snapshot_document
from sqlalchemy import select

from accessiq.errors import ConfigurationError
from accessiq.jobs import scheduler
from accessiq.jobs.scheduler import backoff, first_slot, is_stale, latest_slot, next_after, period_of, snap
from accessiq.services import configure, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import Directory, DirectorySchedule, SyncRun

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


# -- pure time arithmetic ---------------------------------------------------------------------


OPERATOR = InputPolicy.operator()


def test_interval_slots_coalesce_a_day_off_into_one() -> None:
    now = T0 + timedelta(days=1, minutes=7)
    # 97 slots of 15 minutes passed; the run covers the latest, the next is on the same grid.
    assert latest_slot("15m", T0, now) == T0 + timedelta(days=1)
    assert next_after("15m", T0, now) == T0 + timedelta(days=1, minutes=15)
    assert next_after("15m", now + 20 * MIN, now) == now + 20 * MIN  # not due yet: unchanged


def test_cron_slots_coalesce() -> None:
    now = T0 + timedelta(hours=5, minutes=7)
    assert latest_slot("*/15 * * * *", T0, now) == T0 + timedelta(hours=5)
    assert next_after("*/15 * * * *", T0, now) == T0 + timedelta(hours=5, minutes=15)
    assert period_of("0 */6 * * *", T0) == timedelta(hours=6)


def test_first_slot_waits_one_period_after_the_last_run() -> None:
    assert first_slot("1h", T0, None) == T0
    assert first_slot("1h", T0, T0 - 10 * MIN) == T0 + 50 * MIN
    assert first_slot("1h", T0, T0 - timedelta(days=3)) == T0
    assert first_slot("0 * * * *", T0 + 5 * MIN, T0 + MIN) == T0 + 60 * MIN


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, timedelta(0)),
        (1, timedelta(0)),
        (2, 15 * MIN),
        (3, 45 * MIN),
        (4, 105 * MIN),
        (30, timedelta(hours=6)),
    ],
)
def test_backoff_doubles_the_gap_and_is_capped(failures: int, expected: timedelta) -> None:
    assert backoff(15 * MIN, failures) == expected
    # A period longer than the cap is the cap.
    assert backoff(timedelta(days=1), 9) == timedelta(days=1)


def test_snap_keeps_the_grid() -> None:
    assert snap("15m", T0, T0 + 16 * MIN) == T0 + 30 * MIN
    assert snap("15m", T0, T0 + 15 * MIN) == T0 + 15 * MIN
    assert snap("15m", T0, T0 - MIN) == T0
    assert snap("0 * * * *", T0, T0 + 61 * MIN) == T0 + 120 * MIN


def test_stale_after_three_periods() -> None:
    period = timedelta(hours=1)
    assert not is_stale(period, T0, T0 - timedelta(days=9), T0 + timedelta(hours=3))
    assert is_stale(period, T0, T0 - timedelta(days=9), T0 + timedelta(hours=3, seconds=1))
    # Never succeeded: counted from when the directory was created.
    assert is_stale(period, None, T0, T0 + timedelta(hours=4))


# -- ticks against the store (both backends) --------------------------------------------------


def _directory(store: Store, tmp_path: Path, name: str = "Acme", **settings: object) -> int:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(snapshot_document(3, name.lower())))
    return add_directory(store, name, path, **settings)


def _schedule(store: Store, directory_id: int) -> DirectorySchedule:
    with store.transaction() as session:
        return session.get_one(DirectorySchedule, directory_id)


def _finish(store: Store, run_id: int, status: str, at: datetime) -> None:
    with store.transaction() as session:
        run = session.get_one(SyncRun, run_id)
        run.status, run.started_at, run.finished_at = status, at, at


def test_off_schedule_queues_nothing(store: Store, tmp_path: Path) -> None:
    _directory(store, tmp_path, frequency="15m")
    assert scheduler.tick(store, T0) == []
    assert scheduler.tick(store, T0 + timedelta(days=2)) == []


def test_a_day_off_runs_once(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="15m", schedule_enabled=True)
    [first] = scheduler.tick(store, T0)
    _finish(store, first, "succeeded", T0)
    assert scheduler.tick(store, T0 + 5 * MIN) == []
    # The machine was off for a day: one run, for the latest slot; the next slot is on the grid.
    [late] = scheduler.tick(store, T0 + timedelta(days=1, minutes=7))
    assert scheduler.tick(store, T0 + timedelta(days=1, minutes=8)) == []
    runs_ = all_runs(store, directory_id)
    assert [r.id for r in runs_] == [first, late]
    assert runs_[1].trigger == "schedule" and runs_[1].status == "queued"
    assert runs_[1].scheduled_for == T0 + timedelta(days=1)
    assert _schedule(store, directory_id).next_run_at == T0 + timedelta(days=1, minutes=15)


def test_a_queued_run_covers_the_slot_and_a_running_one_delays_it(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="15m", schedule_enabled=True)
    [first] = scheduler.tick(store, T0)
    # Still queued at the next slot (workers busy): the slot is covered, no second run.
    assert scheduler.tick(store, T0 + 15 * MIN) == []
    assert _schedule(store, directory_id).next_run_at == T0 + 30 * MIN
    with store.transaction() as session:
        session.get_one(SyncRun, first).status = "running"
    # Running at the slot: its read began earlier, so the slot waits for it to end...
    assert scheduler.tick(store, T0 + 30 * MIN) == []
    assert _schedule(store, directory_id).next_run_at == T0 + 30 * MIN
    _finish(store, first, "succeeded", T0 + 33 * MIN)
    # ...and then runs once.
    [second] = scheduler.tick(store, T0 + 34 * MIN)
    assert all_runs(store, directory_id)[-1].scheduled_for == T0 + 30 * MIN
    assert second != first


def test_sync_now_while_scheduled_run_queued_returns_it(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="1h", schedule_enabled=True)
    [scheduled] = scheduler.tick(store, T0)
    with store.transaction() as session:
        directory = session.get_one(Directory, directory_id)
        run, created = runs.request_sync(session, directory)
        again, created_again = runs.request_sync(session, directory)
    assert (run.id, created, again.id, created_again) == (scheduled, False, scheduled, False)


def test_a_blocked_run_holds_scheduled_runs_until_an_admin_decides(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="15m", schedule_enabled=True)
    [first] = scheduler.tick(store, T0)
    with store.transaction() as session:
        run = session.get_one(SyncRun, first)
        run.status, run.started_at, run.finished_at, run.plan = "blocked", T0, T0, {"plan": {}}
    assert scheduler.tick(store, T0 + 15 * MIN) == []
    with store.transaction() as session:
        info = scheduler.schedule_info(session, session.get_one(Directory, directory_id), T0 + 16 * MIN)
    assert info["awaiting_approval"] == first
    runs.reject(store, first)
    [second] = scheduler.tick(store, T0 + 30 * MIN)
    assert second != first


def test_backoff_after_consecutive_failures(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="10m", schedule_enabled=True)
    [run] = scheduler.tick(store, T0)
    _finish(store, run, "failed", T0 + MIN)
    # One failure: the next slot as usual.
    [run] = scheduler.tick(store, T0 + 10 * MIN)
    _finish(store, run, "failed", T0 + 11 * MIN)
    # Two: the gap doubles (the 20-minute slot is skipped, the 30-minute one runs).
    assert scheduler.tick(store, T0 + 20 * MIN) == []
    assert _schedule(store, directory_id).next_run_at == T0 + 30 * MIN
    with store.transaction() as session:
        info = scheduler.schedule_info(session, session.get_one(Directory, directory_id), T0 + 21 * MIN)
    assert info["consecutive_failures"] == 2
    assert info["next_run_at"] == T0 + 30 * MIN
    [run] = scheduler.tick(store, T0 + 30 * MIN)
    _finish(store, run, "succeeded", T0 + 31 * MIN)
    [_] = scheduler.tick(store, T0 + 40 * MIN)  # success resets the backoff


def test_schedule_info_next_run_and_stale(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="1h", schedule_enabled=True)
    with store.transaction() as session:
        directory = session.get_one(Directory, directory_id)
        created = directory.created_at
        info = scheduler.schedule_info(session, directory, created)
    assert info["enabled"] and info["frequency"] == "1h" and info["next_run_at"] == created
    assert info["stale"] is False and info["last_success_at"] is None
    [run] = scheduler.tick(store, created)
    _finish(store, run, "succeeded", created)
    with store.transaction() as session:
        directory = session.get_one(Directory, directory_id)
        info = scheduler.schedule_info(session, directory, created + timedelta(hours=3, minutes=1))
    assert info["last_success_at"] == created
    assert info["stale"] is True
    assert info["next_run_at"] == created + timedelta(hours=1)


def test_changing_the_frequency_recomputes_the_next_run(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path, frequency="1h", schedule_enabled=True)
    [run] = scheduler.tick(store, T0)
    _finish(store, run, "succeeded", T0)
    assert _schedule(store, directory_id).next_run_at == T0 + timedelta(hours=1)
    with store.transaction() as session:
        configure.set_schedule(
            session, store.secrets, session.get_one(Directory, directory_id), frequency="15m", policy=OPERATOR
        )
    scheduler.tick(store, T0 + MIN)
    assert _schedule(store, directory_id).next_run_at == T0 + 15 * MIN
    with store.transaction() as session:
        configure.set_schedule(
            session, store.secrets, session.get_one(Directory, directory_id), enabled=False, policy=OPERATOR
        )
    scheduler.tick(store, T0 + 2 * MIN)
    assert _schedule(store, directory_id).next_run_at is None


def test_set_schedule_refuses_a_bad_frequency(store: Store, tmp_path: Path) -> None:
    directory_id = _directory(store, tmp_path)
    with pytest.raises(ConfigurationError, match="frequency"), store.transaction() as session:
        configure.set_schedule(
            session, store.secrets, session.get_one(Directory, directory_id), frequency="often", policy=OPERATOR
        )


def test_two_schedulers_queue_each_slot_once(store: Store, tmp_path: Path) -> None:
    ids = [_directory(store, tmp_path, f"D{i}", frequency="5m", schedule_enabled=True) for i in range(5)]
    first = scheduler.tick(store, T0)
    second = scheduler.tick(store, T0)  # a second scheduler (another worker) at the same moment
    assert len(first) == 5 and second == []
    with store.transaction() as session:
        slots = session.execute(select(SyncRun.directory_id, SyncRun.scheduled_for)).all()
    assert sorted(slots) == [(i, T0) for i in ids]
