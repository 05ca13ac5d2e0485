"""/api/v1/runs: the sync log; approve, reject or cancel runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from accessiq.api.deps import PageDep
from accessiq.api.routes.paging import paginate
from accessiq.api.schemas import ChangeOut, RunOut
from accessiq.dependencies import PlainRef, SessionDep, StoreDep
from accessiq.services import directories as dirs
from accessiq.services import runs

router = APIRouter(prefix="/runs", tags=["runs"])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Run id.")]
RunStatus = Literal["queued", "running", "succeeded", "succeeded_with_errors", "failed", "blocked", "canceled"]
ObjectKind = Literal["user", "group", "group_membership", "org_membership"]


@router.get("", response_model=list[RunOut])
def list_runs(
    session: SessionDep,
    page: PageDep,
    response: Response,
    directory: Annotated[str | None, Query(max_length=200, description="Directory id or name."), PlainRef] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
    dry_run: Annotated[bool | None, Query(description="Only dry runs (true) or only real runs (false).")] = None,
) -> list[dict[str, Any]]:
    """Runs, newest first."""
    found = dirs.get_directory(session, directory) if directory else None
    filtered = status is not None or dry_run is not None
    # Without filters the service's limit pages; with them, read further and filter here.
    limit = page.offset + page.limit + 1 if not filtered else 10_000
    listed = [
        r
        for r in runs.list_runs(session, found, limit=limit)
        if (status is None or r.status == status) and (dry_run is None or r.dry_run == dry_run)
    ]
    return [runs.run_json(session, r) for r in paginate(listed, page, response, complete=filtered)]


@router.get("/{run}", response_model=RunOut, response_model_exclude_none=False)
def get_run(
    run: RunId,
    session: SessionDep,
    changes: Annotated[bool, Query(description="Include every change.")] = False,
) -> dict[str, Any]:
    """A run with its counts, errors, notes and progress; with `changes=true` every change too."""
    return runs.run_json(session, runs.get_run(session, run), changes=changes)


@router.get("/{run}/changes", response_model=list[ChangeOut])
def list_changes(
    run: RunId,
    session: SessionDep,
    page: PageDep,
    response: Response,
    object: Annotated[ObjectKind | None, Query(description="Only changes to this kind of object.")] = None,
    action: Annotated[str | None, Query(max_length=30, description="Only this action (create, update, ...).")] = None,
) -> list[dict[str, Any]]:
    """The run's changes in apply order, with before and after values of updates."""
    found = runs.get_run(session, run)
    changes = runs.run_changes(session, found, object, action)
    return paginate(changes, page, response)


@router.post("/{run}/approve", response_model=RunOut)
def approve_run(run: RunId, store: StoreDep) -> dict[str, Any]:
    """Apply exactly the plan a blocked run or a dry run stored; refused if the store moved since.

    Answers the new run that applied it.
    """
    with store.transaction() as session:
        run_id = runs.get_run(session, run).id
    applied = runs.approve(store, run_id)
    with store.transaction() as session:
        return runs.run_json(session, runs.get_run(session, applied.id))


@router.post("/{run}/reject", response_model=RunOut)
def reject_run(run: RunId, store: StoreDep) -> dict[str, Any]:
    """Discard the stored plan of a blocked run or a dry run."""
    with store.transaction() as session:
        run_id = runs.get_run(session, run).id
    runs.reject(store, run_id)
    with store.transaction() as session:
        return runs.run_json(session, runs.get_run(session, run_id))


@router.post("/{run}/cancel", response_model=RunOut)
def cancel_run(run: RunId, session: SessionDep) -> dict[str, Any]:
    """Cancel a run: a queued one at once, a running one at its worker's next checkpoint; nothing is applied."""
    return runs.run_json(session, runs.cancel_run(session, runs.get_run(session, run)))
