"""Service commands: `serve`, `worker`, Sync Now for workers, `runs cancel` and `directories schedule`."""

from __future__ import annotations

from typing import Annotated

import structlog
import typer
from rich.markup import escape

from accessiq.cli.output import console, print_json, schedule_text, status
from accessiq.services import configure, runs
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
DirectoryArg = Annotated[str, typer.Argument(help="Directory id or name.")]
RunArg = Annotated[str, typer.Argument(help="Run id.")]
log = structlog.get_logger("accessiq.jobs")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    """Add this module's commands to the `accessiq` CLI (called by accessiq.cli)."""
    groups["runs"].command("cancel")(runs_cancel)
    groups["runs"].command("request")(runs_request)
    groups["directories"].command("schedule")(directories_schedule)


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
            configure.set_schedule(
                session, store().secrets, found, enabled=enable, frequency=every, policy=InputPolicy.operator()
            )
            session.flush()
        info = dirs.schedule_of(session, found)
        name = found.name
    if as_json:
        return print_json({"directory": {"id": found.id, "name": name}, **info})
    console.print(schedule_text(name, info))
