"""/api/v1/directories: connect, configure, test, map groups, Sync Now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from accessiq.api.deps import PageDep
from accessiq.api.routes.paging import paginate
from accessiq.api.schemas import (
    CheckOut,
    DirectoryOut,
    MappingPreviewIn,
    MappingPreviewOut,
    RunOut,
    SettingsPatch,
    SourceGroupOut,
    SyncRequest,
)
from accessiq.dependencies import LauncherDep, PlainRef, PolicyDep, SessionDep, StoreDep
from accessiq.services import configure, runs
from accessiq.services import directories as dirs
from accessiq.sync.document import DirectoryDocument
from accessiq.sync.settings import GroupMappingSpec, SyncSettings

router = APIRouter(prefix="/directories", tags=["directories"])

DirectoryRef = Annotated[str, Path(max_length=200, description="Directory id or name."), PlainRef]


@router.get("", response_model=list[DirectoryOut])
def list_directories(
    session: SessionDep,
    page: PageDep,
    response: Response,
    provider: Annotated[str | None, Query(max_length=40, description="Only this provider.")] = None,
) -> list[dict[str, Any]]:
    """Every directory with its provider, settings, user count and last run."""
    found = [d for d in dirs.list_directories(session) if provider is None or d.provider == provider]
    return [configure.directory_view(session, d) for d in paginate(found, page, response)]


@router.post("", response_model=DirectoryOut, status_code=status.HTTP_201_CREATED)
def create_directory(
    document: DirectoryDocument, session: SessionDep, store: StoreDep, policy: PolicyDep
) -> dict[str, Any]:
    """Connect a directory from a document (SPEC §6). Secrets are stored encrypted and never returned.

    Secrets are values here: `env:`/`file:` references only under prefixes the operator allows.
    Endpoints other than the provider's public ones, and snapshot files outside the snapshot
    directory, are refused unless the operator allows them.
    """
    directory = configure.create_directory(
        session, store.secrets, document.model_dump(exclude_unset=True), policy=policy
    )
    return configure.directory_view(session, directory)


@router.get("/{directory}", response_model=DirectoryOut)
def get_directory(directory: DirectoryRef, session: SessionDep) -> dict[str, Any]:
    return configure.directory_view(session, dirs.get_directory(session, directory))


@router.put("/{directory}", response_model=DirectoryOut)
def replace_directory(
    directory: DirectoryRef, document: DirectoryDocument, session: SessionDep, store: StoreDep, policy: PolicyDep
) -> dict[str, Any]:
    """Replace the directory's document. Secrets left out of `connection` keep their stored value."""
    found = dirs.get_directory(session, directory)
    updated = configure.replace_document(
        session, store.secrets, found, document.model_dump(exclude_unset=True), policy=policy
    )
    return configure.directory_view(session, updated)


@router.delete("/{directory}", status_code=status.HTTP_204_NO_CONTENT)
def delete_directory(directory: DirectoryRef, session: SessionDep) -> Response:
    """Delete a directory; its users stay as local users, its groups and sync memberships go."""
    dirs.delete_directory(session, dirs.get_directory(session, directory))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{directory}/export")
def export_directory(directory: DirectoryRef, session: SessionDep) -> dict[str, Any]:
    """The directory as a document that re-applies to the same thing; inline secrets are left out."""
    return dirs.export_document(session, dirs.get_directory(session, directory))


@router.get("/{directory}/settings", response_model=SyncSettings)
def get_settings(directory: DirectoryRef, session: SessionDep) -> dict[str, Any]:
    """The effective sync settings, defaults filled in."""
    return dirs.settings_of(dirs.get_directory(session, directory)).model_dump(mode="json")


@router.patch("/{directory}/settings", response_model=SyncSettings)
def update_settings(
    directory: DirectoryRef, patch: SettingsPatch, session: SessionDep, store: StoreDep, policy: PolicyDep
) -> dict[str, Any]:
    """Change some sync settings (e.g. `{"schedule_enabled": true}`); the rest keep their value."""
    found = dirs.get_directory(session, directory)
    updated = configure.update_settings(
        session, store.secrets, found, patch.model_dump(exclude_unset=True), policy=policy
    )
    return dirs.settings_of(updated).model_dump(mode="json")


@router.get("/{directory}/group-mappings", response_model=list[GroupMappingSpec])
def get_group_mappings(directory: DirectoryRef, session: SessionDep) -> list[dict[str, Any]]:
    mappings: list[dict[str, Any]] = dirs.export_document(session, dirs.get_directory(session, directory))[
        "group_mappings"
    ]
    return mappings


@router.put("/{directory}/group-mappings", response_model=list[GroupMappingSpec])
def replace_group_mappings(
    directory: DirectoryRef,
    mappings: list[GroupMappingSpec],
    session: SessionDep,
    store: StoreDep,
    policy: PolicyDep,
) -> list[dict[str, Any]]:
    """Replace the group mappings: members of each source group get the role in the organization."""
    found = dirs.get_directory(session, directory)
    updated = configure.replace_group_mappings(session, store.secrets, found, mappings, policy=policy)
    result: list[dict[str, Any]] = dirs.export_document(session, updated)["group_mappings"]
    return result


@router.post("/{directory}/test", response_model=CheckOut)
def test_connection(directory: DirectoryRef, store: StoreDep) -> dict[str, Any]:
    """Check credentials and permissions. A failed check is `ok: false` with the problems, not an error."""
    return configure.check_connection(store, directory)


@router.get("/{directory}/source-groups", response_model=list[SourceGroupOut])
def list_source_groups(directory: DirectoryRef, store: StoreDep, page: PageDep, response: Response) -> list[Any]:
    """The directory's own groups, read from the source, to pick group mappings from."""
    return paginate(configure.source_groups(store, directory), page, response)


@router.post("/{directory}/mapping-preview", response_model=MappingPreviewOut)
def preview_mapping(
    directory: DirectoryRef, body: MappingPreviewIn, store: StoreDep, policy: PolicyDep
) -> dict[str, Any]:
    """Try an attribute mapping on sample users before saving it."""
    return configure.preview_mapping(store, directory, body.attribute_mapping, body.limit, policy=policy)


@router.post(
    "/{directory}/sync",
    response_model=RunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": RunOut, "description": "A run was already queued or running; that run."}},
)
def sync_now(
    directory: DirectoryRef,
    session: SessionDep,
    launcher: LauncherDep,
    response: Response,
    body: SyncRequest | None = None,
) -> dict[str, Any]:
    """Queue a sync (or a dry run). While one is queued or running for the directory, that one is returned."""
    body = body or SyncRequest()
    found = dirs.get_directory(session, directory)
    run, created = runs.request_sync(session, found, trigger="api", dry_run=body.dry_run, full=body.full)
    if created:
        session.commit()
        launcher.launch(run.id)
    else:
        response.status_code = status.HTTP_200_OK
    return runs.run_json(session, run)


@router.get("/{directory}/runs", response_model=list[RunOut])
def list_directory_runs(
    directory: DirectoryRef, session: SessionDep, page: PageDep, response: Response
) -> list[dict[str, Any]]:
    """The directory's runs, newest first."""
    found = dirs.get_directory(session, directory)
    listed = runs.list_runs(session, found, limit=page.offset + page.limit + 1)
    return [runs.run_json(session, r) for r in paginate(listed, page, response, complete=False)]
