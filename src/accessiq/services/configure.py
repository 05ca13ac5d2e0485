"""Configuring a directory piece by piece, as the API and the web UI both do it.

Each function edits one part (connection, settings, group mappings) by turning
the stored directory back into its document, changing that part and applying
the document again, so every edit passes the same validation as
`accessiq directories apply`, under the `InputPolicy` of the face that asks.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.connectors.base import UserUpserted
from accessiq.errors import AccessIQError, ConfigurationError, ConflictError, ConnectorError
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.services.providers import ConnectionField, get_provider
from accessiq.store.crypto import SecretBox
from accessiq.store.database import Store
from accessiq.store.tables import Directory, SourceObject
from accessiq.sync.document import check_provider_fields, configuration_error, validate_document
from accessiq.sync.mapping import CompiledMapping, MappingError, effective_mapping, is_template, referenced_fields
from accessiq.sync.settings import GroupMappingSpec, SyncSettings


def secret_fields(provider: str) -> tuple[str, ...]:
    """The connection fields of `provider` that are secrets (write-only)."""
    return connector_class(provider).settings_model.secret_fields


def connection_fields(provider: str) -> tuple[ConnectionField, ...]:
    """The provider's connection form, as its connector describes it: label, help, kind, default, choices."""
    return get_provider(provider).fields


def default_mapping(provider: str) -> dict[str, str]:
    """The provider's default attribute mapping: AccessIQ attribute <- source field path or template."""
    return dict(connector_class(provider).default_mapping)


def mapping_examples(provider: str) -> dict[str, list[str]]:
    """What the attribute-mapping page shows as examples: field paths and templates of this provider.

    The templates are built from the provider's own defaults, so each one works as written.
    """
    cls = connector_class(provider)
    defaults = cls.default_mapping
    names = [defaults[t] for t in ("given_name", "family_name") if t in defaults and not is_template(defaults[t])]
    templates = [" ".join("{{ " + name + " }}" for name in names)] if names else []
    email = defaults.get("email")
    if email:
        templates.append(email if is_template(email) else "{{ " + email + " | lower }}")
    return {"fields": list(cls.example_fields), "templates": templates}


def checks_user_fields(provider: str) -> bool:
    """True when the provider has a fixed user schema, so a mapping naming another field is refused."""
    return connector_class(provider).user_fields is not None


def stored_secrets(box: SecretBox, directory: Directory) -> frozenset[str]:
    """Names of the directory's secret fields that hold a value, inline or as a reference; never the values."""
    return frozenset(box.open(directory.secrets)) | frozenset(directory.secret_refs or {})


def _document(session: Session, directory: Directory) -> dict[str, Any]:
    """The directory's document without its secrets: applying it keeps the stored ones."""
    document = dirs.export_document(session, directory)
    hidden = set(secret_fields(directory.provider))
    document["connection"] = {k: v for k, v in document["connection"].items() if k not in hidden}
    return document


def _apply(session: Session, box: SecretBox, document: dict[str, Any], policy: InputPolicy) -> Directory:
    directory, _ = dirs.apply_document(session, box, validate_document(document), policy=policy)
    return directory


def create_directory(session: Session, box: SecretBox, document: dict[str, Any], *, policy: InputPolicy) -> Directory:
    """A new directory from a document; a directory of that name already existing is a conflict."""
    parsed = validate_document(document)
    if _exists(session, parsed.name):
        raise ConflictError(f"a directory named {parsed.name!r} already exists", hint="choose another name")
    directory, _ = dirs.apply_document(session, box, parsed, policy=policy)
    return directory


def _exists(session: Session, name: str) -> bool:
    try:
        dirs.get_directory(session, name)
    except AccessIQError:
        return False
    return True


def replace_document(
    session: Session, box: SecretBox, directory: Directory, document: dict[str, Any], *, policy: InputPolicy
) -> Directory:
    """Replace a directory's whole document; secrets left out of `connection` keep their stored value."""
    parsed = validate_document(document)
    if parsed.name.casefold() != directory.name.casefold():
        raise ConfigurationError(
            f"the document names {parsed.name!r} but this is directory {directory.name!r}; "
            "directories cannot be renamed",
            field="name",
        )
    if parsed.provider != directory.provider:
        raise ConfigurationError(
            f"directory {directory.name!r} uses provider {directory.provider}; a directory cannot change provider",
            field="provider",
        )
    updated, _ = dirs.apply_document(session, box, parsed, policy=policy)
    return updated


def update_connection(
    session: Session, box: SecretBox, directory: Directory, values: dict[str, Any], *, policy: InputPolicy
) -> Directory:
    """Change connection fields; a secret given empty or not at all keeps its stored value."""
    document = _document(session, directory)
    hidden = set(secret_fields(directory.provider))
    for key, value in values.items():
        if key in hidden and value in (None, ""):
            continue
        if value in (None, ""):
            document["connection"].pop(key, None)
        else:
            document["connection"][key] = value
    return _apply(session, box, document, policy)


def update_settings(
    session: Session, box: SecretBox, directory: Directory, patch: dict[str, Any], *, policy: InputPolicy
) -> Directory:
    """Change the sync settings named in `patch`; the others keep their value."""
    document = _document(session, directory)
    document["settings"] = {**document["settings"], **patch}
    try:
        SyncSettings.model_validate(document["settings"])
    except ValidationError as exc:
        raise configuration_error(exc, SyncSettings, prefix="settings") from None
    return _apply(session, box, document, policy)


def set_schedule(
    session: Session,
    box: SecretBox,
    directory: Directory,
    *,
    enabled: bool | None = None,
    frequency: str | None = None,
    policy: InputPolicy,
) -> Directory:
    """Turn a directory's schedule on or off and/or change its frequency, validated like any setting."""
    patch: dict[str, Any] = {}
    if enabled is not None:
        patch["schedule_enabled"] = enabled
    if frequency is not None:
        patch["frequency"] = frequency
    return update_settings(session, box, directory, patch, policy=policy)


def replace_group_mappings(
    session: Session, box: SecretBox, directory: Directory, mappings: list[GroupMappingSpec], *, policy: InputPolicy
) -> Directory:
    document = _document(session, directory)
    document["group_mappings"] = [m.model_dump() for m in mappings]
    return _apply(session, box, document, policy)


def check_connection(store: Store, ref: str | int) -> dict[str, Any]:
    """Test the directory's credentials: {ok, details, problems, kind}. Never raises for a bad connection."""
    with store.transaction() as session:
        directory = dirs.get_directory(session, ref)
        references = dirs.group_references(session, directory)
    try:
        result = dirs.test_directory(store.secrets, directory, references)
    except (ConnectorError, ConfigurationError) as exc:
        return {"ok": False, "details": [], "problems": [str(exc)], "kind": exc.kind}
    return {"ok": result.ok, "details": list(result.details), "problems": list(result.problems), "kind": None}


def source_groups(store: Store, ref: str | int) -> list[dict[str, Any]]:
    """The directory's groups as the source has them, for the group-mapping picker."""
    with store.transaction() as session:
        directory = dirs.get_directory(session, ref)
    return [
        {"id": g.external_id, "name": g.name, "description": g.description, "email": g.email, "dn": g.dn}
        for g in dirs.source_groups(store.secrets, directory)
    ]


def preview_mapping(
    store: Store, ref: str | int, overrides: dict[str, str | None], limit: int = 5, *, policy: InputPolicy
) -> dict[str, Any]:
    """Apply the provider defaults overlaid with `overrides` to sample users.

    Samples come from the directory's stored mirror of the source; before a first
    applied sync, or when the mapping reads fields the saved one does not (a
    provider may send only the fields asked for), from the first users the
    connector reads, when `policy` lets this face read the directory's files. A
    mapping that fails for one user is that user's error, as in a sync.
    """
    with store.transaction() as session:
        directory = dirs.get_directory(session, ref)
        records = _mirror_samples(session, directory.id, limit)
        saved = dirs.settings_of(directory).attribute_mapping
    cls = connector_class(directory.provider)
    mapping = CompiledMapping.build(cls.default_mapping, overrides)
    check_provider_fields(directory.provider, overrides)
    note = None
    unread = referenced_fields(list(mapping.sources)) - referenced_fields(
        list(effective_mapping(cls.default_mapping, saved).values())
    )
    if not records or unread:
        try:
            policy.check_readable(directory.provider, directory.connection or {})
            records = _live_samples(store.secrets, directory, overrides, limit) or records
        except AccessIQError as exc:
            note = (
                f"no sample users: {exc}"
                if not records
                else f"users as of the last sync, which did not read {', '.join(sorted(unread))}: {exc}"
            )
    if not records and note is None:
        note = "the directory has no users to preview"
    labels = _sample_labels(cls.default_mapping)
    samples = []
    for external_id, record in records:
        label = _sample_label(labels, external_id, record)
        try:
            samples.append({"external_id": external_id, "label": label, "values": mapping.apply(record)})
        except MappingError as exc:
            samples.append({"external_id": external_id, "label": label, "values": {}, "error": str(exc)})
    return {"effective": effective_mapping(cls.default_mapping, overrides), "samples": samples, "note": note}


def _sample_labels(defaults: dict[str, str]) -> CompiledMapping:
    """What names a sample user in a preview: the provider's own email and display name sources."""
    return CompiledMapping.build({t: s for t, s in defaults.items() if t in ("email", "display_name")}, {})


def _sample_label(labels: CompiledMapping, external_id: str, record: dict[str, Any]) -> str:
    try:
        values = labels.apply(record)
    except MappingError:
        return external_id
    return str(values.get("email") or values.get("display_name") or external_id)


def directory_view(session: Session, directory: Directory) -> dict[str, Any]:
    """`directory_json` with the next sync time lifted out: what the API and the dashboard show."""
    data = dirs.directory_json(session, directory)
    data["next_sync_at"] = data["schedule"]["next_run_at"]
    return data


def _mirror_samples(session: Session, directory_id: int, limit: int) -> list[tuple[str, dict[str, Any]]]:
    # A bounded read of the mirror: load_mirror would load every user of a large directory.
    rows = session.execute(
        select(SourceObject.external_id, SourceObject.data)
        .where(SourceObject.directory_id == directory_id, SourceObject.kind == "user")
        .order_by(SourceObject.external_id)
        .limit(limit)
    )
    return [(ext, dict(data.get("data") or {})) for ext, data in rows]


def _live_samples(
    box: SecretBox, directory: Directory, overrides: dict[str, str | None], limit: int
) -> list[tuple[str, dict[str, Any]]]:
    # Read the fields the mapping being edited uses, not only those of the saved one.
    settings = dirs.settings_of(directory).model_copy(update={"attribute_mapping": overrides})
    connector = dirs.build_connector(box, directory, settings)
    samples: list[tuple[str, dict[str, Any]]] = []
    try:
        for event in connector.read(None):
            if isinstance(event, UserUpserted):
                samples.append((event.user.external_id, dict(event.user.data)))
                if len(samples) >= limit:
                    break
    finally:
        connector.close()
    return samples
