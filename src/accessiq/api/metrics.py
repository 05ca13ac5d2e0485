"""/metrics for Prometheus, read from the store at scrape time.

The store is the truth shared by every worker process, so the numbers are the
same whichever process is scraped: runs by status, run durations, users synced
and the time of each directory's last successful sync. The metrics name
directories, so off the machine they need an API token (see `token_required`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from accessiq.endpoints import is_loopback
from accessiq.services import Store
from accessiq.services import runs as run_service

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
SUCCESS = run_service.SUCCESS
# Scrapes look at this many of the newest finished runs for durations and change totals.
RECENT_RUNS = 5000


class StoreCollector(Collector):
    """Reads the metrics from the store on each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        with self.store.transaction() as session:
            snapshot = run_service.metrics_snapshot(session, RECENT_RUNS)
        names = snapshot.names
        by_status, users, last_success, recent = (
            snapshot.by_status,
            snapshot.users,
            snapshot.last_success,
            snapshot.recent,
        )

        runs = GaugeMetricFamily(
            "accessiq_sync_runs", "Sync runs by directory and status", labels=["directory", "status"]
        )
        for directory_id, status, count in by_status:
            runs.add_metric([names.get(directory_id, str(directory_id)), status], count)
        yield runs

        synced = GaugeMetricFamily(
            "accessiq_users_synced", "Users linked to a directory, by status", labels=["directory", "status"]
        )
        for user_directory, user_status, user_count in users:
            synced.add_metric([names.get(user_directory or 0, str(user_directory)), user_status], user_count)
        yield synced

        last = GaugeMetricFamily(
            "accessiq_last_successful_sync_timestamp_seconds",
            "Unix time when the directory's last successful (applied) sync ended",
            labels=["directory"],
        )
        for directory_id, finished in last_success:
            if finished is not None:
                last.add_metric([names.get(directory_id, str(directory_id))], finished.timestamp())
        yield last

        yield from _durations_and_changes(list(recent), names)


def _durations_and_changes(recent: list[Any], names: dict[int, str]) -> Iterator[Metric]:
    durations: dict[str, list[float]] = defaultdict(list)
    changes: dict[tuple[str, str], int] = Counter()
    for directory_id, started, finished, status, dry_run, counts in recent:
        name = names.get(directory_id, str(directory_id))
        if started is not None and finished is not None:
            durations[name].append(max((finished - started).total_seconds(), 0.0))
        if status in SUCCESS and not dry_run:
            for action in ("created", "updated", "deactivated", "reactivated"):
                changes[(name, action)] += int((counts or {}).get(f"users_{action}", 0))

    histogram = HistogramMetricFamily(
        "accessiq_sync_run_duration_seconds",
        f"Duration of finished sync runs (the newest {RECENT_RUNS})",
        labels=["directory"],
    )
    for name, values in sorted(durations.items()):
        buckets = [(str(bound), sum(1 for v in values if v <= bound)) for bound in DURATION_BUCKETS]
        buckets.append(("+Inf", len(values)))
        histogram.add_metric([name], buckets, sum(values))
    yield histogram

    total = CounterMetricFamily(
        "accessiq_sync_users_changed",
        f"Users created, updated, deactivated or reactivated by applied runs (the newest {RECENT_RUNS})",
        labels=["directory", "action"],
    )
    for (name, action), count in sorted(changes.items()):
        total.add_metric([name, action], count)
    yield total


def registry_for(store: Store) -> CollectorRegistry:
    """A registry of the app's own: nothing global, so two apps in one process do not collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return registry


def token_required(mode: str, listen_host: str | None) -> bool:
    """Whether /metrics asks for an API token (ACCESSIQ_METRICS_AUTH).

    `token`: always; `open`: never; `auto`: when the app listens where other machines can reach
    it. An app built without a listening host (tests, in-process servers) counts as loopback.
    """
    if mode != "auto":
        return mode == "token"
    return listen_host is not None and not is_loopback(listen_host.strip())
