"""What happens to a run that Sync Now queued.

In production nothing happens here: the run sits in the queue and a worker
(`accessiq serve` or `accessiq worker`) claims it. With `inline=True` (tests and
demos without a worker) the app runs it itself on a background thread.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from accessiq.services import Store, runs

log = structlog.get_logger("accessiq.api")


class RunLauncher:
    """Hands queued runs to an in-process thread when `inline`, else leaves them to the workers."""

    def __init__(self, store: Store, *, inline: bool = False) -> None:
        self.store = store
        self.inline = inline
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[object]] = []

    def launch(self, run_id: int) -> None:
        """Called after a run was queued (and committed)."""
        if not self.inline:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accessiq-inline-run")
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._pool.submit(self._run, run_id))

    def _run(self, run_id: int) -> object:
        try:
            return runs.run_now(self.store, run_id)
        except Exception:  # the engine ends runs cleanly; anything here is a bug worth the log
            log.exception("inline_run.crashed", run_id=run_id)
            return None

    def wait(self, timeout: float | None = None) -> None:
        """Block until every launched run has ended (tests use it)."""
        for future in list(self._futures):
            future.result(timeout=timeout)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None
