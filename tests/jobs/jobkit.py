"""Helpers for the queue, scheduler and worker tests: file directories, worker processes, FIFOs."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import SyncRun, User
from accessiq.sync.document import validate_document

# The key of tests/conftest.py, which subprocesses need to read directory secrets.
TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="

# Fast timings for tests; production defaults are seconds to tens of seconds.
FAST = {
    "ACCESSIQ_WORKER_LEASE_SECONDS": "2",
    "ACCESSIQ_WORKER_POLL_SECONDS": "0.2",
    "ACCESSIQ_WORKER_TICK_SECONDS": "0.25",
}


def snapshot_document(users: int, prefix: str, groups: bool = True) -> dict[str, Any]:
    """A file-provider snapshot with `users` users whose emails are unique to `prefix`."""
    people = [
        {
            "id": f"{prefix}-u{i}",
            "email": f"{prefix}-u{i}@example.com",
            "given_name": f"Given{i}",
            "family_name": "Doe",
            "display_name": f"Given{i} Doe",
        }
        for i in range(users)
    ]
    everyone = [{"id": f"{prefix}-all", "name": "Everyone", "members": [p["id"] for p in people]}]
    return {"users": people, "groups": everyone if groups else []}


def add_directory(store: Store, name: str, path: Path, **settings: Any) -> int:
    """Connect a file directory reading `path`; returns its id."""
    document = {
        "name": name,
        "provider": "file",
        "connection": {"path": str(path)},
        # Tests replace whole snapshots; never let the guard block them.
        "settings": {"safety": {"max_deactivations": 100000, "max_deactivation_percent": 100}, **settings},
    }
    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def count_users(store: Store, directory_id: int) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count(User.id)).where(User.directory_id == directory_id)) or 0)


def all_runs(store: Store, directory_id: int | None = None) -> list[SyncRun]:
    with store.transaction() as session:
        query = select(SyncRun).order_by(SyncRun.id)
        if directory_id is not None:
            query = query.where(SyncRun.directory_id == directory_id)
        return list(session.scalars(query))


def free_port() -> int:
    """A loopback port nothing listens on right now, for an `accessiq serve` of a test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def applying(store: Store, directory_id: int) -> bool:
    """Whether a process is inside a write transaction on the directory (the apply)."""
    if store.dialect == "sqlite":
        database = store.engine.url.database
        assert database is not None
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    with store.engine.connect() as connection:
        try:
            connection.execute(
                text("SELECT id FROM directories WHERE id = :id FOR UPDATE NOWAIT"), {"id": directory_id}
            )
        except OperationalError:
            return True
        finally:
            connection.rollback()
    return False


class Fifo:
    """A named pipe as a snapshot path: a run reading it blocks until the test feeds it.

    The test thereby holds a run mid-read for as long as it likes, without touching our code.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        os.mkfifo(path)

    def _open_writer(self) -> bool:
        if self._fd is not None:
            return True
        try:
            # Succeeds only while a reader has the pipe open; the write end is kept open so the
            # reader does not see an early end of file.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return False
            raise
        return True

    def wait_reader(self, timeout: float = 30) -> None:
        """Return once a run is blocked reading the pipe."""
        wait_for(self._open_writer, timeout, "a run to open the snapshot pipe")

    def abandon(self) -> None:
        """Forget a reader that died (its process was killed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def feed(self, document: dict[str, Any], timeout: float = 30) -> None:
        """Wait for a reader, then give it `document` and end its read."""
        self.wait_reader(timeout)
        assert self._fd is not None
        os.set_blocking(self._fd, True)
        with os.fdopen(self._fd, "wb") as pipe:
            pipe.write(json.dumps(document).encode())
        self._fd = None


class Processes:
    """`accessiq` subprocesses started by one test; whatever is left is killed at teardown.

    Output goes to a file per process: a busy worker logs more than a pipe holds.
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.terminated: set[int] = set()

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = self.cwd / f"process-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "accessiq", *args],
                env={**self.env, **env},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        self.logs[process.pid] = log
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[process.pid].read_text(errors="replace")

    def wait_output(self, process: subprocess.Popen[bytes], needle: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"process exited ({process.returncode}):\n{self.output(process)}")
            return needle in self.output(process)

        wait_for(seen, timeout, f"{needle!r} in the output", every=0.1)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "accessiq", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, once: a second one would mean "stop now" (or, after a clean stop, kill)."""
        if process.pid not in self.terminated and process.poll() is None:
            self.terminated.add(process.pid)
            process.send_signal(signal.SIGTERM)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str]:
        """SIGTERM (unless sent already), wait, and return (exit code, output)."""
        self.terminate(process)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # PYTHONFAULTHANDLER makes SIGABRT print every thread's stack into the log.
            process.send_signal(signal.SIGABRT)
            process.wait(timeout=10)
            raise AssertionError(f"process did not stop:\n{self.output(process)[-20000:]}") from None
        return process.returncode, self.output(process)

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def process_env(store: Store, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for `accessiq` subprocesses that share `store`'s database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSIQ_")}
    env |= {
        "ACCESSIQ_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
        "ACCESSIQ_SECRET_KEY": TEST_KEY,
        "ACCESSIQ_DATA_DIR": str(data_dir),
        "ACCESSIQ_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "PYTHONFAULTHANDLER": "1",
        **FAST,
        **extra,
    }
    return env
