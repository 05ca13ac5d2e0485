"""Load: 200 scheduled directories and 8 `accessiq worker` processes on one PostgreSQL, for minutes.

Each directory is a small `file` snapshot synced every 30 seconds; their schedules are switched on
one after another over the first period, as directories are added in life. The soak asserts:

- no run lost: every slot that came due while the directory had no run in progress got a run;
- none duplicated: no slot got two runs;
- none overlapping: per directory, the runs' [started_at, finished_at] never overlap;
- every run succeeded (or was still queued when the workers stopped);
- the memory of every worker process is flat: the median resident size over the second half of the
  soak is within 10% (plus 3 MiB) of the first half's, once the first slots have warmed it up;

and prints the runs, the coalesced slots, and the delay from a due slot to its run's start (p50,
p95, max). Run with `pytest -m slow tests/reliability/test_load_soak.py -s`.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accessiq.config import Settings
from accessiq.store.database import Store, open_store
from accessiq.store.tables import SyncRun
from tests.conftest import IN_CI, TEST_KEY, _admin, _postgres_database
from tests.jobs.jobkit import Processes, add_directory, all_runs, process_env, snapshot_document

DIRECTORIES = 200
WORKERS = 8
SLOTS_PER_WORKER = 2
INTERVAL = timedelta(seconds=30)
SOAK_SECONDS = 240  # the first 30 switch the schedules on
WARM_UP_SECONDS = 60  # memory samples before this are the processes settling in
SAMPLE_EVERY = 5.0
# Production-like queue timings, not the fast ones of the other process tests.
TIMINGS = {
    "ACCESSIQ_WORKER_LEASE_SECONDS": "15",
    "ACCESSIQ_WORKER_POLL_SECONDS": "1",
    "ACCESSIQ_WORKER_TICK_SECONDS": "1",
}


@pytest.fixture
def soak_store(tmp_path: Path, worker_id: str) -> Iterator[Store]:
    name = f"accessiq_soak_{worker_id}_{random.randrange(1 << 30)}"
    url = _postgres_database(name)
    if url is None:
        if IN_CI:
            pytest.fail("PostgreSQL is required in CI")
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    store = open_store(Settings(database_url=url, secret_key=TEST_KEY, data_dir=tmp_path))
    try:
        yield store
    finally:
        store.dispose()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _check_directory(directory_id: int, history: list[SyncRun], stop_at: datetime) -> tuple[int, int, list[float]]:
    """Assert no lost, duplicated or overlapping runs of one directory.

    Returns (slots coalesced while a run was active, slots coalesced by a late scheduler, delays in s).
    """
    assert history, f"directory {directory_id} never ran"
    assert {r.trigger for r in history} == {"schedule"}
    for run in history:
        assert run.status == "succeeded" or (run.status == "queued" and run.started_at is None), (
            directory_id,
            run.id,
            run.status,
            run.message,
        )
    slots = [r.scheduled_for for r in history]
    assert all(slots), f"directory {directory_id}: a scheduled run without its slot"
    assert len(set(slots)) == len(slots), f"directory {directory_id}: a slot ran twice"
    done = sorted((r for r in history if r.started_at), key=lambda r: r.started_at or stop_at)
    for before, after in itertools.pairwise(done):
        assert before.finished_at and after.started_at and before.finished_at <= after.started_at, (
            f"directory {directory_id}: runs {before.id} and {after.id} overlap"
        )
    # Every slot on the grid that came due before the schedulers stopped has one run: its own, or
    # the run that coalesced it — queued or running when the slot came due (the next run covers
    # it), or queued by a scheduler tick that came after the slot had passed (a late scheduler
    # queues one run for the latest slot, not one per missed slot). Slots after the last run are lost.
    anchor = history[0].scheduled_for
    last = history[-1].scheduled_for
    assert anchor is not None and last is not None
    coalesced = late = 0
    slot = anchor
    by_slot = {r.scheduled_for: r for r in history}
    while slot <= stop_at - timedelta(seconds=3):
        if slot not in by_slot:
            assert slot < last, f"directory {directory_id}: slot {slot.isoformat()} came due and never ran"
            busy = [r for r in history if r.queued_at <= slot and (r.finished_at is None or r.finished_at >= slot)]
            if busy:
                coalesced += 1
            else:
                late += 1
        slot += INTERVAL
    for run in history:
        assert run.scheduled_for is not None
        assert (run.scheduled_for - anchor) % INTERVAL == timedelta(0), f"directory {directory_id}: slot off the grid"
        early = run.queued_at < run.scheduled_for - timedelta(seconds=1)
        assert not early, f"directory {directory_id}: run {run.id} queued before its slot"
    delays = [((r.started_at or stop_at) - (r.scheduled_for or stop_at)).total_seconds() for r in done]
    return coalesced, late, delays


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_two_hundred_directories_eight_workers_soak(soak_store: Store, tmp_path: Path) -> None:
    store = soak_store
    frequency = f"{int(INTERVAL.total_seconds())}s"
    ids = []
    for i in range(DIRECTORIES):
        path = tmp_path / f"d{i}.json"
        path.write_text(json.dumps(snapshot_document(3, f"d{i}")))
        ids.append(add_directory(store, f"D{i:03}", path, frequency=frequency, schedule_enabled=False))

    procs = Processes(process_env(store, tmp_path, **TIMINGS), tmp_path)
    try:
        workers = [
            procs.start("worker", "--concurrency", str(SLOTS_PER_WORKER), "--name", f"w{n}")
            for n in range(1, WORKERS + 1)
        ]
        for worker in workers:
            procs.wait_output(worker, "worker.started", timeout=120)
        began = time.monotonic()

        def switch_on() -> None:
            # One directory after another over the first period, as an administrator adds them.
            for i in range(DIRECTORIES):
                add_directory(store, f"D{i:03}", tmp_path / f"d{i}.json", frequency=frequency, schedule_enabled=True)
                time.sleep(max(0.0, began + (i + 1) * INTERVAL.total_seconds() / DIRECTORIES - time.monotonic()))

        switcher = threading.Thread(target=switch_on, name="switch-on")
        switcher.start()
        samples: list[tuple[float, list[int]]] = []
        while time.monotonic() - began < SOAK_SECONDS:
            for worker in workers:
                assert worker.poll() is None, procs.output(worker)[-3000:]
            samples.append((time.monotonic() - began, [_rss_kib(w.pid) for w in workers]))
            time.sleep(SAMPLE_EVERY)
        switcher.join()
        stop_at = datetime.now(UTC)
        for worker in workers:
            procs.terminate(worker)
        for worker in workers:
            code, output = procs.stop(worker, timeout=60)
            assert code == 0, output[-3000:]
    finally:
        procs.close()

    coalesced = coalesced_late = 0
    delays: list[float] = []
    by_worker: Counter[str] = Counter()
    problems: list[str] = []
    for directory_id in ids:
        history = all_runs(store, directory_id)
        try:
            more, behind, waited = _check_directory(directory_id, history, stop_at)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        coalesced += more
        coalesced_late += behind
        delays += waited
        by_worker.update((r.lease_owner or "?").split(":")[0] for r in history if r.started_at)

    steady = [rss for at, rss in samples if at >= WARM_UP_SECONDS]
    half = len(steady) // 2
    memory = []
    for n in range(WORKERS):
        first = statistics.median(s[n] for s in steady[:half]) / 1024
        second = statistics.median(s[n] for s in steady[half:]) / 1024
        memory.append({"worker": f"w{n + 1}", "first_half_mib": round(first, 1), "second_half_mib": round(second, 1)})
    report = {
        "directories": DIRECTORIES,
        "workers": WORKERS,
        "soak_s": SOAK_SECONDS,
        "runs": len(delays),
        "runs_per_worker": dict(sorted(by_worker.items())),
        "slots_coalesced_while_a_run_was_active": coalesced,
        "slots_coalesced_by_a_late_scheduler": coalesced_late,
        "delay_p50_s": round(statistics.median(delays), 3),
        "delay_p95_s": round(_percentile(delays, 0.95), 3),
        "delay_max_s": round(max(delays), 3),
        "memory": memory,
        "directories_with_problems": len(problems),
    }
    print(f"\nload soak: {json.dumps(report)}")
    assert not problems, problems[:20]
    for entry in memory:
        assert entry["second_half_mib"] <= entry["first_half_mib"] * 1.10 + 3, report
    assert set(by_worker) == {f"w{n}" for n in range(1, WORKERS + 1)}, report
