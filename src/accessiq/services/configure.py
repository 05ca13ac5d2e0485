"""Configuring a directory piece by piece, as the API and the web UI both do it.

Each function edits one part (connection, settings, group mappings) by turning
the stored directory back into its document, changing that part and applying
the document again, so every edit passes the same validation as
`accessiq directories apply`, under the `InputPolicy` of the face that asks.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.connectors.base import UserUpserted
from accessiq.errors import AccessIQError, ConfigurationError, ConflictError, ConnectorError
from accessiq.services import directories as dirs
from accessiq.services import tenants
from accessiq.services.input_policy import InputPolicy, StoredConnection
from accessiq.services.providers import ConnectionField, get_provider
from accessiq.store.crypto import SecretBox
from accessiq.store.database import Store
from accessiq.store.tables import Directory, SourceObject
from accessiq.sync.document import check_provider_fields, configuration_error, validate_connection, validate_document
from accessiq.sync.frequency import describe_frequency, frequency_problem
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


def frequency_words(frequency: str) -> str:
    """A sync frequency in words: "every 15 minutes", "hourly", "daily at 02:00 UTC", or "cron: …"."""
    return describe_frequency(frequency)


def frequency_check(frequency: str) -> str | None:
    """Why `frequency` is not a valid sync frequency, in plain words; None when it is."""
    return frequency_problem(frequency)


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
    inline = {name for name, value in box.open(directory.secrets).items() if value not in (None, "")}
    return frozenset(inline) | frozenset(name for name, ref in (directory.secret_refs or {}).items() if ref)


_GROUP_MAPPING = re.compile(r"group_mappings\[(\d+)\]\.?(.*)")


def field_label(field: str, provider: str | None = None) -> str:
    """What a form calls a document field (`settings.frequency` -> "Sync frequency"), for messages a person reads.

    Labels come from the models' own titles and the provider's connection form; a field
    without one is named by its last part in words.
    """
    head, _, rest = field.partition(".")
    if head == "connection" and provider is not None:
        for candidate in connection_fields(provider):
            if candidate.name == rest:
                return candidate.label
    if head == "settings":
        if rest.startswith("attribute_mapping."):
            return f"Attribute mapping of {rest.removeprefix('attribute_mapping.')}"
        return _title(SyncSettings, rest.split("."))
    mapping = _GROUP_MAPPING.fullmatch(field)
    if mapping:
        number, part = int(mapping.group(1)) + 1, mapping.group(2)
        # Told by the row the page shows the mapping on (forms number them so).
        return f"{_title(GroupMappingSpec, [part])} in row {number}" if part else f"Row {number}"
    return {"name": "Name", "provider": "Provider"}.get(field, _words(field.rsplit(".", 1)[-1]))


def with_labels(text: str, provider: str) -> str:
    """`text` with the provider's connection keys (`connection.client_secret`, `client_secret`) as their labels.

    Connectors name fields by key for documents; a form's reader knows them by label. A bare
    key is replaced only when it has an underscore, so words such as "path" stay words.
    """
    for candidate in connection_fields(provider):
        text = text.replace(f"connection.{candidate.name}", candidate.label)
        if "_" in candidate.name:
            text = re.sub(rf"\b{re.escape(candidate.name)}\b", candidate.label, text)
    return text


def _title(model: type[BaseModel], path: list[str]) -> str:
    current: Any = model
    title = None
    for part in path:
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return _words(path[-1])
        title, current = info.title, info.annotation
    return title or _words(path[-1])


def _words(name: str) -> str:
    return name.replace("_", " ").capitalize()


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


# The Add Directory wizard's steps on a saved directory, in order.
SETUP_STEPS = ("credentials", "test", "settings", "mappings", "preview", "schedule")


def reach_setup_step(directory: Directory, step: str, *, start: bool = False) -> None:
    """Remember the wizard step an unfinished setup reached (`start`: the wizard just created it),
    so the list and the dashboard can offer to resume there."""
    if step in SETUP_STEPS and (start or directory.setup_step is not None):
        directory.setup_step = step


def finish_setup(directory: Directory) -> None:
    directory.setup_step = None


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
    return _apply(session, box, _edited_connection(session, directory, values), policy)


def _edited_connection(session: Session, directory: Directory, values: dict[str, Any]) -> dict[str, Any]:
    """The directory's document with `values` as its connection; secrets given empty keep their stored value."""
    document = _document(session, directory)
    hidden = set(secret_fields(directory.provider))
    for key, value in values.items():
        if key in hidden and value in (None, ""):
            continue
        if value in (None, ""):
            document["connection"].pop(key, None)
        else:
            document["connection"][key] = value
    return document


def check_connection_values(
    store: Store, ref: str | int, values: dict[str, Any], *, policy: InputPolicy
) -> dict[str, Any]:
    """Test the connection as an edit form shows it, saving nothing: `check_connection`'s answer and `unsaved`.

    Secrets given empty are tested with their stored value. Values that cannot be
    accepted raise the ConfigurationError that saving them would raise.
    """
    with store.transaction() as session:
        directory = dirs.get_directory(session, ref)
        document = validate_document(_edited_connection(session, directory, values))
        stored = StoredConnection(
            dict(directory.connection or {}), store.secrets.open(directory.secrets), dict(directory.secret_refs or {})
        )
        admitted = policy.admit(directory.provider, document.connection, stored)
        # Never added to the session: a directory as it would be, for the connector alone.
        candidate = Directory(
            id=directory.id,
            name=directory.name,
            provider=directory.provider,
            connection=dict(admitted.connection),
            secrets=store.secrets.seal(dict(admitted.secrets)),
            secret_refs=dict(admitted.secret_refs),
            settings=dict(directory.settings or {}),
            group_pins=dict(directory.group_pins or {}),
        )
        references = dirs.group_references(session, directory)
        unsaved = _effective(directory.provider, admitted) != _effective(directory.provider, stored)
    return {**_test(store, candidate, references), "unsaved": unsaved}


def _effective(provider: str, connection: StoredConnection) -> dict[str, Any]:
    return validate_connection(provider, {**connection.connection, **connection.secrets}).model_dump()


def pending_owner(name: str, provider: str) -> str:
    """Whose pending secrets a new directory's form carries, before it has an id."""
    return f"new:{provider}:{name.casefold()}"


def seal_pending_secrets(box: SecretBox, owner: int | str, values: dict[str, Any], provider: str) -> dict[str, str]:
    """Secrets typed into a form that was not saved, sealed so the page can carry them back without showing them.

    `owner` is the directory's id, or `pending_owner` for one being added; a sealed secret
    opens only for the same owner and field (`open_pending_secrets`).
    """
    sealed: dict[str, str] = {}
    for name in secret_fields(provider):
        value = values.get(name)
        if isinstance(value, str) and value:
            token = box.seal({"directory": owner, "field": name, "value": value})
            if token is not None:
                sealed[name] = token.decode("ascii")
    return sealed


def open_pending_secrets(box: SecretBox, owner: int | str, tokens: dict[str, str]) -> dict[str, str]:
    """The secrets `seal_pending_secrets` sealed for this owner; a token that does not open is ignored."""
    opened: dict[str, str] = {}
    for name, token in tokens.items():
        try:
            content = box.open(token.encode("ascii"))
        except (ConfigurationError, UnicodeEncodeError, ValueError):
            continue
        if content.get("directory") == owner and content.get("field") == name:
            opened[name] = str(content.get("value") or "")
    return opened


def update_settings(
    session: Session, box: SecretBox, directory: Directory, patch: dict[str, Any], *, policy: InputPolicy
) -> Directory:
    """Change the sync settings named in `patch`; the others keep their value, each safety
    threshold included (`{"safety": {"max_group_deletions": 5}}` leaves the other thresholds)."""
    document = _document(session, directory)
    settings = document["settings"]
    if isinstance(patch.get("safety"), dict) and isinstance(settings.get("safety"), dict):
        patch = {**patch, "safety": {**settings["safety"], **patch["safety"]}}
    document["settings"] = {**settings, **patch}
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
    return _test(store, directory, references)


def _test(store: Store, directory: Directory, references: list[tuple[str, str]]) -> dict[str, Any]:
    try:
        result = dirs.test_directory(store.secrets, directory, references)
    except (ConnectorError, ConfigurationError) as exc:
        return {"ok": False, "details": [], "problems": [str(exc)], "kind": exc.kind, "same_source": []}
    checked = {"ok": result.ok, "details": list(result.details), "problems": list(result.problems), "kind": None}
    return {**checked, "same_source": _same_source(store, directory) if result.ok else []}


SAME_SOURCE_SAMPLE = 20


def _same_source(store: Store, directory: Directory) -> list[dict[str, Any]]:
    """Other directories that already sync this one's tenant, by its connection and a sample of its users."""
    try:
        sample = [
            external_id
            for external_id, _ in _live_samples(
                store.secrets, directory, dict(dirs.settings_of(directory).attribute_mapping), SAME_SOURCE_SAMPLE
            )
        ]
    except AccessIQError:
        sample = []  # the tenant fields still tell
    with store.read() as session:
        # The directory as given: the Connection tab tests values not saved yet.
        return tenants.same_source(session, directory, sample)


def source_groups(store: Store, ref: str | int) -> list[dict[str, Any]]:
    """The directory's groups as the source has them, for the group-mapping picker."""
    with store.transaction() as session:
        directory = dirs.get_directory(session, ref)
    return [
        {
            "id": g.external_id,
            "name": g.name,
            "description": g.description,
            "email": g.email,
            "dn": g.dn,
            "parent_dn": _parent_dn(g.dn),
        }
        for g in dirs.source_groups(store.secrets, directory)
    ]


def _parent_dn(dn: str | None) -> str | None:
    """The DN above an entry's (`ou=Groups,dc=example,dc=com` for `cn=Doe\\, Jane,ou=Groups,...`)."""
    if not dn:
        return None
    parts = re.split(r"(?<!\\),", dn, maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else None


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
