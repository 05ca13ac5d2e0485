"""Directories: apply a document, look one up, export it, test it, delete it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.connectors.base import CheckResult, SourceGroup
from accessiq.errors import ConfigurationError, NotFoundError
from accessiq.jobs import scheduler
from accessiq.services import parse_id
from accessiq.services.input_policy import InputPolicy, StoredConnection
from accessiq.store.crypto import SecretBox
from accessiq.store.tables import (
    Cursor,
    Directory,
    GroupMapping,
    Organization,
    OrganizationMembership,
    Role,
    SyncRun,
    User,
)
from accessiq.sync.context import (
    build_connector,
    mappings_of,
    organization_named,
    role_named,
    settings_of,
)
from accessiq.sync.document import DirectoryDocument
from accessiq.sync.scope import resolve_group_ref
from accessiq.sync.settings import mapping_key
from accessiq.sync.source import MirrorGroup


def get_directory(session: Session, ref: str | int) -> Directory:
    """A directory by id or by name (case-insensitive)."""
    text = str(ref)
    row_id = parse_id(text)
    directory = session.get(Directory, row_id) if row_id is not None else None
    if directory is None:
        directory = session.scalar(select(Directory).where(func.lower(Directory.name) == text.lower()))
    if directory is None:
        raise NotFoundError(f"no directory {text!r}", hint="see `accessiq directories list`")
    return directory


def list_directories(session: Session) -> list[Directory]:
    return list(session.scalars(select(Directory).order_by(Directory.id)))


def apply_document(
    session: Session, box: SecretBox, document: DirectoryDocument, *, policy: InputPolicy
) -> tuple[Directory, bool]:
    """Create or update the directory the document names; returns (directory, created).

    `policy` says what the face that brings the document lets it reach (secret
    references, endpoints, files): `InputPolicy.operator()` for the CLI.
    """
    connector_class(document.provider)  # an unknown provider is the first thing to report
    directory = session.scalar(select(Directory).where(func.lower(Directory.name) == document.name.lower()))
    created = directory is None
    if directory is not None and directory.provider != document.provider:
        raise ConfigurationError(
            f"directory {document.name!r} uses provider {directory.provider}; a directory cannot change provider",
            field="provider",
            hint="delete it first or choose another name",
        )

    stored = (
        StoredConnection(directory.connection or {}, box.open(directory.secrets), directory.secret_refs or {})
        if directory is not None
        else StoredConnection()
    )
    admitted = policy.admit(document.provider, document.connection, stored)

    settings = document.settings
    if settings.default_organization:
        organization_named(session, settings.default_organization, "settings.default_organization")
    role_named(session, settings.default_role, "settings.default_role")
    resolved = [
        (
            spec,
            organization_named(session, spec.organization, f"group_mappings[{i}].organization"),
            role_named(session, spec.role, f"group_mappings[{i}].role"),
        )
        for i, spec in enumerate(document.group_mappings)
    ]

    if directory is None:
        directory = Directory(name=document.name, provider=document.provider, group_pins={})
        session.add(directory)
    directory.name = document.name
    directory.connection = dict(admitted.connection)
    directory.secrets = box.seal(dict(admitted.secrets))
    directory.secret_refs = dict(admitted.secret_refs)
    directory.settings = settings.model_dump(mode="json", exclude_unset=True)
    session.flush()
    _apply_mappings(session, directory, resolved)
    refs = {spec.source_group for spec in document.group_mappings} | set(settings.user_filter.groups)
    directory.group_pins = {ref: ext for ref, ext in (directory.group_pins or {}).items() if ref in refs}
    return directory, created


def _apply_mappings(session: Session, directory: Directory, resolved: list[Any]) -> None:
    """Make the live mappings exactly the document's: one row per (group, organization).

    A row keeps its id (and so the memberships it granted) while its group and
    organization stay the same; the role and position follow the document. Rows
    the document no longer names are marked removed, so the next sync revokes
    what they granted. Applying the same document again changes nothing.
    """
    existing: dict[tuple[str, int | str], list[GroupMapping]] = {}
    for mapping in mappings_of(session, directory):
        existing.setdefault(mapping_key(mapping.source_group, mapping.organization_id), []).append(mapping)
    for position, (spec, org, role) in enumerate(resolved):
        rows = existing.get(mapping_key(spec.source_group, org.id))
        if rows:
            mapping = rows.pop(0)
        else:
            mapping = GroupMapping(directory_id=directory.id, source_group=spec.source_group, organization_id=org.id)
            session.add(mapping)
        mapping.source_group = spec.source_group
        mapping.role_id = role.id
        mapping.position = position
        mapping.removed = False
    for rows in existing.values():
        for mapping in rows:
            mapping.removed = True


def export_document(session: Session, directory: Directory) -> dict[str, Any]:
    """The directory as a document that re-applies to the same thing. Inline secrets are left out."""
    connection = dict(directory.connection or {})
    connection.update(directory.secret_refs or {})
    orgs = dict(session.execute(select(Organization.id, Organization.slug)).all())
    roles = dict(session.execute(select(Role.id, Role.name)).all())
    return {
        "name": directory.name,
        "provider": directory.provider,
        "connection": connection,
        "settings": directory.settings or {},
        "group_mappings": [
            {
                "source_group": m.source_group,
                "organization": orgs[m.organization_id],
                "role": roles[m.role_id],
            }
            for m in mappings_of(session, directory)
        ],
    }


def delete_directory(session: Session, directory: Directory) -> None:
    """Remove the directory; its users stay as local users (unlinked), its groups go."""
    active = session.scalar(
        select(SyncRun.id).where(SyncRun.directory_id == directory.id, SyncRun.status.in_(("queued", "running")))
    )
    if active is not None:
        raise ConfigurationError(
            f"run {active} of directory {directory.name!r} is queued or running",
            hint=f"cancel it first (accessiq runs cancel {active}) or wait for it",
        )
    origins = [f"directory-default:{directory.id}"] + [
        f"group-mapping:{m.id}" for m in mappings_of(session, directory, include_removed=True)
    ]
    session.execute(delete(OrganizationMembership).where(OrganizationMembership.origin.in_(origins)))
    session.execute(update(User).where(User.directory_id == directory.id).values(directory_id=None, external_id=None))
    session.delete(directory)


def group_references(session: Session, directory: Directory) -> list[tuple[str, str]]:
    """(what refers, the reference) for every group the settings and mappings name."""
    orgs = dict(session.execute(select(Organization.id, Organization.slug)).all())
    roles = dict(session.execute(select(Role.id, Role.name)).all())
    references = [(f"user_filter.groups {ref!r}", ref) for ref in settings_of(directory).user_filter.groups]
    references += [
        (f"group mapping {m.source_group!r} -> {orgs[m.organization_id]} ({roles[m.role_id]})", m.source_group)
        for m in mappings_of(session, directory)
    ]
    return references


def test_directory(
    box: SecretBox, directory: Directory, references: list[tuple[str, str]] | None = None
) -> CheckResult:
    """Check credentials and permissions, then that every group reference finds exactly one group."""
    connector = build_connector(box, directory)
    try:
        result = connector.check()
        if not result.ok or not references:
            return result
        groups = {g.external_id: MirrorGroup(g) for g in connector.list_groups()}
    finally:
        connector.close()
    problems = list(result.problems)
    for label, ref in references:
        _, problem = resolve_group_ref(ref, groups, directory.group_pins or {})
        if problem:
            problems.append(f"{label}: {problem}")
    return CheckResult(ok=not problems, details=result.details, problems=problems)


def source_groups(box: SecretBox, directory: Directory) -> list[SourceGroup]:
    connector = build_connector(box, directory)
    try:
        return sorted(connector.list_groups(), key=lambda g: (g.name.casefold(), g.external_id))
    finally:
        connector.close()


def directory_json(session: Session, directory: Directory) -> dict[str, Any]:
    """The directory as the API and `--json` show it. Secrets appear only as their field names.

    `last_run` is the last finished attempt of any kind (a dry run, a failed run);
    `last_applied_run` the last run that changed AccessIQ: what "last sync" means.
    """
    cursor = session.get(Cursor, directory.id)
    users = session.scalar(select(func.count(User.id)).where(User.directory_id == directory.id))
    document = export_document(session, directory)
    applied = last_finished_run(session, directory, applied=True)
    connector = connector_class(directory.provider)
    return {
        "id": directory.id,
        "name": directory.name,
        "provider": directory.provider,
        "connection": directory.connection or {},
        "has_secrets": directory.secrets is not None,
        "settings": settings_of(directory).model_dump(mode="json"),
        "group_mappings": document["group_mappings"],
        "users": users,
        "last_run": _run_summary(last_finished_run(session, directory)),
        "last_applied_run": _run_summary(applied),
        "setup_step": pending_setup_step(session, directory),
        "last_full_sync_at": cursor.last_full_sync_at if cursor else None,
        "incremental": connector.incremental,
        # Whether `full_sync_interval` means anything: a change feed that a full read reconciles,
        # not a snapshot whose unchanged bytes are the whole source as last read.
        "reconciles": connector.incremental and not connector.cursor_is_whole_read,
        # None when the provider has no organizational units: the user filter leaves them out.
        "org_unit_example": connector.org_unit_example,
        "schedule": schedule_of(session, directory),
    }


def last_finished_run(session: Session, directory: Directory, *, applied: bool = False) -> SyncRun | None:
    """The directory's newest finished run; with `applied`, the newest one that changed AccessIQ
    (not a dry run, not failed, blocked or canceled)."""
    query = select(SyncRun).where(SyncRun.directory_id == directory.id)
    if applied:
        query = query.where(SyncRun.status.in_(scheduler.SUCCESS), SyncRun.dry_run.is_(False))
    else:
        query = query.where(SyncRun.status.not_in(("queued", "running")))
    return session.scalar(query.order_by(SyncRun.id.desc()).limit(1))


def pending_setup_step(session: Session, directory: Directory) -> str | None:
    """The wizard step an abandoned setup stopped at; None once finished or once a sync applied."""
    if directory.setup_step is None or last_finished_run(session, directory, applied=True) is not None:
        return None
    return directory.setup_step


def _run_summary(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "finished_at": run.finished_at,
        "dry_run": run.dry_run,
        "resolution": run.resolution,
    }


def schedule_of(session: Session, directory: Directory) -> dict[str, Any]:
    """The directory's schedule: next run (the scheduler's own computation), failures, staleness."""
    return scheduler.schedule_info(session, directory)
