"""The scheduler: turns each directory's `frequency` into queued runs with trigger `schedule`.

An interval schedule (`15m`, `1h`) fires on a fixed grid: slot, slot + interval, ... A cron
schedule fires at the expression's times, evaluated in UTC. Either way:

- missed slots coalesce: a machine that was off for a day queues one run, not 96;
- a slot that comes due while the directory's run is still queued is covered by that run; while
  one is running, the slot waits for it to end and then queues one run;
- after consecutive failed runs the next slot is pushed back (doubling, capped);
- a directory is stale when its last successful run is older than three periods.

Several schedulers may tick against one PostgreSQL at once (every `accessiq worker` runs one):
each due schedule row is locked with `FOR UPDATE SKIP LOCKED`, so each slot is queued once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from accessiq.jobs.queue import active_run, db_now, enqueue_run
from accessiq.store.bulk import insert_missing
from accessiq.store.database import Store
from accessiq.store.tables import Directory, DirectorySchedule, SyncRun, utcnow
from accessiq.sync.settings import SyncSettings, is_cron, parse_interval

log = structlog.get_logger("accessiq.jobs")

SUCCESS = ("succeeded", "succeeded_with_errors")
# Backoff doubles per consecutive failure but never beyond this (or one period, if longer).
MAX_BACKOFF = timedelta(hours=6)
STALE_PERIODS = 3
_DEFAULTS = SyncSettings()


# -- pure time arithmetic ---------------------------------------------------------------------


def period_of(frequency: str, now: datetime | None = None) -> timedelta:
    """How long one period of the schedule is; for cron, the gap between its next two times."""
    if is_cron(frequency):
        it = croniter(frequency, now or utcnow())
        first = it.get_next(datetime)
        return it.get_next(datetime) - first
    return parse_interval(frequency)


def next_after(frequency: str, slot: datetime, now: datetime) -> datetime:
    """The first slot of the schedule after `now`, on the grid that `slot` belongs to."""
    if is_cron(frequency):
        following: datetime = croniter(frequency, max(slot, now)).get_next(datetime)
        return following
    interval = parse_interval(frequency)
    if slot > now:
        return slot
    return slot + interval * ((now - slot) // interval + 1)


def latest_slot(frequency: str, slot: datetime, now: datetime) -> datetime:
    """The latest slot at or before `now` on the grid of a due `slot` (the one a coalesced run covers)."""
    if is_cron(frequency):
        previous: datetime = croniter(frequency, now).get_prev(datetime)
        return max(slot, previous)
    interval = parse_interval(frequency)
    return slot + interval * ((now - slot) // interval)


def first_slot(frequency: str, now: datetime, last_run_at: datetime | None) -> datetime:
    """When a newly enabled (or changed) schedule first fires.

    One period after the directory's last run, or now if that is past or there was none, so a
    directory whose first sync an administrator just ran is not synced again at once.
    """
    if last_run_at is None:
        return now
    if is_cron(frequency):
        return max(now, croniter(frequency, last_run_at).get_next(datetime))
    return max(now, last_run_at + parse_interval(frequency))


def backoff(period: timedelta, failures: int) -> timedelta:
    """How long after the last of `failures` consecutive failed runs the next run may start.

    One failure waits for the next slot as usual; then the gap between runs doubles (two
    periods, four, eight...) up to MAX_BACKOFF, so a broken directory is not hammered.
    """
    if failures <= 1:
        return timedelta(0)
    return min(period * (2 ** (failures - 1) - 1), max(period, MAX_BACKOFF))


def snap(frequency: str, slot: datetime, earliest: datetime) -> datetime:
    """The first slot on `slot`'s grid at or after `earliest`."""
    if earliest <= slot:
        return slot
    if is_cron(frequency):
        following: datetime = croniter(frequency, earliest - timedelta(microseconds=1)).get_next(datetime)
        return following
    interval = parse_interval(frequency)
    return slot + interval * -((slot - earliest) // interval)


def is_stale(period: timedelta, last_success_at: datetime | None, since: datetime, now: datetime) -> bool:
    """True when the last success (or, never having succeeded, `since`) is over three periods old."""
    return now - (last_success_at or since) > STALE_PERIODS * period


# -- schedule state in the store --------------------------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    enabled: bool
    frequency: str

    @property
    def key(self) -> str:
        return f"{self.frequency}|{'on' if self.enabled else 'off'}"


def _wanted(settings: dict[str, Any] | None) -> _Wanted:
    # The stored settings leave defaults out; read the two fields without a full validation,
    # which the scheduler would otherwise repeat for every directory on every tick.
    settings = settings or {}
    return _Wanted(
        enabled=bool(settings.get("schedule_enabled", _DEFAULTS.schedule_enabled)),
        frequency=str(settings.get("frequency", _DEFAULTS.frequency)).strip(),
    )


@dataclass(frozen=True)
class History:
    """What the runs table says about a directory's recent outcomes."""

    consecutive_failures: int
    last_failure_at: datetime | None
    last_success_at: datetime | None
    last_run_at: datetime | None


def history(session: Session, directory_id: int, window: int = 20) -> History:
    """Consecutive failed runs since the last success (blocked and canceled runs do not count)."""
    rows = session.execute(
        select(SyncRun.status, SyncRun.started_at, SyncRun.finished_at)
        .where(
            SyncRun.directory_id == directory_id,
            SyncRun.dry_run.is_(False),
            SyncRun.finished_at.is_not(None),
        )
        .order_by(SyncRun.id.desc())
        .limit(window)
    ).all()
    failures = 0
    last_failure_at = None
    for row in rows:
        if row.status in SUCCESS:
            break
        if row.status == "failed":
            failures += 1
            last_failure_at = last_failure_at or row.finished_at
    last_success_at = session.scalar(
        select(SyncRun.finished_at)
        .where(
            SyncRun.directory_id == directory_id,
            SyncRun.dry_run.is_(False),
            SyncRun.status.in_(SUCCESS),
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    last_run_at = rows[0].started_at if rows else None
    return History(failures, last_failure_at, last_success_at, last_run_at)


def tick(store: Store, now: datetime | None = None) -> list[int]:
    """One pass of the scheduler: refresh changed schedules, queue the due runs; returns their ids."""
    with store.transaction() as session:
        _reconcile(session, now or db_now(session))
    queued: list[int] = []
    with store.transaction() as session:
        current = now or db_now(session)
        due = session.scalars(
            select(DirectorySchedule)
            .where(DirectorySchedule.next_run_at <= current)
            .order_by(DirectorySchedule.next_run_at)
            .limit(200)
            .with_for_update(skip_locked=True)
        )
        for row in list(due):
            run_id = _fire(session, row, current)
            if run_id is not None:
                queued.append(run_id)
    return queued


def _reconcile(session: Session, now: datetime) -> None:
    """Give every directory a schedule row that matches its current frequency and on/off setting."""
    rows = session.execute(
        select(Directory.id, Directory.settings, DirectorySchedule.schedule_key).outerjoin(
            DirectorySchedule, DirectorySchedule.directory_id == Directory.id
        )
    ).all()
    for directory_id, settings, key in rows:
        wanted = _wanted(settings)
        if key == wanted.key:
            continue
        if key is None:
            _insert_schedule(session, directory_id)
        row = session.scalar(
            select(DirectorySchedule)
            .where(DirectorySchedule.directory_id == directory_id)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            continue  # another scheduler holds it
        # The settings as they are now, under the row lock: the list above may be stale by the time
        # the lock is ours (other schedulers' inserts are waited for), and a stale "off" would switch
        # a schedule off that another scheduler just switched on, and move its grid when it comes back.
        wanted = _wanted(session.scalar(select(Directory.settings).where(Directory.id == directory_id)))
        if row.schedule_key == wanted.key:
            continue  # another scheduler has just done this
        row.schedule_key = wanted.key
        row.updated_at = now
        row.next_run_at = _initial_next(session, directory_id, wanted, now)
        log.info(
            "schedule.changed",
            directory_id=directory_id,
            frequency=wanted.frequency,
            enabled=wanted.enabled,
            next_run_at=row.next_run_at.isoformat() if row.next_run_at else None,
        )


def _insert_schedule(session: Session, directory_id: int) -> None:
    # Two schedulers may meet a new directory at once; the second insert is a no-op.
    values = {"directory_id": directory_id, "schedule_key": "", "updated_at": utcnow()}
    insert_missing(session, DirectorySchedule, values)


def _initial_next(session: Session, directory_id: int, wanted: _Wanted, now: datetime) -> datetime | None:
    if not wanted.enabled or not _valid(wanted.frequency):
        return None
    return first_slot(wanted.frequency, now, history(session, directory_id).last_run_at)


def _valid(frequency: str) -> bool:
    try:
        period_of(frequency)
    except ValueError:
        return False
    return True


def _fire(session: Session, row: DirectorySchedule, now: datetime) -> int | None:
    """Queue the run a due schedule row asks for, unless a run or the backoff already covers it."""
    directory = session.get(Directory, row.directory_id)
    slot = row.next_run_at
    if directory is None or slot is None:
        return None
    wanted = _wanted(directory.settings)
    if wanted.key != row.schedule_key or not wanted.enabled:
        return None  # settings changed since the last reconcile; the next tick recomputes
    frequency = wanted.frequency
    covering = latest_slot(frequency, slot, now)
    following = next_after(frequency, slot, now)
    bound = log.bind(directory_id=directory.id, slot=covering.isoformat())

    active = active_run(session, directory.id)
    if active is not None and active.status == "running":
        # Its read began before this slot: the slot gets a run of its own once this one ends.
        return None
    if active is not None:
        row.last_slot_at, row.next_run_at = covering, following
        bound.info("schedule.covered", run_id=active.id)
        return None

    waiting = awaiting_approval(session, directory.id)
    if waiting is not None:
        # Another run would plan the same mass deactivation again; the admin decides first.
        row.last_slot_at, row.next_run_at = covering, following
        bound.info("schedule.awaiting_approval", run_id=waiting)
        return None

    past = history(session, directory.id)
    if past.consecutive_failures and past.last_failure_at is not None:
        earliest = past.last_failure_at + backoff(period_of(frequency, now), past.consecutive_failures)
        if earliest > now:
            row.next_run_at = snap(frequency, slot, earliest)
            bound.info(
                "schedule.backoff",
                failures=past.consecutive_failures,
                next_run_at=row.next_run_at.isoformat(),
            )
            return None

    run, created = enqueue_run(session, directory.id, trigger="schedule", scheduled_for=covering)
    row.last_slot_at, row.next_run_at = covering, following
    if not created:
        # A Sync Now queued a run of this directory a moment ago; it covers the slot.
        return None
    bound.info("schedule.queued", run_id=run.id, next_run_at=following.isoformat())
    return run.id


def awaiting_approval(session: Session, directory_id: int) -> int | None:
    """The blocked run of this directory that waits for an administrator's decision, if any."""
    return session.scalar(
        select(SyncRun.id)
        .where(
            SyncRun.directory_id == directory_id,
            SyncRun.status == "blocked",
            SyncRun.resolution.is_(None),
            SyncRun.plan.is_not(None),
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


# -- what the CLI, API and UI show and change -------------------------------------------------


def schedule_info(session: Session, directory: Directory, now: datetime | None = None) -> dict[str, Any]:
    """The directory's schedule as `directories show` and the API present it.

    Keys: enabled, frequency, next_run_at (None while off), awaiting_approval (the blocked run that
    holds scheduled runs back, or None), consecutive_failures,
    backoff_until (None unless failures push the next run back), last_success_at, stale.
    """
    now = now or db_now(session)
    wanted = _wanted(directory.settings)
    row = session.get(DirectorySchedule, directory.id)
    past = history(session, directory.id)
    next_run_at: datetime | None = None
    backoff_until: datetime | None = None
    stale = False
    if wanted.enabled and _valid(wanted.frequency):
        period = period_of(wanted.frequency, now)
        if row is not None and row.schedule_key == wanted.key and row.next_run_at is not None:
            next_run_at = row.next_run_at
        else:
            next_run_at = first_slot(wanted.frequency, now, past.last_run_at)
        if past.consecutive_failures and past.last_failure_at is not None:
            earliest = past.last_failure_at + backoff(period, past.consecutive_failures)
            if earliest > next_run_at:
                backoff_until = earliest
                next_run_at = snap(wanted.frequency, next_run_at, earliest)
        stale = is_stale(period, past.last_success_at, directory.created_at, now)
    return {
        "enabled": wanted.enabled,
        "frequency": wanted.frequency,
        "next_run_at": next_run_at,
        "awaiting_approval": awaiting_approval(session, directory.id),
        "consecutive_failures": past.consecutive_failures,
        "backoff_until": backoff_until,
        "last_success_at": past.last_success_at,
        "stale": stale,
    }
