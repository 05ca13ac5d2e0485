"""Identity > Directory Sync: the list of directories, each directory's dashboard, Sync Now and delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from accessiq.dependencies import LauncherDep, StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import configure, providers, runs
from accessiq.services import directories as dirs
from accessiq.web.chart import runs_chart
from accessiq.web.forms import FormDep
from accessiq.web.routes.directory_forms import DirectoryId, load_directory
from accessiq.web.routes.directory_scim import scim_panel
from accessiq.web.routes.directory_wizard import WIZARD_STEPS
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/directories", include_in_schema=False)


def _provider_titles() -> dict[str, str]:
    return {p.name: p.title for p in providers.catalog()}


# -- the list ------------------------------------------------------------------------------------


@router.get("")
def directory_list(request: Request, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        listed = [configure.directory_view(session, d) for d in dirs.list_directories(session)]
        active = {d["id"]: _active_run(session, d["id"]) for d in listed}
    return render(
        request,
        "directories/list.html",
        {
            "directories": listed,
            "active": active,
            "provider_titles": _provider_titles(),
            "setup_labels": dict(WIZARD_STEPS),
            "section": "directories",
        },
    )


@router.get("/frequency-words")
def frequency_words(request: Request, admin: AdminDep, frequency_custom: str = Query("", max_length=200)) -> Response:
    """The words for a frequency being typed (htmx), or what is wrong with it."""
    return render(
        request,
        "directories/_frequency_words.html",
        {"frequency": frequency_custom, "frequency_problem": configure.frequency_check(frequency_custom)},
    )


def _active_run(session: Session, directory_id: int) -> dict[str, Any] | None:
    for run in runs.list_runs(session, dirs.get_directory(session, directory_id), limit=3):
        if run.status in runs.ACTIVE:
            return runs.run_json(session, run)
    return None


# -- the dashboard and Sync Now ------------------------------------------------------------------


@router.get("/{directory_id}")
def dashboard(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        directory, data = load_directory(session, directory_id)
        recent = [runs.run_json(session, r) for r in runs.list_runs(session, directory, limit=20)]
        # The last applied sync may be older than the recent runs (after many dry runs).
        last_applied = dirs.last_finished_run(session, directory, applied=True)
        applied = runs.run_json(session, last_applied) if last_applied else None
    active = next((r for r in recent if r["status"] in runs.ACTIVE), None)
    finished = [r for r in recent if r["status"] not in runs.ACTIVE]
    last = finished[0] if finished else None
    blocked = [r for r in finished if r["status"] == "blocked" and r["pending_approval"]]
    return render(
        request,
        "directories/dashboard.html",
        {
            "section": "directories",
            "tab": "dashboard",
            "directory": data,
            "active": active,
            # The last attempt is shown apart only when it is not the last applied sync.
            "attempt": last if last and (applied is None or last["id"] != applied["id"]) else None,
            "applied": applied,
            "blocked": blocked,
            "recent": finished[:8],
            "chart": runs_chart(list(reversed(finished[:20]))),
            "next_sync": _next_sync(data),
            "setup_labels": dict(WIZARD_STEPS),
            "scim": scim_panel(request, store, directory_id),
        },
    )


def _next_sync(directory: dict[str, Any]) -> dict[str, Any] | None:
    """When the scheduler runs the directory next, as the scheduler itself computes it."""
    schedule = directory["schedule"]
    if schedule.get("next_run_at") is None:
        return None
    return {
        "at": schedule["next_run_at"],
        "frequency": schedule["frequency"],
        "backoff_until": schedule.get("backoff_until"),
        "failures": schedule.get("consecutive_failures", 0),
        "stale": schedule.get("stale", False),
    }


@router.post("/{directory_id}/sync")
def sync_now(
    request: Request,
    directory_id: DirectoryId,
    store: StoreDep,
    launcher: LauncherDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    dry_run = form.get("dry_run") == "1"
    with store.transaction() as session:
        unfinished = dirs.pending_setup_step(session, dirs.get_directory(session, directory_id))
    if unfinished is not None:
        # An unfinished setup has never been previewed: its first sync is applied from a preview.
        return redirect(
            request,
            f"/directories/{directory_id}/setup/preview",
            "Setup is not finished: preview the first sync, review what it would change, then apply it.",
            "info",
        )
    with store.transaction() as session:
        run, created = runs.request_sync(
            session, dirs.get_directory(session, directory_id), trigger="manual", dry_run=dry_run
        )
        run_id, status = run.id, run.status
    if created:
        launcher.launch(run_id)
        # No banner of its own: the run's live progress says queued, running, then how it ended.
        return redirect(request, f"/directories/{directory_id}")
    return redirect(
        request, f"/directories/{directory_id}", f"Run #{run_id} is already {status}; showing its progress.", "info"
    )


@router.post("/{directory_id}/delete")
def delete(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            name = directory.name
            dirs.delete_directory(session, directory)
    except AccessIQError as exc:
        return redirect(request, f"/directories/{directory_id}/settings", str(exc), "error")
    return redirect(request, "/directories", f"Directory {name} deleted. Its users remain as local users.")
