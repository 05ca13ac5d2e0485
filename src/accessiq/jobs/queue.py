"""The runs table as a job queue: claim with a lease, renew it, release it, recover expired leases.

Every statement here is the same on PostgreSQL and SQLite. On PostgreSQL `FOR UPDATE SKIP LOCKED`
lets any number of workers on any number of machines poll one table without blocking each other;
SQLite ignores the locking clause, and its `BEGIN IMMEDIATE` transactions (see store.database)
serialize the claims of the threads of its one process instead.

Lease times come from the database clock (`db_now`), so workers on machines whose clocks disagree
still agree on when a lease has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from accessiq.errors import AccessIQError, ConflictError
from accessiq.store.database import Store
from accessiq.store.tables import SyncRun, utcnow

log = structlog.get_logger("accessiq.jobs")

ACTIVE = ("queued", "running")


class LeaseLostError(AccessIQError):
    """This worker no longer holds the run (its lease expired and another worker took over)."""

    kind = "lease_lost"


class WorkerSettings(BaseSettings):
    """Queue timings, from `ACCESSIQ_WORKER_*`; the defaults suit production."""

    model_config = SettingsConfigDict(env_prefix="ACCESSIQ_WORKER_", extra="ignore")

    lease_seconds: float = Field(default=30, gt=0, description="how long a claim holds without a heartbeat")
    poll_seconds: float = Field(default=1.0, gt=0, description="how often an idle slot looks for work")
    tick_seconds: float = Field(default=1.0, gt=0, description="scheduler and lease-recovery period")
    grace_seconds: float = Field(default=20, ge=0, description="how long a stopping worker lets runs finish")
    max_attempts: int = Field(default=3, ge=1, description="runs of one request, counting retries")

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)


@dataclass(frozen=True)
class Claim:
    """A run this worker now holds, until `lease_expires_at` unless renewed."""

    run_id: int
    directory_id: int
    owner: str
    lease_expires_at: datetime


@dataclass(frozen=True)
class LeaseState:
    """What a worker needs to know about a run it holds, read at a checkpoint or heartbeat."""

    held: bool
    cancel_requested: bool
    status: str


@dataclass(frozen=True)
class Recovered:
    """A run whose worker was lost: now failed (or canceled), and the retry queued for it, if any."""

    run_id: int
    directory_id: int
    status: str
    retry_run_id: int | None


def db_now(session: Session) -> datetime:
    """The database's clock on PostgreSQL (shared by all machines); this process's on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.clock_timestamp()))
        if value is not None:
            return value
    return utcnow()


def active_run(session: Session, directory_id: int) -> SyncRun | None:
    """The directory's queued or running run, if it has one (the database allows one of each)."""
    return session.scalar(
        select(SyncRun)
        .where(SyncRun.directory_id == directory_id, SyncRun.status.in_(ACTIVE))
        .order_by(SyncRun.status == "queued")
        .limit(1)
    )


def enqueue_run(
    session: Session,
    directory_id: int,
    *,
    trigger: str,
    dry_run: bool = False,
    full: bool = False,
    scheduled_for: datetime | None = None,
) -> tuple[SyncRun, bool]:
    """Queue a run of the directory: the one way Sync Now (CLI, API, UI) and the scheduler ask for work.

    Runs whose process died are recovered first, so they never count as in progress. While a run
    is queued or running, that run is returned instead (a queued one asked again with `full`
    becomes a full run). Returns (run, created).
    """
    recover_lapsed(session, directory_id=directory_id)
    active = active_run(session, directory_id)
    if active is None:
        run = SyncRun(
            directory_id=directory_id,
            trigger=trigger,
            mode="full" if full else "incremental",
            dry_run=dry_run,
            status="queued",
            requested_mode="full" if full else None,
            scheduled_for=scheduled_for,
            counts={},
            notes=[],
            progress={},
        )
        try:
            # Two requests at once: the database lets one queued run per directory through.
            with session.begin_nested():
                session.add(run)
            return run, True
        except IntegrityError:
            active = active_run(session, directory_id)
            if active is None:
                raise
    if full and active.status == "queued":
        active.requested_mode = active.mode = "full"
    return active, False


def claim_next(store: Store, owner: str, lease: timedelta) -> Claim | None:
    """Take the oldest claimable queued run (manual and API before scheduled), or None.

    A queued run is not claimable while another run of its directory is running.
    """
    try:
        with store.transaction() as session:
            other = aliased(SyncRun)
            directory_busy = exists().where(other.directory_id == SyncRun.directory_id, other.status == "running")
            run = session.scalar(
                select(SyncRun)
                .where(SyncRun.status == "queued", ~directory_busy)
                .order_by(SyncRun.trigger == "schedule", SyncRun.queued_at, SyncRun.id)
                .limit(1)
                .with_for_update(skip_locked=True, of=SyncRun)
            )
            if run is None:
                return None
            return _take(session, run, owner, lease)
    except IntegrityError:
        # The one-running-run-per-directory index refused: a run of the same directory started
        # between our check and our update (an approval, another claim). Try again next poll.
        return None


def claim_run(store: Store, run_id: int, owner: str, lease: timedelta) -> Claim:
    """Take one particular queued run (e.g. `accessiq sync` running its own run in-process)."""
    try:
        with store.transaction() as session:
            run = session.scalar(select(SyncRun).where(SyncRun.id == run_id).with_for_update(skip_locked=True))
            if run is None or run.status != "queued":
                raise ConflictError(f"run {run_id} is not queued; a worker may have taken it")
            return _take(session, run, owner, lease)
    except IntegrityError:
        raise ConflictError(f"another run of the directory of run {run_id} is running") from None


def _take(session: Session, run: SyncRun, owner: str, lease: timedelta) -> Claim:
    expires = db_now(session) + lease
    run.status = "running"
    run.lease_owner = owner
    run.lease_expires_at = expires
    run.started_at = utcnow()
    session.flush()
    return Claim(run.id, run.directory_id, owner, expires)


def renew_leases(store: Store, run_ids: list[int], owner: str, lease: timedelta) -> dict[int, LeaseState]:
    """Extend this worker's leases on `run_ids`; returns each run's state as of now.

    A run whose row is locked is one we are finishing right now (the apply transaction writes the
    row last): it is skipped rather than waited for, and it cannot be recovered while locked
    either, because recovery skips locked rows too. `FOR NO KEY UPDATE`: the key-share locks that
    the apply's change log takes on the row must not hold the renewal off.
    """
    if not run_ids:
        return {}
    with store.transaction() as session:
        expires = db_now(session) + lease
        free = list(
            session.scalars(
                select(SyncRun.id)
                .where(SyncRun.id.in_(run_ids), SyncRun.status == "running", SyncRun.lease_owner == owner)
                .with_for_update(skip_locked=True, key_share=True)
            )
        )
        if free:
            session.execute(update(SyncRun).where(SyncRun.id.in_(free)).values(lease_expires_at=expires))
        return _states(session, run_ids, owner)


def lease_state(store: Store, run_id: int, owner: str) -> LeaseState:
    """Whether this worker still holds the run and whether an administrator asked to cancel it."""
    with store.transaction() as session:
        return _states(session, [run_id], owner)[run_id]


def _states(session: Session, run_ids: list[int], owner: str) -> dict[int, LeaseState]:
    rows = session.execute(
        select(SyncRun.id, SyncRun.status, SyncRun.lease_owner, SyncRun.cancel_requested_at).where(
            SyncRun.id.in_(run_ids)
        )
    ).all()
    found = {
        row.id: LeaseState(
            held=row.status == "running" and row.lease_owner == owner,
            cancel_requested=row.cancel_requested_at is not None,
            status=row.status,
        )
        for row in rows
    }
    gone = LeaseState(held=False, cancel_requested=False, status="deleted")
    return {run_id: found.get(run_id, gone) for run_id in run_ids}


def release_run(store: Store, run_id: int, owner: str) -> bool:
    """Give a running run back to the queue untouched (a stopping worker); False if not ours."""
    try:
        with store.transaction() as session:
            released = session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id, SyncRun.status == "running", SyncRun.lease_owner == owner)
                .values(
                    status="queued",
                    lease_owner=None,
                    lease_expires_at=None,
                    started_at=None,
                    progress={},
                )
            )
            return bool(getattr(released, "rowcount", 0))
    except IntegrityError:
        # Another run of the directory was queued meanwhile; that one will do the work.
        with store.transaction() as session:
            run = session.get_one(SyncRun, run_id)
            if run.status == "running" and run.lease_owner == owner:
                run.status = "canceled"
                run.message = "its worker stopped before applying; another queued run of the directory replaces it"
                run.finished_at = utcnow()
                run.lease_expires_at = None
        return False


def end_lease(store: Store, run_id: int, owner: str) -> None:
    """Drop the lease of a finished run; `lease_owner` stays to tell which worker ran it."""
    with store.transaction() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.lease_owner == owner, SyncRun.status != "running")
            .values(lease_expires_at=None)
        )


def recover_expired(store: Store, max_attempts: int | None = None, limit: int = 50) -> list[Recovered]:
    """Fail the running runs whose lease expired and queue a retry of each (up to `max_attempts`)."""
    with store.transaction() as session:
        return recover_lapsed(session, max_attempts, limit=limit)


def recover_lapsed(
    session: Session, max_attempts: int | None = None, *, directory_id: int | None = None, limit: int = 50
) -> list[Recovered]:
    """Fail the running runs whose lease lapsed (of one directory, or all) and queue a retry of each.

    Every path that claims or requests runs calls this first — a worker's maintenance loop,
    `accessiq sync`, `runs request`, Sync Now in the API and the web UI — so a directory whose
    process died is never left `running`. A lease lapses only when its holder stopped renewing
    it: killed, frozen, or cut off from the database. Its apply transaction, if it had begun
    one, died with its connection, so nothing of the run was applied and the cursor is as before.
    """
    now = db_now(session)
    query = select(SyncRun).where(
        SyncRun.status == "running",
        SyncRun.lease_expires_at.is_not(None),
        SyncRun.lease_expires_at < now,
    )
    if directory_id is not None:
        query = query.where(SyncRun.directory_id == directory_id)
    lost = list(session.scalars(query.order_by(SyncRun.id).limit(limit).with_for_update(skip_locked=True)))
    attempts = max_attempts or WorkerSettings().max_attempts
    recovered = [_recover(session, run, attempts) for run in lost]
    for item in recovered:
        log.warning(
            "run.worker_lost",
            run_id=item.run_id,
            directory_id=item.directory_id,
            status=item.status,
            retry_run_id=item.retry_run_id,
        )
    return recovered


def lease_lapsed(run: SyncRun, now: datetime | None = None) -> bool:
    """True for a `running` run whose holder stopped renewing its lease: lost, even before recovery."""
    if run.status != "running" or run.lease_expires_at is None:
        return False
    return run.lease_expires_at < (now or utcnow())


def _recover(session: Session, run: SyncRun, max_attempts: int) -> Recovered:
    expired = run.lease_expires_at.isoformat() if run.lease_expires_at else "?"
    canceled = run.cancel_requested_at is not None
    run.status = "canceled" if canceled else "failed"
    run.message = f"worker lost: {run.lease_owner} stopped renewing its lease (expired {expired}); nothing was applied"
    run.finished_at = utcnow()
    run.lease_expires_at = None
    run.progress = {**(run.progress or {}), "phase": "failed"}
    # Free the directory's running slot before its retry is queued.
    session.flush()
    retry_id: int | None = None
    if not canceled and (run.attempt or 1) < max_attempts:
        retry = SyncRun(
            directory_id=run.directory_id,
            trigger=run.trigger,
            mode=run.requested_mode or "incremental",
            dry_run=run.dry_run,
            status="queued",
            requested_mode=run.requested_mode,
            scheduled_for=run.scheduled_for,
            attempt=(run.attempt or 1) + 1,
            retry_of_run_id=run.id,
            counts={},
            notes=[f"retry of run {run.id}, whose worker was lost"],
            progress={},
        )
        try:
            with session.begin_nested():
                session.add(retry)
            retry_id = retry.id
        except IntegrityError:
            # A run of the directory is already queued (a Sync Now); it does the retry's work.
            retry_id = None
    elif not canceled:
        run.message += f"; not retried after {run.attempt} attempts"
    return Recovered(run.id, run.directory_id, run.status, retry_id)
