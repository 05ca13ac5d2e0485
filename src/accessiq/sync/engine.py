"""The sync engine: read -> scope/map -> plan -> guard -> apply -> record, for one run."""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.connectors.base import GroupUpserted, ReadFinished, ReadStarted, SourceEvent, UserUpserted
from accessiq.errors import AccessIQError, ConflictError, PlanRejectedError, RunCanceledError
from accessiq.store.database import Store, is_stale_read
from accessiq.store.tables import Cursor, Directory, SyncRun, utcnow
from accessiq.sync.affected import (
    MirrorDiff,
    affected_users,
    config_digest,
    connection_digests,
    diff_rows,
    guard_changes,
    guard_digests,
    old_groups,
    resolved_refs,
    restrict,
)
from accessiq.sync.apply import MirrorChange, MirrorRecord, apply_plan, record_log
from accessiq.sync.context import build_connector, plan_context, settings_of
from accessiq.sync.document import validate_connection
from accessiq.sync.guard import ReadFacts, check_safety, shrunk_groups
from accessiq.sync.planner import (
    Plan,
    PlanContext,
    StoreState,
    active_users,
    desired_emails,
    membership_of,
    plan_sync,
)
from accessiq.sync.settings import parse_interval
from accessiq.sync.source import MirrorGroup, MirrorKey, SourceSnapshot, user_from_row
from accessiq.sync.state import (
    active_synced_users,
    fingerprint,
    group_member_counts,
    last_run_leftovers,
    load_cursor,
    load_mirror,
    load_mirror_index,
    load_mirror_rows,
    load_store_state,
    mirrored_users,
    recent_push_deactivations,
    store_counts,
    users_touched_since,
    users_with_emails,
)

log = structlog.get_logger("accessiq.sync")

# Called with (phase, users read, groups read) while a run reads the source.
Progress = Callable[[str, int, int], None]
# Called now and then during a run; raises to stop it (RunCanceledError, a lost lease).
Checkpoint = Callable[[], None]

FINISHED = ("succeeded", "succeeded_with_errors", "failed", "blocked", "canceled")
_PROGRESS_EVERY = 1.0  # seconds between progress writes to the run row
_SHOW_EVERY = 0.1  # seconds between calls of a run's progress callback (a CLI progress bar)
_OPTIMISTIC_TRIES = 2  # plans made on SQLite without the write lock before one is made under it


@dataclass
class _Prepared:
    directory_id: int
    mode: str
    cursor: dict[str, Any] | None
    mirror: dict[Any, dict[str, Any]]
    # A push-only source (SCIM): the mirror is the whole source, and a read only adds to it.
    from_mirror: bool = False
    # Records that are no part of the source, stored with the plan (a push's SCIM resources).
    records: list[MirrorRecord] = field(default_factory=list)
    # A held push whose change is already held by a pending blocked run: that run's id.
    held_by: int | None = None

    @property
    def reads_changes(self) -> bool:
        """True when the read's events fold into the mirror rather than replace it."""
        return self.mode == "incremental" or self.from_mirror

    @property
    def plans_everything(self) -> bool:
        """A full run of a push-only source plans every mirrored user again (Sync Now, new settings)."""
        return self.from_mirror and self.mode == "full"

    # A digest per connection field (secrets included) as the read used them, for the guard.
    connection: dict[str, str] | None = None


def execute_run(
    store: Store, run_id: int, progress: Progress | None = None, checkpoint: Checkpoint | None = None
) -> SyncRun:
    """Carry one queued run to its end; the returned row has its final status.

    Failures of any kind end as a `failed` run with a message; nothing is applied then.
    `checkpoint` is called between pages and before applying; it may raise
    RunCanceledError (the run ends `canceled`) or any error (the run fails).
    """
    bound = log.bind(run_id=run_id)
    with _ends_cleanly(store, run_id, bound, "run"), _no_cycle_collection():
        prepared = _start(store, run_id)
        bound = bound.bind(directory_id=prepared.directory_id, mode=prepared.mode)
        bound.info("run.started")
        started = time.perf_counter()
        snapshot = _read(store, run_id, prepared, progress, checkpoint)
        bound.info(
            "run.read",
            users=len(snapshot.users),
            groups=len(snapshot.groups),
            read_s=round(time.perf_counter() - started, 3),
        )
        if checkpoint is not None:
            checkpoint()
        with _store_moved("applying"):
            status = _plan_and_apply(store, run_id, prepared, snapshot)
        bound.info("run.finished", status=status)
    with store.read() as session:
        return session.get_one(SyncRun, run_id)


@contextmanager
def _ends_cleanly(store: Store, run_id: int, bound: Any, event: str) -> Iterator[None]:
    """Failures of any kind end the run `failed` (or `canceled`) with a message; nothing is applied."""
    try:
        yield
    except RunCanceledError as exc:
        bound.info(f"{event}.canceled")
        _fail(store, run_id, str(exc), status="canceled")
    except AccessIQError as exc:
        bound.warning(f"{event}.failed", error=str(exc), kind=exc.kind)
        _fail(store, run_id, str(exc))
    except Exception as exc:  # an unexpected bug still ends the run cleanly, and is logged in full
        bound.exception(f"{event}.crashed")
        _fail(store, run_id, f"internal error: {type(exc).__name__}: {exc}; see the service log")


def execute_push(
    store: Store, run_id: int, events: Iterable[SourceEvent], records: Iterable[MirrorRecord] = ()
) -> SyncRun:
    """Plan and apply a push run: `events` (what a SCIM client wrote) fold into the mirror as an
    incremental read would, and the same planner, guard and apply carry them out. `records`
    (kind, id, data or None to delete) are stored beside the source in the same transaction.

    The run is `running` already and holds its directory's slot; it ends like any run.
    """
    bound = log.bind(run_id=run_id)
    with _ends_cleanly(store, run_id, bound, "push"):
        with store.read() as session:
            run = session.get_one(SyncRun, run_id)
            cursor_row = load_cursor(session, run.directory_id)
            cursor = cursor_row.value if cursor_row else None
            groups = load_mirror(session, run.directory_id, kind="group")
            provider = session.get_one(Directory, run.directory_id).provider
        prepared = _Prepared(run.directory_id, "incremental", cursor, groups, from_mirror=True, records=list(records))
        snapshot = SourceSnapshot.from_mirror(groups)
        snapshot.users_partial = True
        after = None if connector_class(provider).cursor_is_whole_read else cursor
        for _ in snapshot.fold([ReadStarted(full=False), *events, ReadFinished(cursor=after)]):
            pass
        with _store_moved("applying"):
            status = _plan_and_apply(store, run_id, prepared, snapshot)
        bound.info("push.finished", status=status, held_by=prepared.held_by)
    with store.read() as session:
        return session.get_one(SyncRun, prepared.held_by or run_id)


def _start(store: Store, run_id: int) -> _Prepared:
    with store.transaction() as session:
        run = session.get_one(SyncRun, run_id)
        if run.status not in ("queued", "running"):
            raise ConflictError(f"run {run_id} is {run.status}, not queued")
        directory = session.get_one(Directory, run.directory_id)
        settings = settings_of(directory)
        cursor_row = load_cursor(session, directory.id)
        connector = connector_class(directory.provider)
        mode = _choose_mode(run, connector.incremental, cursor_row, settings.full_sync_interval)
        run.mode = mode
        run.status = "running"
        run.started_at = run.started_at or utcnow()
        run.progress = {"phase": "reading", "users": 0, "groups": 0}
        prepared = _Prepared(
            directory.id, mode, cursor_row.value if cursor_row else None, {}, from_mirror=connector.push_only
        )
    return prepared


def _choose_mode(run: SyncRun, incremental: bool, cursor: Any, full_interval: str) -> str:
    if not incremental or run.requested_mode == "full" or cursor is None or cursor.value is None:
        return "full"
    if cursor.last_full_sync_at is None or utcnow() - cursor.last_full_sync_at >= parse_interval(full_interval):
        return "full"
    return "incremental"


def _read(
    store: Store, run_id: int, prepared: _Prepared, progress: Progress | None, checkpoint: Checkpoint | None
) -> SourceSnapshot:
    with store.read() as session:
        directory = session.get_one(Directory, prepared.directory_id)
        connector = build_connector(store.secrets, directory)
        connection = validate_connection(
            directory.provider, {**directory.connection, **store.secrets.open(directory.secrets)}
        )
        prepared.connection = connection_digests(connection, store.secrets)
    cursor = prepared.cursor if prepared.reads_changes else None
    users = groups = 0
    last_report = time.monotonic()
    last_shown = 0.0
    events = connector.read(cursor)
    try:
        first = next(events, None)
        if prepared.reads_changes and not (isinstance(first, ReadStarted) and first.full):
            # The changes fold into the mirror's groups (the users a run plans are loaded once it
            # knows which). Read outside the write lock: should another run apply meanwhile, the
            # cursor check refuses this one. A read that starts over needs none of it.
            with store.read() as session:
                prepared.mirror = load_mirror(session, prepared.directory_id, kind="group")
        snapshot = SourceSnapshot.from_mirror(prepared.mirror)
        snapshot.users_partial = prepared.reads_changes
        for event in snapshot.fold(itertools.chain([first] if first is not None else [], events)):
            if isinstance(event, UserUpserted):
                users += 1
            elif isinstance(event, GroupUpserted):
                groups += 1
            else:
                continue
            now = time.monotonic()
            if progress is not None and now - last_shown >= _SHOW_EVERY:
                last_shown = now
                progress("reading", users, groups)
            if now - last_report >= _PROGRESS_EVERY:
                last_report = now
                _set_progress(store, run_id, {"phase": "reading", "users": users, "groups": groups})
                if checkpoint is not None:
                    checkpoint()
    finally:
        connector.close()
    if not snapshot.complete:
        raise AccessIQError("the read ended before the connector reported its end; nothing was applied")
    if progress is not None:
        progress("planning", users, groups)
    # Committed before the plan-and-apply transaction begins, so whoever watches the run (the UI,
    # a waiting `accessiq sync`) sees the read is over; the transaction itself shows nothing until done.
    _set_progress(store, run_id, {"phase": "planning", "users": users, "groups": groups})
    return snapshot


def _set_progress(store: Store, run_id: int, progress: dict[str, Any]) -> None:
    with store.transaction() as session:
        session.get_one(SyncRun, run_id).progress = progress


def _lock_directory(session: Session, directory_id: int) -> Directory:
    """Serialize writers of one directory (PostgreSQL row lock; SQLite's write lock covers it).

    `FOR NO KEY UPDATE`, not `FOR UPDATE`: rows that reference the directory (a queued run, a
    retry, a Sync Now) take a key-share lock on it, which a plain `FOR UPDATE` would make wait for
    the whole plan and apply.
    """
    return session.execute(
        select(Directory).where(Directory.id == directory_id).with_for_update(key_share=True)
    ).scalar_one()


def _plan_and_apply(store: Store, run_id: int, prepared: _Prepared, snapshot: SourceSnapshot) -> str:
    """Plan, guard and apply in one transaction, which also moves the cursor.

    On SQLite the plan is made without the write lock, so that neither readers nor other writers
    wait while it is made: SQLite refuses the first write if anyone committed since the plan began
    reading, and the plan is made again; after `_OPTIMISTIC_TRIES` it is made under the lock.
    """
    if store.dialect == "sqlite":
        for attempt in range(_OPTIMISTIC_TRIES):
            try:
                with store.writing_later() as session:
                    return _plan_and_apply_in(session, run_id, prepared, snapshot)
            except OperationalError as exc:
                if not is_stale_read(exc):
                    raise
                log.info("run.replanning", run_id=run_id, attempt=attempt + 1)
    with store.transaction(write=True) as session:
        return _plan_and_apply_in(session, run_id, prepared, snapshot)


def _plan_and_apply_in(session: Session, run_id: int, prepared: _Prepared, snapshot: SourceSnapshot) -> str:
    now = utcnow()
    seconds: dict[str, float] = {}
    directory = _lock_directory(session, prepared.directory_id)
    run = session.get_one(SyncRun, run_id)
    session.refresh(run)
    if run.status != "running":
        # Its lease was recovered (a stalled worker) or it was canceled meanwhile.
        raise ConflictError(f"run {run_id} is {run.status} now; nothing was applied")
    cursor_row = load_cursor(session, directory.id)
    if (cursor_row.value if cursor_row else None) != prepared.cursor and prepared.reads_changes:
        raise ConflictError("another run applied changes to this directory meanwhile; run the sync again")
    context = plan_context(session, directory)
    rejected = {(obj, ext) for obj, ext, _ in snapshot.rejected if ext}
    partial = snapshot.users_partial
    # After an incremental read only the users and groups it touched are compared; the rest are as mirrored.
    index = load_mirror_index(session, directory.id, set(snapshot.users) | snapshot.removed_users if partial else None)
    read = snapshot.groups_read if partial else None
    diff = diff_rows(
        {key: digest for key, (digest, _) in index.items() if read is None or key[0] == "user" or key[1] in read},
        snapshot.to_rows(read),
        keep=rejected,
    )
    source_users = len(snapshot.users)
    if partial:
        added = sum(1 for ext in snapshot.users if ("user", ext) not in index)
        gone = sum(1 for ext in snapshot.removed_users if ("user", ext) in index)
        mirrored = mirrored_users(session, directory.id)
        source_users = mirrored + added - gone
    else:
        mirrored = sum(1 for kind, _ in index if kind == "user")
    connection = prepared.connection
    if connection is None:  # a push reads nothing through the connection: it stays as last applied
        before = (cursor_row.basis or {}).get("guard") if cursor_row is not None else None
        connection = {name: value for name, value in (before or {}).items() if name.startswith("connection.")}
    guard = guard_digests(connection, context)
    basis = {
        "config": config_digest(directory.provider, directory.connection, context),
        "refs": resolved_refs(snapshot.groups, context),
        "guard": guard,
    }
    changed_groups = diff.changed("group")
    groups_before = old_groups(
        snapshot.groups, changed_groups, load_mirror_rows(session, directory.id, "group", changed_groups)
    )
    started = time.perf_counter()
    scope = (
        None
        if prepared.plans_everything
        else _affected_scope(session, cursor_row, basis, diff, snapshot, context, groups_before)
    )
    if scope is None:
        _load_users(session, directory.id, snapshot, None)
        planned, current = snapshot, load_store_state(session, directory.id)
        active = active_users(current)
    else:
        users, emails = scope
        planned = restrict(snapshot, users)
        current = load_store_state(session, directory.id, users=users, emails=emails)
        active = active_synced_users(session, directory.id)
    seconds["load"] = time.perf_counter() - started
    with _timed(seconds, "plan"):
        plan = plan_sync(planned, current, context)
    # Users a run did not need to plan are in line with the source, as the last run left them.
    plan.counts["users_unchanged"] += source_users - len(planned.users)
    plan.counts["users_planned"] = len(planned.users)
    # Pushes arrive one change at a time: the guard weighs a burst of them together.
    earlier = recent_push_deactivations(session, directory.id, now) if run.trigger == "push" else None
    facts = _read_facts(
        session,
        directory.id,
        plan,
        snapshot,
        current,
        index,
        groups_before,
        cursor_row,
        guard,
        (source_users, active, mirrored),
        earlier,
    )
    blocked = check_safety(plan, facts, context.settings.safety)
    prepared.held_by = None
    change_key = _change_key(plan, diff) if blocked and run.trigger == "push" else None
    if change_key is not None:
        held = _pending_hold(session, directory.id, change_key)
        if held is not None:
            # The client sent a held write again: it stays held by the run that holds it already.
            prepared.held_by = held
            session.delete(run)
            return "blocked"

    unindexed = {ext for ext in planned.users if ("user", ext) not in index}
    if partial and unindexed:
        index |= load_mirror_index(session, directory.id, unindexed)
    written = diff.changed("user")
    emails_now = {
        ext: plan.emails.get(ext)
        for ext in planned.users
        if ext in written or index.get(("user", ext), (None, None))[1] != plan.emails.get(ext)
    }
    mirror = MirrorChange(
        diff.upserts, diff.deletes, snapshot.cursor, snapshot.full, emails_now, basis, diff.replaced, diff.digests
    )
    for kind, ext, data in prepared.records:
        if data is None:
            mirror.deletes.append((kind, ext))
        else:
            mirror.upserts.append((kind, ext, data))
            if mirror.replaced is not None:
                mirror.replaced.append((kind, ext))

    # The run's own row is written last: until then the heartbeat keeps renewing its lease (a lock
    # on the row would hold the heartbeat off for the whole apply, and the run would look lost).
    with _timed(seconds, "log"):
        record_log(session, run.id, plan)
    stored: dict[str, Any] | None = None
    if run.dry_run or blocked:
        mirror_before = load_mirror(session, directory.id)
        whole = current if scope is None else load_store_state(session, directory.id)
        stored = {
            "plan": plan.to_json(),
            "mirror": mirror.to_json(),
            "fingerprint": fingerprint(whole, mirror_before, cursor_row.value if cursor_row else None),
        }
    else:
        with _timed(seconds, "apply"):
            apply_plan(session, directory.id, plan, mirror, now)
    # A process frozen past its lease (stopped, swapped out, cut off) finds its run recovered and
    # retried by another: look again under the run's row lock, which recovery skips, before this
    # transaction commits, so a recovered run is never applied nor turned back into a success.
    session.refresh(run, with_for_update=True)
    if run.status != "running":
        raise ConflictError(f"run {run_id} is {run.status} now; nothing was applied")
    run.counts = plan.counts
    if snapshot.full:  # a read asked for changes may have read everything (a change feed that expired)
        run.mode = "full"
    run.notes = list(snapshot.notes)
    run.progress = {"phase": "done", "users": source_users, "groups": len(snapshot.groups)}
    if stored is not None:
        run.plan = stored
        if change_key is not None:
            run.plan["change"] = change_key
        if blocked:
            run.notes = [*run.notes, blocked]
        run.message = blocked if blocked and not run.dry_run else None
        run.status = "blocked" if blocked and not run.dry_run else _outcome(plan)
    else:
        run.status = _outcome(plan)
    run.finished_at = utcnow()
    log.info(
        "run.planned",
        run_id=run_id,
        operations=len(plan.operations),
        **{f"{k}_s": round(v, 3) for k, v in seconds.items()},
    )
    return run.status


_collection_paused = 0
_collection_lock = threading.Lock()


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while runs are under way.

    A run builds millions of small objects (records, operations, rows) and frees them by
    reference counting; meanwhile every full collection would walk all of them again, which
    cost a fifth of a 100,000-user first sync. Collection resumes when the last run ends.
    """
    global _collection_paused
    with _collection_lock:
        _collection_paused += 1
        gc.disable()
    try:
        yield
    finally:
        with _collection_lock:
            _collection_paused -= 1
            if not _collection_paused:
                gc.enable()


def _change_key(plan: Plan, diff: MirrorDiff) -> str:
    """What a held push would do (its operations and the source records it moves), as a digest; a
    client's retry of the same write has the same one (timestamps in the resource aside)."""
    what = {
        "operations": plan.to_json()["operations"],
        "upserts": sorted([kind, ext] for kind, ext, _ in diff.upserts),
        "deletes": sorted([kind, ext] for kind, ext in diff.deletes),
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _pending_hold(session: Session, directory_id: int, change_key: str) -> int | None:
    """The pending blocked push run of the directory that holds the change `change_key`, if any."""
    held = session.execute(
        select(SyncRun.id, SyncRun.plan).where(
            SyncRun.directory_id == directory_id,
            SyncRun.trigger == "push",
            SyncRun.status == "blocked",
            SyncRun.resolution.is_(None),
            SyncRun.dry_run.is_(False),
        )
    )
    return next((run_id for run_id, plan in held if (plan or {}).get("change") == change_key), None)


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Adds the block's wall time to seconds[phase], for the service log's account of a run."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started


def _read_facts(
    session: Session,
    directory_id: int,
    plan: Plan,
    snapshot: SourceSnapshot,
    current: StoreState,
    index: Mapping[MirrorKey, Any],
    groups_before: dict[str, MirrorGroup],
    cursor: Cursor | None,
    guard: dict[str, str],
    users: tuple[int, int, int],
    earlier_pushed: int | None,
) -> ReadFacts:
    """What the guard judges a plan against: the read beside the mirror and the store, and the
    guarded settings that changed since the last applied run. `users`: (users read, active users
    in the store, users mirrored)."""
    removed_from = {str(membership_of(op).group_id) for op in plan.of("group_membership", "remove")}
    source_users, active, mirrored = users
    return ReadFacts(
        source_users=source_users,
        active=active,
        mirrored_users=mirrored,
        source_groups=len(snapshot.groups),
        mirrored_groups=sum(1 for kind, _ in index if kind == "group"),
        stored_groups=len(current.groups),
        shrunk=shrunk_groups(snapshot.groups, groups_before),
        group_sizes=group_member_counts(session, directory_id, removed_from),
        changed=guard_changes((cursor.basis or {}).get("guard") if cursor is not None else None, guard),
        earlier_pushed=earlier_pushed,
    )


def _affected_scope(
    session: Session,
    cursor: Cursor | None,
    basis: dict[str, Any],
    diff: MirrorDiff,
    snapshot: SourceSnapshot,
    context: PlanContext,
    groups_before: dict[str, MirrorGroup],
) -> tuple[set[str], set[str]] | None:
    """(users to plan, the emails they map to), or None when the run must plan everything.

    Everything, when no applied run left a basis or when settings, mappings, the connection, what
    group references resolve to, or the store's own counts moved since the last applied run.
    """
    before = cursor.basis if cursor is not None else None
    directory_id = context.directory_id
    if (
        cursor is None
        or before is None
        or before.get("config") != basis["config"]
        or before.get("refs") != basis["refs"]
        or before.get("counts") != store_counts(session, directory_id)
    ):
        return None
    users = affected_users(
        diff.changed("user"),
        diff.changed("group"),
        snapshot.groups,
        groups_before,
        also=snapshot.rejected_users
        | last_run_leftovers(session, directory_id)
        | users_touched_since(session, directory_id, cursor.updated_at),
    )
    if not users:
        return users, set()
    _load_users(session, directory_id, snapshot, users)
    emails = set(desired_emails(restrict(snapshot, users), context).values())
    # Unplanned users mapping to one of these emails: the duplicate check needs them too.
    sharing = users_with_emails(session, directory_id, emails) - users
    _load_users(session, directory_id, snapshot, sharing)
    return users | sharing, emails


def _load_users(session: Session, directory_id: int, snapshot: SourceSnapshot, users: set[str] | None) -> None:
    """After an incremental read, bring the mirrored `users` (all with None) the read did not touch
    into the snapshot; the snapshot holds the whole source once all are in."""
    if not snapshot.users_partial:
        return
    wanted = None if users is None else users - snapshot.users.keys() - snapshot.removed_users
    if wanted is not None and not wanted:
        return
    for ext, row in load_mirror_rows(session, directory_id, "user", wanted).items():
        if ext not in snapshot.users and ext not in snapshot.removed_users:
            snapshot.users[ext] = user_from_row(ext, row)
    if users is None:
        snapshot.users_partial = False


def _outcome(plan: Plan) -> str:
    return "succeeded_with_errors" if plan.errors else "succeeded"


def _fail(store: Store, run_id: int, message: str, status: str = "failed") -> None:
    with store.transaction() as session:
        run = session.get_one(SyncRun, run_id)
        if run.status in FINISHED:
            return
        run.status = status
        run.message = message
        run.finished_at = utcnow()
        run.progress = {**(run.progress or {}), "phase": "failed"}


def apply_stored_plan(store: Store, run_id: int, trigger: str = "approval") -> SyncRun:
    """Apply exactly the plan a blocked or dry run stored, as a new run; refused if the store moved."""
    with _store_moved(f"applying the plan of run {run_id}"):
        return _apply_stored_plan(store, run_id, trigger)


@contextmanager
def _store_moved(what: str) -> Iterator[None]:
    """A constraint that fails while applying means the store changed under the plan: nothing applied."""
    try:
        yield
    except IntegrityError as exc:
        detail = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        raise ConflictError(
            f"the store changed while {what} ({detail}); nothing was applied", hint="run the sync again"
        ) from None


def _apply_stored_plan(store: Store, run_id: int, trigger: str) -> SyncRun:
    now = utcnow()
    with store.transaction() as session:
        source = session.get_one(SyncRun, run_id)
        if source.plan is None or source.status not in ("blocked", "succeeded", "succeeded_with_errors"):
            raise ConflictError(f"run {run_id} has no stored plan to apply; only blocked runs and dry runs do")
        if source.resolution is not None:
            raise ConflictError(f"run {run_id} was already {source.resolution}")
        directory = _lock_directory(session, source.directory_id)
        cursor_row = load_cursor(session, directory.id)
        current = load_store_state(session, directory.id)
        mirror_now = load_mirror(session, directory.id)
        if fingerprint(current, mirror_now, cursor_row.value if cursor_row else None) != source.plan["fingerprint"]:
            if source.trigger == "push" and not source.dry_run:
                return _allow_held_pushes(session, source, trigger, now)
            raise PlanRejectedError(
                f"the directory's users, groups or memberships changed since run {run_id} was planned",
                hint=f"run a new sync: accessiq sync {directory.id}",
            )
        plan = Plan.from_json(source.plan["plan"])
        run = SyncRun(
            directory_id=directory.id,
            trigger=trigger,
            mode=source.mode,
            dry_run=False,
            status="running",
            started_at=now,
            source_run_id=source.id,
            counts=plan.counts,
            notes=[f"applies the plan of run {run_id}"],
        )
        session.add(run)
        session.flush()
        apply_plan(session, directory.id, plan, MirrorChange.from_json(source.plan["mirror"]), now)
        record_log(session, run.id, plan)
        run.status = _outcome(plan)
        run.finished_at = utcnow()
        run.progress = {"phase": "done"}
        source.resolution = "approved"
        source.plan = None
        return run


def _allow_held_pushes(session: Session, source: SyncRun, trigger: str, now: Any) -> SyncRun:
    """Approve a held push whose plan the store has moved past (other pushes kept arriving).

    Its SCIM client was told to send the write again: the approval run applies nothing itself,
    and starts a new guard window, so that the write and the rest of its burst go through when
    they come back. Nothing is lost; nothing stale is applied.
    """
    run = SyncRun(
        directory_id=source.directory_id,
        trigger=trigger,
        mode=source.mode,
        dry_run=False,
        status="succeeded",
        started_at=now,
        finished_at=utcnow(),
        source_run_id=source.id,
        counts={},
        notes=[
            f"approves the pushes held by run {source.id}; other pushes changed the directory since, so "
            "they apply as the identity provider sends them again"
        ],
        progress={"phase": "done"},
    )
    session.add(run)
    source.resolution = "approved"
    source.plan = None
    session.flush()
    return run


def reject_stored_plan(store: Store, run_id: int) -> SyncRun:
    with store.transaction() as session:
        run = session.get_one(SyncRun, run_id)
        if run.plan is None or run.resolution is not None:
            raise ConflictError(f"run {run_id} has no pending plan to reject")
        run.resolution = "rejected"
        run.plan = None
        return run
