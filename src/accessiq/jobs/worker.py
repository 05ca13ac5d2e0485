"""The worker: claims queued runs and carries them out, N at a time, until told to stop.

A worker process runs
- N slot threads, each claiming one run at a time and executing it (sync.engine.execute_run);
- one heartbeat thread renewing the leases of the runs it holds;
- one maintenance thread that recovers runs of lost workers and, unless disabled, ticks the
  scheduler.

Stopping (SIGTERM, SIGINT): no new claims; each run in progress finishes if it can within the
grace period, and is otherwise handed back to the queue at its next checkpoint, untouched (a
second signal ends the grace period at once). A run already applying always finishes: its apply
is one transaction. A worker killed outright loses its leases; another worker, or this one's next
start, fails those runs (nothing of them was applied) and queues a retry.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

import structlog

from accessiq.errors import RunCanceledError
from accessiq.jobs import queue, scheduler
from accessiq.jobs.queue import Claim, LeaseLostError, WorkerSettings
from accessiq.store.database import Store, is_busy
from accessiq.store.tables import SyncRun
from accessiq.sync import engine

log = structlog.get_logger("accessiq.jobs")


class _Release(BaseException):
    """Unwinds execute_run so a stopping worker can hand its run back to the queue.

    A BaseException, like KeyboardInterrupt, so the engine does not record it as a failed run:
    the run must stay exactly as it was, to be claimed afresh.
    """


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Statuses only the engine of the run's own worker sets; lease recovery never does.
_ENDED_HERE = ("succeeded", "succeeded_with_errors", "blocked")


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Threads started inside this block never receive SIGTERM or SIGINT.

    Threads inherit the signal mask of the thread that starts them. With the stop signals blocked
    in every worker thread the kernel delivers them to the main thread only, and never interrupts
    a worker thread in the middle of a database call or a write.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopSignals:
    """Records SIGTERM and SIGINT for the main loop to act on; the handler itself does nothing else.

    A handler runs in the middle of whatever the main thread was doing: taking a lock there (a
    log line takes the output lock) could deadlock, so all the work happens in `pending()`'s caller.
    """

    def __init__(self) -> None:
        self._received: list[int] = []
        self._seen = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._received.append(signum)

    def pending(self) -> list[str]:
        """Names of the signals received since the last call."""
        new = self._received[self._seen :]
        self._seen += len(new)
        return [signal.Signals(sig).name for sig in new]


@dataclass
class _Held:
    run_id: int
    directory_id: int
    lost: bool = False


class LeaseKeeper:
    """A thread that renews the leases of the runs this process holds, every third of a lease
    (every two thirds while a sync of this process plans on SQLite, see `Store.writing_later`)."""

    def __init__(self, store: Store, owner: str, lease: timedelta) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> None:
        with signals_blocked():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def holding(self, claim: Claim) -> Iterator[_Held]:
        """Renew this claim's lease while the block runs."""
        held = _Held(claim.run_id, claim.directory_id)
        with self._lock:
            self._held[claim.run_id] = held
        try:
            yield held
        finally:
            with self._lock:
                self._held.pop(claim.run_id, None)

    def _loop(self) -> None:
        interval = self.lease.total_seconds() / 3
        renewed = time.monotonic()
        wait = interval
        while not self._stop.wait(wait):
            # A sync planning on SQLite without the write lock must not see a commit before its
            # apply (it would plan again): while one does, renew at two thirds of the lease, not one.
            if self.store.quiet and time.monotonic() - renewed < 2 * interval:
                wait = min(1.0, interval / 4)
                continue
            wait = interval
            with self._lock:
                held = dict(self._held)
            if not held:
                renewed = time.monotonic()
                continue
            try:
                states = queue.renew_leases(self.store, list(held), self.owner, self.lease)
            except Exception as exc:
                # The database may be back by the next beat; the lease has two more beats of slack.
                if is_busy(exc):
                    # SQLite is busy: a run's apply holds the write lock (a big first sync can
                    # for a while). Nobody can take the lease over before that apply commits.
                    log.warning("worker.heartbeat_waiting", reason="the store is busy with a sync's write")
                else:
                    log.exception("worker.heartbeat_failed")
                continue
            renewed = time.monotonic()
            for run_id, state in states.items():
                # A run that ended well ended here, between our snapshot of `held` and now.
                if state.held or held[run_id].lost or state.status in _ENDED_HERE:
                    continue
                held[run_id].lost = True
                log.warning("worker.lease_lost", run_id=run_id, status=state.status)


def worker_name() -> str:
    """`host:pid`, how logs and `lease_owner` name this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Claims and executes runs with `concurrency` slots; see the module docstring for the lifecycle."""

    def __init__(
        self,
        store: Store,
        *,
        concurrency: int = 1,
        schedule: bool = True,
        name: str | None = None,
        settings: WorkerSettings | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.concurrency = concurrency
        self.schedule = schedule
        self.settings = settings or WorkerSettings()
        self.name = name or worker_name()
        # Unique per start, so a restarted worker never mistakes a dead predecessor's lease for its own.
        self.owner = f"{self.name}:{uuid.uuid4().hex[:8]}"
        self.leases = LeaseKeeper(store, self.owner, self.settings.lease)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._release_at: float | None = None
        self._threads: list[threading.Thread] = []
        self._log = log.bind(worker=self.name)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the slot, heartbeat and maintenance threads; returns at once."""
        self._log.info("worker.started", owner=self.owner, concurrency=self.concurrency, scheduler=self.schedule)
        self.leases.start()
        self._threads = [
            threading.Thread(target=self._slot_loop, name=f"slot-{i + 1}", daemon=True) for i in range(self.concurrency)
        ]
        self._threads.append(threading.Thread(target=self._maintenance_loop, name="maintenance", daemon=True))
        with signals_blocked():
            for thread in self._threads:
                thread.start()

    def stop(self, *, at_once: bool = False) -> None:
        """Stop claiming; runs in progress get the grace period (none if `at_once` or asked twice)."""
        if self._stopping.is_set() or at_once:
            self._release_at = time.monotonic()
        else:
            self._release_at = time.monotonic() + self.settings.grace_seconds
        if not self._stopping.is_set():
            self._log.info("worker.stopping", grace_seconds=self._release_at - time.monotonic())
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True once they all have (the heartbeat is stopped last)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
            if thread.is_alive():
                return False
        if self._threads:
            self.leases.stop()
            self._threads = []
            self._log.info("worker.stopped")
        return True

    def run_until_signalled(self) -> None:
        """Start, then stop on SIGTERM or SIGINT (a second one ends the grace period). Main thread only."""
        with StopSignals() as signals:
            self.start()
            while not self.join(timeout=0.2):
                for name in signals.pending():
                    self._log.info("worker.signal", signal=name)
                    self.stop()

    # -- the threads ------------------------------------------------------------------------

    def _slot_loop(self) -> None:
        structlog.contextvars.bind_contextvars(worker=self.name)
        while not self._stopping.is_set():
            try:
                claim = queue.claim_next(self.store, self.owner, self.settings.lease)
            except Exception:
                self._log.exception("worker.claim_failed")
                claim = None
            if claim is None:
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()
                continue
            self._execute(claim)

    def _execute(self, claim: Claim) -> None:
        structlog.contextvars.bind_contextvars(run_id=claim.run_id, directory_id=claim.directory_id)
        bound = self._log.bind(run_id=claim.run_id, directory_id=claim.directory_id)
        bound.info("worker.claimed")
        try:
            with self.leases.holding(claim) as held:
                run = engine.execute_run(self.store, claim.run_id, checkpoint=lambda: self._checkpoint(held))
            bound.info("worker.run_done", status=run.status)
            queue.end_lease(self.store, claim.run_id, self.owner)
        except _Release:
            released = queue.release_run(self.store, claim.run_id, self.owner)
            bound.info("worker.released", released=released)
        except Exception:
            # The run may still be `running` under our lease, which nobody renews any more: it
            # expires and lease recovery fails and retries the run.
            bound.exception("worker.run_crashed")
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "directory_id")

    def _checkpoint(self, held: _Held) -> None:
        """Called by the engine between pages and right before applying: stop the run here if needed."""
        check_lease(self.store, held.run_id, self.owner, f"worker {self.name}", lost=held.lost)
        if self._release_at is not None and time.monotonic() >= self._release_at:
            raise _Release()

    def _maintenance_loop(self) -> None:
        structlog.contextvars.bind_contextvars(worker=self.name)
        while not self._stopping.is_set():
            try:
                if queue.recover_expired(self.store, self.settings.max_attempts):
                    self._wake.set()
                if self.schedule and scheduler.tick(self.store):
                    self._wake.set()
            except Exception:
                self._log.exception("worker.maintenance_failed")
            self._stopping.wait(self.settings.tick_seconds)


def check_lease(store: Store, run_id: int, owner: str, who: str, *, lost: bool = False) -> None:
    """Raise if the run was canceled or `owner` no longer holds its lease; the engine then applies nothing."""
    state = queue.lease_state(store, run_id, owner)
    if state.cancel_requested:
        raise RunCanceledError("canceled by an administrator; nothing was applied")
    if lost or not state.held:
        raise LeaseLostError(f"{who} lost its lease on run {run_id} (now {state.status}); nothing was applied")


def execute_with_lease(
    store: Store,
    run_id: int,
    progress: engine.Progress | None = None,
    settings: WorkerSettings | None = None,
) -> SyncRun:
    """Claim one queued run and carry it out in this process, holding a lease like a worker.

    For `accessiq sync`: a worker running at the same time cannot take the run too, `runs cancel`
    works on it, and if this process dies its run is recovered like any other.
    """
    settings = settings or WorkerSettings()
    owner = f"{worker_name()}:cli:{uuid.uuid4().hex[:8]}"
    claim = queue.claim_run(store, run_id, owner, settings.lease)
    keeper = LeaseKeeper(store, owner, settings.lease)
    keeper.start()

    def checkpoint() -> None:
        check_lease(store, run_id, owner, "this process")

    try:
        with keeper.holding(claim):
            run = engine.execute_run(store, run_id, progress, checkpoint)
        queue.end_lease(store, run_id, owner)
        return run
    finally:
        keeper.stop()
