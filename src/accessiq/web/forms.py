"""Reading the UI's HTML forms into the shapes the services take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile

from accessiq.errors import ConfigurationError
from accessiq.services.providers import ConnectionField
from accessiq.sync.settings import GroupMappingSpec


async def _form(request: Request) -> FormData:
    return await request.form()


# The parsed form of a POST, for sync routes (they run in the threadpool; parsing needs the event loop).
FormDep = Annotated[FormData, Depends(_form)]


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def texts(form: FormData, name: str) -> list[str]:
    return [v.strip() if isinstance(v, str) else "" for v in form.getlist(name)]


# A key or certificate file chosen in the form: far larger than any PEM or JSON key.
MAX_KEY_FILE = 64 * 1024


def connection_values(form: FormData, fields: Sequence[ConnectionField]) -> dict[str, Any]:
    """Connection fields as typed in, by kind: a checkbox is a boolean, a list one entry a line.

    A multi-line secret left empty takes the file chosen beside it (`connection.NAME.file`),
    which the page's script normally copies into the text box already. Numbers stay text for pydantic.
    """
    values: dict[str, Any] = {}
    for field in fields:
        key = f"connection.{field.name}"
        if field.kind == "boolean":
            values[field.name] = form.get(key) == "on"
        elif field.kind == "list":
            values[field.name] = [line.strip() for line in text(form, key).splitlines() if line.strip()] or None
        elif field.kind == "multiline_secret":
            # Browsers post a text box's line breaks as CRLF; keys and PEMs are stored as written (LF).
            pasted = text(form, key).replace("\r\n", "\n")
            values[field.name] = pasted or _key_file(form, f"{key}.file", field.name)
        else:
            values[field.name] = text(form, key)
    return values


def _key_file(form: FormData, name: str, field: str) -> str:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        return ""
    content = upload.file.read(MAX_KEY_FILE + 1)
    if len(content) > MAX_KEY_FILE:
        raise ConfigurationError(f"the file is larger than {MAX_KEY_FILE // 1024} KiB", field=f"connection.{field}")
    try:
        return content.decode("utf-8").replace("\r\n", "\n").strip()
    except UnicodeDecodeError:
        raise ConfigurationError("the file is not text (PEM or JSON)", field=f"connection.{field}") from None


def _number(form: FormData, name: str, field: str, kind: type[int] | type[float]) -> int | float | None:
    raw = text(form, name)
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{raw!r} is not a number", field=field) from None


def settings_patch(form: FormData, *, schedule: bool = False) -> dict[str, Any]:
    """The settings form as a settings patch (SPEC §3 names)."""
    patch: dict[str, Any] = {
        "frequency": text(form, "frequency") or "1h",
        "default_organization": text(form, "default_organization") or None,
        "default_role": text(form, "default_role") or "member",
        "deactivation": text(form, "deactivation") or "deactivate",
        "link_existing_users": text(form, "link_existing_users") or "by_email",
        "user_filter": {
            "groups": [g for g in texts(form, "filter_groups") if g],
            "org_units": [line.strip() for line in text(form, "filter_org_units").splitlines() if line.strip()],
            "condition": text(form, "filter_condition") or None,
        },
    }
    safety: dict[str, Any] = {}
    count = _number(form, "max_deactivations", "settings.safety.max_deactivations", int)
    percent = _number(form, "max_deactivation_percent", "settings.safety.max_deactivation_percent", float)
    if count is not None:
        safety["max_deactivations"] = count
    if percent is not None:
        safety["max_deactivation_percent"] = percent
    patch["safety"] = safety
    if text(form, "full_sync_interval"):
        patch["full_sync_interval"] = text(form, "full_sync_interval")
    if schedule:
        patch["schedule_enabled"] = form.get("schedule_enabled") == "on"
    return patch


def group_mappings(form: FormData) -> list[tuple[int, GroupMappingSpec]]:
    """Rows of (source group, organization, role) with their row number on the page; blank rows are skipped."""
    rows = zip(texts(form, "source_group"), texts(form, "organization"), texts(form, "role"), strict=False)
    mappings = []
    for number, (group, org, role) in enumerate(rows, start=1):
        if not group and not org:
            continue
        if not group:
            raise ConfigurationError(f"Row {number}: choose a directory group")
        if not org:
            raise ConfigurationError(f"Row {number}: choose an organization")
        mappings.append((number, GroupMappingSpec(source_group=group, organization=org, role=role or "member")))
    return mappings


def attribute_overrides(form: FormData, defaults: dict[str, str]) -> dict[str, str | None]:
    """The mapping rows as overrides of the provider defaults.

    A default row left out or emptied removes that default (null); a row equal
    to its default is not stored.
    """
    rows: dict[str, str] = {}
    for target, source in zip(texts(form, "target"), texts(form, "source"), strict=False):
        if not target:
            continue
        if target in rows:
            raise ConfigurationError("is mapped twice", field=f"settings.attribute_mapping.{target}")
        rows[target] = source
    overrides: dict[str, str | None] = {}
    for target, source in rows.items():
        if not source:
            if target in defaults:
                overrides[target] = None
            continue
        if defaults.get(target) != source:
            overrides[target] = source
    for target in defaults:
        if target not in rows:
            overrides[target] = None
    return overrides
