"""The long-running processes, `accessiq serve` and `accessiq worker`: the top of the stack.

They open the store, build the app (`accessiq.server`), start the scheduler and workers
(`accessiq.jobs`) and hand everything down; `main` adds them to the CLI and runs it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated, Any

import structlog
import typer
from rich.markup import escape
from sqlalchemy.engine import make_url

from accessiq import cli
from accessiq.cli.output import err_console, status
from accessiq.config import Settings
from accessiq.jobs.worker import StopSignals, Worker, signals_blocked
from accessiq.logs import configure_logging
from accessiq.services import accounts, runs
from accessiq.store.database import Store, open_store

log = structlog.get_logger("accessiq.jobs")

Concurrency = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, help="How many runs this process carries out at once.")
]


def main() -> None:
    """Entry point of the `accessiq` command: the CLI with `serve` and `worker`."""
    cli.app.command("worker")(worker)
    cli.app.command("serve")(serve)
    cli.main()


def _service_logging(settings: Settings) -> None:
    # Long-running processes log their work at info unless told otherwise; one-shot commands
    # keep the CLI's quieter default.
    configure_logging(os.environ.get("ACCESSIQ_LOG_LEVEL", "info"), settings.log_format)


def _database(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def worker(
    concurrency: Concurrency = 1,
    scheduler: Annotated[
        bool,
        typer.Option("--scheduler/--no-scheduler", help="Also queue scheduled runs (safe on every worker)."),
    ] = True,
    name: Annotated[str | None, typer.Option("--name", help="Name in logs and runs; default host:pid.")] = None,
) -> None:
    """Run a worker: claim queued runs and carry them out until SIGTERM or Ctrl-C.

    Start any number of workers on any number of machines against one PostgreSQL database.
    """
    settings = Settings()
    _service_logging(settings)
    store = open_store(settings)
    process = Worker(store, concurrency=concurrency, schedule=scheduler, name=name)
    err_console.print(
        f"AccessIQ worker {escape(process.name)}: {concurrency} slot(s), scheduler {'on' if scheduler else 'off'}, "
        f"database {_database(settings)}\n"
        "The web UI is served by `accessiq serve`, not by a worker. Stop with Ctrl-C or SIGTERM.",
        soft_wrap=True,
    )
    try:
        process.run_until_signalled()
    finally:
        store.dispose()
    err_console.print(f"worker {escape(process.name)} stopped")


def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Connect the demo directory and run its first sync.")] = False,
    host: Annotated[str, typer.Option("--host", envvar="ACCESSIQ_HOST", help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", envvar="ACCESSIQ_PORT", help="TCP port.")] = 8000,
    concurrency: Concurrency = 1,
) -> None:
    """Run everything in one process: web UI and REST API, the scheduler and a worker."""
    settings = Settings()
    _service_logging(settings)
    store = open_store(settings)
    try:
        _serve(store, settings, demo=demo, host=host, port=port, concurrency=concurrency)
    finally:
        store.dispose()


def _serve(store: Store, settings: Settings, *, demo: bool, host: str, port: int, concurrency: int) -> None:
    sandboxes = []
    if demo:
        from accessiq.demo import setup_demo, start_sandbox_demos

        # Before the worker starts, so the demo's first runs are not also claimed by it.
        _print_demo_run(store, setup_demo(store))
        for provider, sandbox, run_id in start_sandbox_demos(store):
            sandboxes.append(sandbox.server)
            _print_demo_run(store, run_id)
            url = sandbox.server.url
            # So the wizard can connect another directory to the sandbox (ACCESSIQ_ALLOWED_ENDPOINTS).
            settings = settings.model_copy(update={"allowed_endpoints": [*settings.allowed_endpoints, url]})
            # Plain echo: the commands must not wrap, so they can be copied.
            typer.echo(
                f"demo: the {provider.title} sandbox is at {url}\n"
                f"  its credentials:  accessiq sandbox {provider.name} info --url {url}\n"
                f"  change it:        accessiq sandbox {provider.name} --help  (then press Sync Now)",
                err=True,
            )
    try:
        _run_service(store, settings, host=host, port=port, concurrency=concurrency)
    finally:
        for server in sandboxes:
            server.stop()


def _print_demo_run(store: Store, run_id: int) -> None:
    with store.transaction() as session:
        data = runs.run_json(session, runs.get_run(session, run_id))
    err_console.print(
        f"demo: directory {escape(data['directory']['name'])} connected; run {run_id} {status(data['status']).markup} "
        f"({data['counts']['users_created']} users created)"
    )


def _run_service(store: Store, settings: Settings, *, host: str, port: int, concurrency: int) -> None:

    server = _web_server(store, host, port, settings)
    process = Worker(store, concurrency=concurrency, schedule=True)
    # Handlers go in before any thread starts, so no early signal gets the default action.
    with StopSignals() as signals:
        process.start()
        if not _start_http(server):
            process.stop(at_once=True)
            process.join()
            err_console.print(f"[red]error:[/red] could not serve on {escape(host)}:{port} (see the log above)")
            raise typer.Exit(1)
        _print_where(settings, host, port, concurrency, store)
        while not process.join(timeout=0.2):
            for name in signals.pending():
                log.info("serve.signal", signal=name)
                process.stop()
                server.should_exit = True
        server.should_exit = True
        server.thread.join(timeout=10)
    err_console.print("AccessIQ stopped")


def _has_administrator(store: Store) -> bool:
    with store.transaction() as session:
        return accounts.count_administrators(session) > 0


def _start_http(server: Any) -> bool:
    """Run uvicorn in a thread (its own signal handling stays off there); False if it did not start."""
    with signals_blocked():
        server.thread = threading.Thread(target=server.run, name="http", daemon=True)
        server.thread.start()
    while not server.started and server.thread.is_alive():
        time.sleep(0.05)
    return bool(server.started)


def _print_where(settings: Settings, host: str, port: int, concurrency: int, store: Store) -> None:
    """Tell the person who started `serve` where the UI is."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}"
    err_console.print(
        f"AccessIQ is running. Web UI: {base}/   REST API: {base}/api/v1   OpenAPI: {base}/openapi.json\n"
        f"database {_database(settings)}; scheduler and {concurrency} worker slot(s) in this process. "
        "Stop with Ctrl-C.",
        soft_wrap=True,
    )
    if not _has_administrator(store):
        err_console.print(
            f"First start: create the first administrator at {base}/setup (or: accessiq admin create)",
            soft_wrap=True,
        )


def _web_server(store: Store, host: str, port: int, settings: Settings | None = None) -> Any:
    """A uvicorn server for the app over `store`."""
    # Imported here: the web stack costs every other `accessiq` command a third of a second.
    import uvicorn

    from accessiq.server import create_app

    # The listening host decides whether /metrics wants a token (ACCESSIQ_METRICS_AUTH=auto).
    app = create_app(store, settings=settings, listen_host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    return uvicorn.Server(config)
