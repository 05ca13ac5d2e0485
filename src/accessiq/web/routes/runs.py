"""The sync log: runs, a run's changes and errors, live progress, approve / reject / cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from accessiq.dependencies import PlainRef, StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import directories as dirs
from accessiq.services import runs
from accessiq.sync.planner import STEPS
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/runs", include_in_schema=False)

RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]
STATUSES = ("queued", "running", "succeeded", "succeeded_with_errors", "failed", "blocked", "canceled")
OBJECTS = ("user", "group", "group_membership", "org_membership")
CHANGES_PER_PAGE = 100


@router.get("")
def run_list(
    request: Request,
    store: StoreDep,
    admin: AdminDep,
    directory: Annotated[str | None, Query(max_length=200), PlainRef] = None,
    status: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    with store.transaction() as session:
        found = dirs.get_directory(session, directory) if directory else None
        listed = [
            runs.run_json(session, r)
            for r in runs.list_runs(session, found, limit=500)
            if not status or r.status == status
        ][:100]
        directories = [{"id": d.id, "name": d.name} for d in dirs.list_directories(session)]
    return render(
        request,
        "runs/list.html",
        {
            "section": "runs" if found is None else "directories",
            "tab": "runs",
            "runs": listed,
            "directories": directories,
            "directory": {"id": found.id, "name": found.name} if found else None,
            "status": status or "",
            "statuses": STATUSES,
        },
    )


@router.get("/{run_id}")
def run_detail(
    request: Request,
    run_id: RunId,
    store: StoreDep,
    admin: AdminDep,
    object: Annotated[str | None, Query(max_length=30)] = None,
    action: Annotated[str | None, Query(max_length=30)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    with store.transaction() as session:
        run = runs.get_run(session, run_id)
        data = runs.run_json(session, run)
        changes = runs.run_changes(session, run, object or None, action or None)
        total = len(changes)
        start = (page - 1) * CHANGES_PER_PAGE
        shown = changes[start : start + CHANGES_PER_PAGE]
        directory = dirs.directory_json(session, dirs.get_directory(session, run.directory_id))
    actions = sorted({a for _, a in STEPS} | {"retain"})
    return render(
        request,
        "runs/detail.html",
        {
            "section": "directories",
            "tab": "runs",
            "run": data,
            "directory": directory,
            "changes": shown,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // CHANGES_PER_PAGE)),
            "object": object or "",
            "action": action or "",
            "objects": OBJECTS,
            "actions": actions,
        },
    )


@router.get("/{run_id}/progress")
def run_progress(request: Request, run_id: RunId, store: StoreDep, admin: AdminDep) -> Response:
    """The live-progress fragment; once the run has ended it asks the page to reload (HX-Refresh)."""
    with store.transaction() as session:
        data = runs.run_json(session, runs.get_run(session, run_id))
    headers = {"HX-Refresh": "true"} if data["status"] not in runs.ACTIVE else None
    return render(request, "runs/_progress.html", {"run": data}, headers=headers)


def _act(request: Request, store: StoreDep, run_id: int, verb: str) -> Response:
    with store.transaction() as session:
        data: dict[str, Any] = runs.run_json(session, runs.get_run(session, run_id))
    back = f"/runs/{run_id}"
    try:
        if verb == "approve":
            applied = runs.approve(store, run_id)
            return redirect(
                request, f"/runs/{applied.id}", f"Run #{run_id} approved: its plan was applied as run #{applied.id}."
            )
        if verb == "reject":
            runs.reject(store, run_id)
            return redirect(request, back, f"Run #{run_id} rejected: nothing was applied.", "info")
        with store.transaction() as session:
            status = runs.cancel_run(session, runs.get_run(session, run_id)).status
        message = (
            f"Run #{run_id} canceled."
            if status == "canceled"
            else f"Run #{run_id} stops at its next checkpoint; nothing of it is applied."
        )
        return redirect(request, f"/directories/{data['directory']['id']}", message, "info")
    except AccessIQError as exc:
        return redirect(request, back, str(exc), "error")


@router.post("/{run_id}/approve")
def approve(request: Request, run_id: RunId, store: StoreDep, admin: AdminDep) -> Response:
    return _act(request, store, run_id, "approve")


@router.post("/{run_id}/reject")
def reject(request: Request, run_id: RunId, store: StoreDep, admin: AdminDep) -> Response:
    return _act(request, store, run_id, "reject")


@router.post("/{run_id}/cancel")
def cancel(request: Request, run_id: RunId, store: StoreDep, admin: AdminDep) -> Response:
    return _act(request, store, run_id, "cancel")
