"""The ASGI app: REST API under /api/v1, the admin web UI, /healthz, /metrics and static files.

`create_app(store)` builds it; nothing is created at import time. `accessiq serve`
mounts it next to the scheduler and worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from accessiq.config import Settings
    from accessiq.store.database import Store


def create_app(
    store: Store,
    *,
    settings: Settings | None = None,
    inline_worker: bool = False,
    secure_cookies: bool = True,
    listen_host: str | None = None,
) -> FastAPI:
    """The complete app over `store` (see `accessiq.api.app.create_app`).

    `inline_worker=True` runs queued syncs on a thread of this process (tests and
    demos without a worker); otherwise Sync Now only queues the run for the workers.
    `secure_cookies=False` lets the sign-in cookie travel over plain http (local
    development only). `listen_host`: where `accessiq serve` listens (decides whether
    /metrics wants a token when ACCESSIQ_METRICS_AUTH=auto).
    """
    # Imported here so that `accessiq.api.auth` and friends load without building the web layer.
    from accessiq.api.app import create_app as build

    return build(
        store, settings=settings, inline_worker=inline_worker, secure_cookies=secure_cookies, listen_host=listen_host
    )


__all__ = ["create_app"]
