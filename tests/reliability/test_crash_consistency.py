"""Crash consistency: SIGKILL the process that syncs, at random points of the read and the apply.

Real `accessiq sync`, `accessiq worker` and `accessiq serve` processes on SQLite and PostgreSQL.
Every iteration starts from the same saved database (the directory synced once) and a source that
changed every synced table; the process is killed at a random delay into the read (the source is
a slow pipe) or into the apply (after the run says it is applying), and then:

- the store is exactly the state before the run (byte for byte, timestamps and row ids
  included) or exactly the state the run applies (the same canonical dump as an unkilled run);
- SQLite passes `PRAGMA integrity_check`;
- a killed run that applied nothing has no change logged;
- the next process of the same kind recovers the lapsed lease (no run is left `running`) and its
  run converges to the state the killed run would have applied.

The default run kills 3 times per backend; `pytest -m slow tests/reliability` kills 21 times per backend.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from accessiq.services import runs
from accessiq.store.database import Store
from accessiq.store.tables import Directory, RunChange, SyncRun
from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, _postgres_database
from tests.jobs.jobkit import FAST, Processes, applying, free_port, process_env, wait_for
from tests.reliability.crashkit import (
    Backend,
    Trickle,
    add_corp_directory,
    corp_snapshot,
    differences,
    digest,
    dump,
    integrity,
)

PEOPLE = 1500  # the run then applies ~600 creates, ~550 updates, ~200 deactivations, ~3000 membership changes
READ_SECONDS = 1.5  # how long the slow source takes to hand over the snapshot
KINDS = ("sync", "worker", "serve")
# Where a kill lands: into the read, or into the plan-and-apply (after the run reports `applying`).
WINDOWS = ("apply", "read")
SEED = 1729
LEASE = float(FAST["ACCESSIQ_WORKER_LEASE_SECONDS"])
FIRST_RUN = 1  # the saved state's run; every iteration's runs come after it


@dataclass
class Kill:
    kind: str
    window: str
    delay: float
    phase: str  # what the run was doing just before the kill
    state: str  # pre | post: what the store held afterwards
    seconds: float  # the whole iteration: kill, checks, recovery


@dataclass
class Lab:
    """A backend whose saved state is the directory synced once, and the state one more run applies."""

    backend: Backend
    directory_id: int
    source: Trickle
    tmp: Path
    exact_before: dict[str, Any]
    canonical_before: dict[str, Any]
    canonical_after: dict[str, Any]
    apply_seconds: float

    def env(self, store: Store) -> dict[str, str]:
        return process_env(store, self.tmp)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Lab]:
    tmp_path = tmp_path_factory.mktemp(f"crash-{request.param}")
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path}/accessiq.db", tmp_path)
    else:
        name = f"accessiq_crash_{worker_id}_{random.randrange(1 << 30)}"
        url = _postgres_database(name)
        if url is None:
            if IN_CI:
                pytest.fail("PostgreSQL is required in CI")
            pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
        backend = Backend("postgresql", url, tmp_path, admin_url=POSTGRES_ADMIN_URL, name=name)
    source = Trickle(tmp_path / "corp.pipe", corp_snapshot(PEOPLE, after=False), READ_SECONDS)
    source.slow = False
    try:
        store = backend.open()
        directory_id = add_corp_directory(store, source.path)
        first = subprocess.run(
            [sys.executable, "-m", "accessiq", "sync", "Corp"],
            env=process_env(store, tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.returncode == 0, first.stdout + first.stderr
        assert [r.id for r in _runs(store, directory_id)] == [FIRST_RUN]
        backend.save(store)
        store = backend.open()
        exact_before = dump(store, exact=True)
        canonical_before = dump(store)
        # The source changes; an unkilled run tells what state the next run applies, and how long
        # its plan-and-apply takes here.
        source.data = json.dumps(corp_snapshot(PEOPLE, after=True)).encode()
        procs = Processes(process_env(store, tmp_path), tmp_path)
        try:
            reference = procs.start("sync", "Corp")
            applying_at = wait_for(
                lambda: _phase(store, directory_id) == "planning" and time.monotonic(),
                120,
                "the reference run to apply",
                every=0.01,
            )
            wait_for(lambda: _phase(store, directory_id) == "succeeded", 120, "the reference run to end", every=0.01)
            apply_seconds = time.monotonic() - applying_at
            assert reference.wait(120) == 0, procs.output(reference)
        finally:
            procs.close()
        canonical_after = dump(store)
        assert canonical_after != canonical_before
        store.dispose()
        backend.restore()
        yield Lab(
            backend, directory_id, source, tmp_path, exact_before, canonical_before, canonical_after, apply_seconds
        )
    finally:
        source.close()
        backend.drop()


def _phase(store: Store, directory_id: int) -> str:
    """The phase of the directory's run after its first: none, queued, reading, applying, or its final status."""
    with store.read() as session:
        run = session.scalar(
            select(SyncRun)
            .where(SyncRun.directory_id == directory_id, SyncRun.id > FIRST_RUN)
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
        if run is None:
            return "none"
        if run.status == "running":
            return str((run.progress or {}).get("phase") or "starting")
        return run.status


def _request(store: Store, directory_id: int) -> int:
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id))
        return run.id


def _runs(store: Store, directory_id: int) -> list[SyncRun]:
    with store.read() as session:
        return list(session.scalars(select(SyncRun).where(SyncRun.directory_id == directory_id).order_by(SyncRun.id)))


def _logged_changes(store: Store, run_id: int) -> int:
    with store.read() as session:
        return int(session.scalar(select(func.count()).where(RunChange.run_id == run_id)) or 0)


def _start(procs: Processes, kind: str) -> subprocess.Popen[bytes]:
    if kind == "sync":
        return procs.start("sync", "Corp")
    if kind == "worker":
        return procs.start("worker", "--no-scheduler")
    return procs.start("serve", "--port", str(free_port()))


def _settled(lab: Lab, store: Store) -> Callable[[], bool]:
    """True once the directory has no queued or running run and its newest run succeeded."""

    def check() -> bool:
        history = _runs(store, lab.directory_id)
        return (
            bool(history)
            and history[-1].status == "succeeded"
            and all(r.status not in ("queued", "running") for r in history)
        )

    return check


def _crash_once(lab: Lab, kind: str, window: str, rng: random.Random) -> Kill:
    """Kill one `kind` process at a random point of `window`, check the store, let the next process recover."""
    began = time.monotonic()
    lab.backend.restore()
    store = lab.backend.open()
    procs = Processes(lab.env(store), lab.tmp)
    try:
        lab.source.slow = True
        if kind != "sync":
            _request(store, lab.directory_id)
        victim = _start(procs, kind)
        if window == "read":
            wait_for(
                lambda: _phase(store, lab.directory_id) in ("reading", "planning", "succeeded"),
                60,
                "the run to start reading",
                every=0.01,
            )
            delay = rng.uniform(0, READ_SECONDS)
        else:
            wait_for(
                lambda: _phase(store, lab.directory_id) in ("planning", "succeeded"), 60, "the run to apply", every=0.01
            )
            # Now and then just past the end of the apply: a run killed after it committed.
            delay = rng.uniform(0, lab.apply_seconds * 1.15)
        time.sleep(delay)
        phase = _phase(store, lab.directory_id)
        if phase == "planning" and applying(store, lab.directory_id):
            phase = "applying (writing)"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        lab.source.slow = False
        if lab.backend.dialect == "postgresql":
            # The dead client's server process rolls back once it notices the closed socket.
            wait_for(lambda: lab.backend.busy_sessions() == 0, 30, "the killed client's transaction to end")

        # Exactly the state before the run, or exactly the state it applies.
        now_exact = dump(store, exact=True)
        if now_exact == lab.exact_before:
            state = "pre"
        else:
            now = dump(store)
            assert now == lab.canonical_after, (
                f"{kind} killed {delay:.2f}s into the {window} ({phase}): the store is neither before nor after "
                f"the run; differs from before in {differences(now, lab.canonical_before)}, "
                f"from after in {differences(now, lab.canonical_after)}"
            )
            state = "post"
        if lab.backend.dialect == "sqlite":
            assert integrity(store) == "ok"
        history = _runs(store, lab.directory_id)
        killed = history[-1] if history[-1].id > FIRST_RUN else None
        if state == "pre" and killed is not None:
            assert killed.status in ("queued", "running"), (killed.status, killed.message)
            assert _logged_changes(store, killed.id) == 0
        if state == "post":
            assert killed is not None and killed.status == "succeeded"

        # The next process of the same kind recovers the run once its lease lapses, and converges.
        if kind == "sync":
            rescue = procs.run("sync", "Corp", "--json", timeout=180)
            assert rescue.returncode == 0, rescue.stdout[-2000:] + rescue.stderr[-2000:]
        else:
            rescuer = _start(procs, kind)
            # Up before it is asked to stop: a SIGTERM during start-up would end it with no handler.
            procs.wait_output(rescuer, "worker.started", timeout=120)
            wait_for(_settled(lab, store), 180, f"the next {kind} to settle the directory", every=0.2)
            code, output = procs.stop(rescuer)
            assert code == 0, output[-3000:]
        history = _runs(store, lab.directory_id)
        assert [r.id for r in history if r.status in ("queued", "running")] == []
        if state == "pre" and killed is not None and killed.status == "running":
            lost = next(r for r in history if r.id == killed.id)
            assert lost.status == "failed" and (lost.message or "").startswith("worker lost"), lost.message
            assert _logged_changes(store, killed.id) == 0
        after = dump(store)
        assert after == lab.canonical_after, differences(after, lab.canonical_after)
        if lab.backend.dialect == "sqlite":
            assert integrity(store) == "ok"
        return Kill(kind, window, round(delay, 3), phase, state, round(time.monotonic() - began, 1))
    finally:
        procs.close()
        store.dispose()


def _campaign(lab: Lab, iterations: int) -> list[Kill]:
    rng = random.Random(SEED + iterations)
    kills = []
    for i in range(iterations):
        kill = _crash_once(lab, KINDS[i % len(KINDS)], WINDOWS[(i // len(KINDS) + i % len(KINDS)) % len(WINDOWS)], rng)
        kills.append(kill)
    report = {
        "backend": lab.backend.dialect,
        "kills": len(kills),
        "by_process": dict(Counter(k.kind for k in kills)),
        "by_phase": dict(Counter(k.phase for k in kills)),
        "store_after_kill": dict(Counter(k.state for k in kills)),
        "post_state_digest": digest(lab.canonical_after),
    }
    print(f"\ncrash consistency: {json.dumps(report)}")
    for kill in kills:
        print(f"  {kill}")
    return kills


def test_sigkill_leaves_the_store_before_or_after_the_run_and_the_next_run_converges(lab: Lab) -> None:
    kills = _campaign(lab, 3)
    assert {k.kind for k in kills} == set(KINDS)
    assert {k.window for k in kills} == set(WINDOWS)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_at_random_points_many_times(lab: Lab) -> None:
    kills = _campaign(lab, 21)
    phases = Counter(k.phase for k in kills)
    assert {(k.kind, k.window) for k in kills} == {(kind, window) for kind in KINDS for window in WINDOWS}
    # The kills landed in the read and in the apply's write transaction, not only around them.
    assert phases["reading"] >= 3 and phases["applying (writing)"] >= 2, phases


def _run_row_locked(store: Store, run_id: int) -> bool:
    """PostgreSQL: whether a transaction has written the run's row (the apply has begun writing)."""
    with store.engine.connect() as connection:
        try:
            connection.execute(text("SELECT id FROM sync_runs WHERE id = :id FOR UPDATE NOWAIT"), {"id": run_id})
            return False
        except OperationalError:
            return True
        finally:
            connection.rollback()


def _stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state T in /proc/PID/stat)."""
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("T", "t")


def _freeze_while_planning(lab: Lab, delay: float) -> bool:
    """One attempt, freezing the worker `delay` seconds into its plan: False when it froze too late
    (its apply had begun writing) to tell anything."""
    lab.backend.restore()
    store = lab.backend.open()
    procs = Processes(lab.env(store), lab.tmp)
    try:
        run_id = _request(store, lab.directory_id)
        sleeper = procs.start("worker", "--no-scheduler", "--name", "sleeper")
        wait_for(lambda: _phase(store, lab.directory_id) == "planning", 60, "the run to plan", every=0.005)
        if lab.backend.dialect == "postgresql":
            # Inside the plan-and-apply transaction: it holds the directory's row lock.
            wait_for(lambda: applying(store, lab.directory_id), 30, "the run to lock its directory", every=0.002)
        # Into the plan, past the transaction's first look at the run if it can (SQLite plans without
        # its write lock); how long a plan takes depends on the machine, so each attempt freezes sooner.
        time.sleep(delay)
        sleeper.send_signal(signal.SIGSTOP)
        # A signal arrives when the kernel next schedules the process: look only once it has stopped.
        wait_for(lambda: _stopped(sleeper.pid), 10, "the worker to stop", every=0.001)
        writing = (
            _run_row_locked(store, run_id) if lab.backend.dialect == "postgresql" else applying(store, lab.directory_id)
        )
        if writing or _phase(store, lab.directory_id) != "planning":
            # Frozen after its apply began writing (nobody may take the run from it then), or after
            # the run ended: too late to tell anything.
            sleeper.send_signal(signal.SIGCONT)
            return False
        time.sleep(LEASE + 0.5)
        # Another worker recovers the run (its retry insert must not wait for the frozen plan's lock).
        rescuer = procs.start("worker", "--no-scheduler", "--name", "rescuer")
        wait_for(
            lambda: any(r.retry_of_run_id == run_id for r in _runs(store, lab.directory_id)),
            60,
            "the rescuer to recover the run",
            every=0.1,
        )
        sleeper.send_signal(signal.SIGCONT)
        wait_for(_settled(lab, store), 120, "the retry to succeed", every=0.2)
        history = _runs(store, lab.directory_id)
        frozen = next(r for r in history if r.id == run_id)
        retry = next(r for r in history if r.retry_of_run_id == run_id)
        assert frozen.status == "failed", (frozen.status, frozen.message)
        assert (frozen.message or "").startswith("worker lost"), frozen.message
        assert _logged_changes(store, run_id) == 0
        assert retry.status == "succeeded" and (retry.lease_owner or "").startswith("rescuer:")
        assert dump(store) == lab.canonical_after
        for worker in (sleeper, rescuer):
            assert procs.stop(worker)[0] == 0
        return True
    finally:
        procs.close()
        store.dispose()


def test_a_worker_frozen_while_planning_applies_nothing_once_its_run_was_recovered(lab: Lab) -> None:
    """A worker stopped (SIGSTOP) after its read loses its lease; another worker recovers and retries
    the run. When the first wakes it must apply nothing, nor turn the recovered run into a success."""
    froze = any(_freeze_while_planning(lab, delay) for delay in (0.05, 0.0, 0.02, 0.1, 0.3))
    assert froze, "the worker never froze before its apply wrote"


def _lease_lapsed_now(store: Store, run_id: int) -> bool | None:
    """Whether the run's lease has lapsed by the database's clock; None once the run has ended."""
    with store.engine.connect() as connection:
        status, expires, now = connection.execute(
            text("SELECT status, lease_expires_at, clock_timestamp() FROM sync_runs WHERE id = :id"), {"id": run_id}
        ).one()
    if status != "running":
        return None
    return expires is not None and expires < now


@pytest.mark.parametrize("lab", ["postgresql"], indirect=True)
def test_a_live_worker_keeps_its_lease_through_a_long_apply(lab: Lab) -> None:
    """On PostgreSQL the heartbeat renews the lease while the apply writes, so a run that is being
    applied is never shown as lost, nor left for recovery, however long its apply takes."""
    lab.backend.restore()
    store = lab.backend.open()
    # A lease far shorter than the apply: every renewal during the apply counts.
    procs = Processes({**lab.env(store), "ACCESSIQ_WORKER_LEASE_SECONDS": "0.6"}, lab.tmp)
    try:
        run_id = _request(store, lab.directory_id)
        worker = procs.start("worker", "--no-scheduler")
        wait_for(lambda: applying(store, lab.directory_id), 60, "the run to apply", every=0.005)
        seen: list[bool] = []
        while (lapsed := _lease_lapsed_now(store, run_id)) is not None:
            seen.append(lapsed)
            time.sleep(0.005)
        history = _runs(store, lab.directory_id)
        assert [r.status for r in history[1:]] == ["succeeded"], [(r.status, r.message) for r in history]
        assert len(seen) > 20, "the apply was too short to tell"
        assert not any(seen), f"the lease lapsed in {sum(seen)} of {len(seen)} looks during the apply"
        assert procs.stop(worker)[0] == 0
    finally:
        procs.close()
        store.dispose()
