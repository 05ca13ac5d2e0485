"""Service commands: `serve`, `worker`, Sync Now for workers, `runs cancel` and `directories schedule`."""

from __future__ import annotations

import os
import threading
import time
from importlib import import_module
from typing import Annotated, Any

import structlog
import typer
from rich.markup import escape
from sqlalchemy import select
from sqlalchemy.engine import make_url

from accessiq.cli.output import console, err_console, print_json, schedule_text, status
from accessiq.config import Settings
from accessiq.jobs.scheduler import schedule_info, set_schedule
from accessiq.jobs.worker import StopSignals, Worker, signals_blocked
from accessiq.logs import configure_logging
from accessiq.services import directories as dirs
from accessiq.services import runs
from accessiq.store.database import Store, open_store
from accessiq.store.tables import Administrator

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
DirectoryArg = Annotated[str, typer.Argument(help="Directory id or name.")]
RunArg = Annotated[str, typer.Argument(help="Run id.")]
log = structlog.get_logger("accessiq.jobs")

Concurrency = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, help="How many runs this process carries out at once.")
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    """Add this module's commands to the `accessiq` CLI (called by accessiq.cli)."""
    app.command("worker")(worker)
    app.command("serve")(serve)
    groups["runs"].command("cancel")(runs_cancel)
    groups["runs"].command("request")(runs_request)
    groups["directories"].command("schedule")(directories_schedule)


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
        if server is not None and not _start_http(server):
            process.stop(at_once=True)
            process.join()
            err_console.print(f"[red]error:[/red] could not serve on {escape(host)}:{port} (see the log above)")
            raise typer.Exit(1)
        _print_where(settings, server, host, port, concurrency, store)
        while not process.join(timeout=0.2):
            for name in signals.pending():
                log.info("serve.signal", signal=name)
                process.stop()
                if server is not None:
                    server.should_exit = True
        if server is not None:
            server.should_exit = True
            server.thread.join(timeout=10)
    err_console.print("AccessIQ stopped")


def _has_administrator(store: Store) -> bool:
    with store.transaction() as session:
        return session.scalar(select(Administrator.id).limit(1)) is not None


def _start_http(server: Any) -> bool:
    """Run uvicorn in a thread (its own signal handling stays off there); False if it did not start."""
    with signals_blocked():
        server.thread = threading.Thread(target=server.run, name="http", daemon=True)
        server.thread.start()
    while not server.started and server.thread.is_alive():
        time.sleep(0.05)
    return bool(server.started)


def _print_where(
    settings: Settings, server: Any, host: str, port: int, concurrency: int, store: Store | None = None
) -> None:
    """Tell the person who started `serve` where the UI is (or that there is none)."""
    if server is not None:
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        base = f"http://{shown}:{port}"
        err_console.print(
            f"AccessIQ is running. Web UI: {base}/   REST API: {base}/api/v1   OpenAPI: {base}/openapi.json\n"
            f"database {_database(settings)}; scheduler and {concurrency} worker slot(s) in this process. "
            "Stop with Ctrl-C.",
            soft_wrap=True,
        )
        if store is not None and not _has_administrator(store):
            err_console.print(
                f"First start: create the first administrator at {base}/setup (or: accessiq admin create)",
                soft_wrap=True,
            )
    else:
        err_console.print(
            "AccessIQ is running the scheduler and a worker; there is no web UI in this installation "
            f"(accessiq.api is missing), so nothing listens on {host}:{port}.\n"
            f"database {_database(settings)}. Stop with Ctrl-C.",
            soft_wrap=True,
        )


def _web_server(store: Store, host: str, port: int, settings: Settings | None = None) -> Any:
    """A uvicorn server for `accessiq.api.create_app(store)`, or None when the API is not installed."""
    try:
        api = import_module("accessiq.api")
    except ModuleNotFoundError as exc:
        if exc.name in ("accessiq.api", "accessiq"):
            return None
        raise
    create_app = getattr(api, "create_app", None)
    if create_app is None:
        return None
    import uvicorn

    # The listening host decides whether /metrics wants a token (ACCESSIQ_METRICS_AUTH=auto).
    app = create_app(store, settings=settings, listen_host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    return uvicorn.Server(config)


def runs_cancel(run: RunArg, as_json: JsonFlag = False) -> None:
    """Cancel a run: a queued run at once; a running run at its next checkpoint (nothing is applied)."""
    from accessiq.cli import store

    with store().transaction() as session:
        found = runs.cancel_run(session, runs.get_run(session, run))
        data = runs.run_json(session, found)
        data["cancel_requested"] = found.cancel_requested_at is not None
    if as_json:
        return print_json(data)
    if data["status"] == "canceled":
        console.print(f"run {data['id']} of {escape(data['directory']['name'])} canceled")
    else:
        console.print(
            f"run {data['id']} of {escape(data['directory']['name'])} is running; its worker stops it at the next "
            "checkpoint and nothing is applied (a run already applying finishes)"
        )


def runs_request(
    directory: DirectoryArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and log, apply nothing.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Read everything, not just changes.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Sync Now: queue a run for the workers (the queued or running run, if there is one)."""
    from accessiq.cli import store

    with store().transaction() as session:
        found = dirs.get_directory(session, directory)
        run, created = runs.request_sync(session, found, trigger="manual", dry_run=dry_run, full=full)
        session.flush()
        data = runs.run_json(session, run)
    if as_json:
        return print_json(data)
    if created:
        console.print(f"queued run {data['id']} of {escape(data['directory']['name'])}; a worker will pick it up")
    else:
        console.print(
            f"run {data['id']} of {escape(data['directory']['name'])} is already {status(data['status']).markup}"
        )


def directories_schedule(
    directory: DirectoryArg,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Turn automatic sync on or off.")] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Frequency: 15m, 1h, 24h or a cron expression (UTC).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a directory's schedule (next run, failures, staleness); --enable/--disable/--every change it."""
    from accessiq.cli import store

    with store().transaction() as session:
        found = dirs.get_directory(session, directory)
        if enable is not None or every is not None:
            set_schedule(session, found, enabled=enable, frequency=every)
            session.flush()
        info = schedule_info(session, found)
        name = found.name
    if as_json:
        return print_json({"directory": {"id": found.id, "name": name}, **info})
    console.print(schedule_text(name, info))
