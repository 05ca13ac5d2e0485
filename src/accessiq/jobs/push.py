"""A push: one write of a SCIM client, carried out as a run of its own while the client waits.

The push takes its directory's running slot first (the database allows one running run per
directory), so that what it reads of the mirror cannot move before it applies; then the change
is computed against the mirror, and the engine plans, guards and applies it like any run, with
trigger `push`. Pushes of one directory in this process queue on a lock; against a run of
another process (a worker's Sync Now) a push waits a little, then gives up as busy.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from accessiq.connectors.base import SourceEvent
from accessiq.errors import AccessIQError
from accessiq.jobs.queue import db_now, recover_lapsed
from accessiq.store.database import Store, is_stale_read
from accessiq.store.tables import SyncRun, utcnow
from accessiq.sync.apply import MirrorRecord, store_records
from accessiq.sync.engine import execute_push

T = TypeVar("T")

# How long a push waits for another run of its directory to end before it answers busy.
PUSH_WAIT = 10.0
# A push holds its slot this long at most without finishing: a process that died mid-push frees it.
_PUSH_LEASE = timedelta(seconds=60)
_OWNER = f"push:{socket.gethostname()}:{os.getpid()}"

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


class DirectoryBusyError(AccessIQError):
    """Another run of the directory holds it; the push applied nothing and may be sent again."""

    http_status = 503
    kind = "busy"


@dataclass(frozen=True)
class PushChange(Generic[T]):
    """What a write does to the source (events for the mirror) and what to answer the client."""

    events: Sequence[SourceEvent]
    result: T
    # Records stored beside the source with the change (a pulled directory's SCIM resources).
    records: Sequence[MirrorRecord] = ()


@dataclass(frozen=True)
class Pushed(Generic[T]):
    """A push's outcome: its run (None when the write changed nothing) and the answer for the client."""

    run_id: int | None
    status: str | None
    message: str | None
    result: T


def _lock(directory_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(directory_id, threading.Lock())


def push(store: Store, directory_id: int, change: Callable[[Session], PushChange[T]]) -> Pushed[T]:
    """Carry out one write: `change` reads the mirror (it may raise to refuse the write) and says
    what moves; a write that moves nothing leaves no run."""
    with _lock(directory_id):
        run_id = _take_slot(store, directory_id)
        try:
            with store.read() as session:
                computed = change(session)
        except BaseException:
            _drop(store, run_id)
            raise
        if not computed.events:
            _drop(store, run_id, computed.records)
            return Pushed(None, None, None, computed.result)
        run = execute_push(store, run_id, computed.events, computed.records)
        _end_lease(store, run_id)
        return Pushed(run.id, run.status, run.message, computed.result)


def _take_slot(store: Store, directory_id: int) -> int:
    deadline = time.monotonic() + PUSH_WAIT
    pause = 0.02
    while True:
        try:
            with store.transaction(write=True) as session:
                recover_lapsed(session, directory_id=directory_id)
                now = db_now(session)
                run = SyncRun(
                    directory_id=directory_id,
                    trigger="push",
                    mode="incremental",
                    dry_run=False,
                    status="running",
                    started_at=utcnow(),
                    lease_owner=_OWNER,
                    lease_expires_at=now + _PUSH_LEASE,
                    counts={},
                    notes=[],
                    progress={"phase": "planning"},
                )
                session.add(run)
                session.flush()
                return run.id
        except IntegrityError:
            pass  # another run of the directory is running
        except OperationalError as exc:
            if not is_stale_read(exc) and "locked" not in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise DirectoryBusyError(
                "another sync of this directory is running; nothing was applied",
                hint="send the request again in a few seconds",
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _drop(store: Store, run_id: int, records: Sequence[MirrorRecord] = ()) -> None:
    """Forget a push that was refused or changed nothing the engine plans: it never was a run.
    Its `records` (resources that change no user) are stored as the slot is given back."""
    with store.transaction(write=True) as session:
        if records:
            directory_id = session.get_one(SyncRun, run_id).directory_id
            store_records(session, directory_id, list(records))
        session.execute(delete(SyncRun).where(SyncRun.id == run_id))


def _end_lease(store: Store, run_id: int) -> None:
    with store.transaction(write=True) as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status != "running")
            .values(lease_expires_at=None)
        )
