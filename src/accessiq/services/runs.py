"""Runs: ask for a sync, carry it out, list and show runs, approve or reject stored plans."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.errors import ConfigurationError, ConflictError, NotFoundError, RunInProgressError
from accessiq.jobs import queue
from accessiq.jobs.worker import execute_with_lease
from accessiq.services import parse_id
from accessiq.services.directories import get_directory
from accessiq.store.database import Store
from accessiq.store.tables import Directory, RunChange, RunError, SyncRun, User, utcnow
from accessiq.sync import engine
from accessiq.sync.planner import membership_label

ACTIVE = queue.ACTIVE
COUNT_KEYS = (
    "users_created",
    "users_updated",
    "users_deactivated",
    "users_reactivated",
    "users_unchanged",
    "user_errors",
    "groups_created",
    "groups_updated",
    "groups_deleted",
    "groups_processed",
    "memberships_added",
    "memberships_removed",
)


def request_sync(
    session: Session,
    directory: Directory,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    full: bool = False,
) -> tuple[SyncRun, bool]:
    """Sync Now: queue a run, or return the one queued or running for the directory. (run, created)."""
    return queue.enqueue_run(
        session,
        directory.id,
        trigger=trigger,
        dry_run=dry_run,
        full=full,
    )


def run_now(store: Store, run_id: int, progress: engine.Progress | None = None) -> SyncRun:
    """Carry a queued run to its end in this process, holding a lease as a worker does.

    If a worker claimed the run first, wait for that worker to finish it instead.
    """
    try:
        return execute_with_lease(store, run_id, progress)
    except ConflictError:
        return wait_for_run(store, run_id, progress)


def sync_in_foreground(
    store: Store,
    directory_ref: str | int,
    *,
    dry_run: bool = False,
    full: bool = False,
    wait: bool = True,
    progress: engine.Progress | None = None,
    announce: Callable[[str], None] | None = None,
) -> SyncRun:
    """`accessiq sync`: run the directory's sync to its end here, or follow the live process running it.

    A queued run of the same kind is claimed and run in this process. A run another live process
    holds is waited for (RunInProgressError instead when not `wait`); if that process dies
    meanwhile, its run is recovered and the sync goes on here.
    """
    while True:
        with store.transaction() as session:
            directory = get_directory(session, directory_ref)
            run, created = request_sync(session, directory, trigger="manual", dry_run=dry_run, full=full)
            run_id, status, holder, queued_dry_run = run.id, run.status, run.lease_owner, run.dry_run
            name = directory.name
        if status == "queued":
            if queued_dry_run != dry_run:
                kind = "dry run" if queued_dry_run else "sync that applies its changes"
                raise RunInProgressError(
                    f"run {run_id} of {name} (a {kind}) is queued",
                    hint=f"let a worker run it, or cancel it: accessiq runs cancel {run_id}",
                )
            if not created and announce is not None:
                announce(f"run {run_id} of {name} was queued; running it here")
            try:
                return execute_with_lease(store, run_id, progress)
            except ConflictError:
                continue  # a worker claimed it meanwhile: follow that worker
        if not wait:
            raise RunInProgressError(
                f"run {run_id} of {name} is running in {holder or 'another process'}",
                hint=f"follow it: accessiq runs show {run_id}; or wait for it: accessiq sync {name}",
            )
        if announce is not None:
            announce(f"run {run_id} of {name} is running in {holder or 'another process'}; waiting for it")
        finished = wait_for_run(store, run_id, progress)
        if finished.status != "failed" or not (finished.message or "").startswith("worker lost"):
            return finished
        # Its holder died while we waited: the retry (or a new run) is ours to run.


def wait_for_run(
    store: Store, run_id: int, progress: engine.Progress | None = None, poll_seconds: float = 0.5
) -> SyncRun:
    """Block until the run has finished, reporting its progress as its holder records it.

    A run whose holder dies meanwhile is recovered here (failed, "worker lost"), so this returns.
    """
    while True:
        with store.transaction() as session:
            run = session.get_one(SyncRun, run_id)
            if queue.lease_lapsed(run, queue.db_now(session)):
                queue.recover_lapsed(session, directory_id=run.directory_id)
                session.refresh(run)
            if run.status in engine.FINISHED:
                return run
            report = dict(run.progress or {})
        if progress is not None and report:
            progress(str(report.get("phase", "reading")), int(report.get("users", 0)), int(report.get("groups", 0)))
        time.sleep(poll_seconds)


def get_run(session: Session, run_id: int | str) -> SyncRun:
    row_id = parse_id(run_id)
    run = session.get(SyncRun, row_id) if row_id is not None else None
    if run is None:
        raise NotFoundError(f"no run {run_id!r}", hint="see `accessiq runs list`")
    return run


def list_runs(session: Session, directory: Directory | None = None, limit: int = 50) -> list[SyncRun]:
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if directory is not None:
        query = query.where(SyncRun.directory_id == directory.id)
    return list(session.scalars(query))


def run_json(session: Session, run: SyncRun, *, changes: bool = False) -> dict[str, Any]:
    """A run in the shape scripts rely on (SPEC §6)."""
    directory = session.get_one(Directory, run.directory_id)
    counts = {key: int((run.counts or {}).get(key, 0)) for key in COUNT_KEYS}
    counts |= {k: v for k, v in (run.counts or {}).items() if k not in counts}
    errors = [
        {"object": e.object, "external_id": e.external_id, "message": e.message}
        for e in session.scalars(select(RunError).where(RunError.run_id == run.id).order_by(RunError.id))
    ]
    if run.status == "failed" and run.message:
        errors.insert(0, {"object": "run", "external_id": None, "message": run.message})
    data: dict[str, Any] = {
        "id": run.id,
        "directory": {"id": directory.id, "name": directory.name},
        "status": run.status,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "counts": counts,
        "errors": errors,
        "message": run.message,
        "notes": run.notes or [],
        # The notes that are ordinary information (a first full read), not warnings.
        "notes_info": [n for n in run.notes or [] if n in _ordinary_notes(directory.provider)],
        "resolution": run.resolution,
        "pending_approval": run.plan is not None and run.resolution is None,
        "source_run": run.source_run_id,
        "progress": run.progress or {},
        "holder": run.lease_owner if run.status == "running" else None,
        # Its holder stopped renewing the lease: the process died; the next claim or request fails it.
        "lost": queue.lease_lapsed(run),
    }
    if changes:
        data["changes"] = run_changes(session, run)
    return data


def _ordinary_notes(provider: str) -> tuple[str, ...]:
    try:
        return connector_class(provider, require_installed=False).ordinary_notes
    except ConfigurationError:
        return ()  # a provider no longer registered: its notes stay warnings


def run_changes(
    session: Session, run: SyncRun, obj: str | None = None, action: str | None = None
) -> list[dict[str, Any]]:
    """The run's changes in apply order, each as JSON (`object`, `action`, `external_id`, `label`,
    `detail`); a log row holding one user's several membership changes is listed change by change."""
    query = select(RunChange.object, RunChange.action, RunChange.external_id, RunChange.label, RunChange.detail)
    query = query.where(RunChange.run_id == run.id)
    if obj:
        query = query.where(RunChange.object == obj)
    if action:
        query = query.where(RunChange.action == action)
    changes: list[dict[str, Any]] = []
    for obj_, action_, external_id, label, detail in session.execute(query.order_by(RunChange.seq)):
        change = {"object": obj_, "action": action_, "external_id": external_id, "label": label, "detail": detail}
        groups = detail.get("groups") if obj_ == "group_membership" else None
        if groups is None:
            changes.append(change)
        else:
            user = detail["user"]
            changes.extend(
                change | {"label": membership_label(user, group)[:500], "detail": {"group": group, "user": user}}
                for group in groups
            )
    return changes


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def approve(store: Store, run_id: int) -> SyncRun:
    return engine.apply_stored_plan(store, run_id)


def reject(store: Store, run_id: int) -> SyncRun:
    return engine.reject_stored_plan(store, run_id)


def cancel_run(session: Session, run: SyncRun) -> SyncRun:
    """Cancel a run: a queued one ends `canceled` now; a running one at its worker's next checkpoint.

    Either way nothing of it is applied (a run already applying finishes: its apply is atomic).
    """
    # Lock the row first so a worker cannot claim it between our read and our write.
    session.refresh(run, with_for_update=True)
    if run.status == "queued":
        run.status = "canceled"
        run.message = "canceled by an administrator before it started"
        run.finished_at = utcnow()
    elif run.status == "running":
        run.cancel_requested_at = run.cancel_requested_at or utcnow()
    else:
        raise ConflictError(f"run {run.id} is {run.status}; only queued or running runs can be canceled")
    return run


SUCCESS = ("succeeded", "succeeded_with_errors")


@dataclass(frozen=True)
class MetricsSnapshot:
    """What /metrics reports, read in one transaction: per directory run counts, users, last success."""

    names: dict[int, str]
    by_status: list[Any]
    users: list[Any]
    last_success: list[Any]
    recent: list[Any]


def metrics_snapshot(session: Session, recent_runs: int) -> MetricsSnapshot:
    """Run and user counts by directory, and the newest `recent_runs` finished runs (for durations)."""
    names: dict[int, str] = {row[0]: row[1] for row in session.execute(select(Directory.id, Directory.name))}
    by_status = session.execute(
        select(SyncRun.directory_id, SyncRun.status, func.count()).group_by(SyncRun.directory_id, SyncRun.status)
    ).all()
    users = session.execute(
        select(User.directory_id, User.status, func.count())
        .where(User.directory_id.is_not(None))
        .group_by(User.directory_id, User.status)
    ).all()
    last_success = session.execute(
        select(SyncRun.directory_id, func.max(SyncRun.finished_at))
        .where(SyncRun.status.in_(SUCCESS), SyncRun.dry_run.is_(False))
        .group_by(SyncRun.directory_id)
    ).all()
    recent = session.execute(
        select(
            SyncRun.directory_id,
            SyncRun.started_at,
            SyncRun.finished_at,
            SyncRun.status,
            SyncRun.dry_run,
            SyncRun.counts,
        )
        .where(SyncRun.finished_at.is_not(None))
        .order_by(SyncRun.id.desc())
        .limit(recent_runs)
    ).all()
    return MetricsSnapshot(names, list(by_status), list(users), list(last_success), list(recent))
