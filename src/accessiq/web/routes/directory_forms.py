"""What the Add Directory wizard and a directory's tabs share: the directory id in the path, the directory's data, and
how the connection, settings and group-mapping forms are saved, or shown again with why they were refused."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path
from sqlalchemy.orm import Session

from accessiq.errors import AccessIQError, ConfigurationError, FieldProblem
from accessiq.services import Store, configure, identity
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.sync.settings import PERCENT_FLOOR
from accessiq.web import forms

if TYPE_CHECKING:
    from accessiq.store.tables import Directory


DirectoryId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# The frequency presets of the settings form and the wizard, with their words ("every 15 minutes", "hourly").
FREQUENCY_PRESETS = tuple((value, configure.frequency_words(value)) for value in forms.FREQUENCY_PRESETS)


def shown_values(form: Any, provider: str) -> dict[str, Any]:
    """A refused connection form's values to show again: everything but its secrets."""
    return forms.connection_values(form, [f for f in configure.connection_fields(provider) if not f.secret])


def load_directory(session: Session, directory_id: int) -> tuple[Directory, dict[str, Any]]:
    found = dirs.get_directory(session, directory_id)
    return found, configure.directory_view(session, found)


def _choices(session: Session) -> dict[str, Any]:
    return {
        "organizations": identity.list_organizations(session),
        "roles": [r.name for r in identity.list_roles(session)],
    }


def provider_of(store: Store, directory_id: int) -> str:
    with store.transaction() as session:
        return dirs.get_directory(session, directory_id).provider


def posted_connection(store: Store, owner: int | str, provider: str, form: Any) -> dict[str, Any]:
    """The connection as the form has it: a secret left empty takes the one the page carried back, if any.

    `owner` is the directory's id, or `configure.pending_owner` for a directory being added.
    """
    fields = configure.connection_fields(provider)
    values = forms.connection_values(form, fields)
    carried = configure.open_pending_secrets(store.secrets, owner, forms.pending_tokens(form, fields))
    for name, secret in carried.items():
        if not values.get(name):
            values[name] = secret
    return values


def save_connection(
    store: Store, directory_id: int, provider: str, form: Any, policy: InputPolicy
) -> tuple[dict[str, Any], forms.FormErrors | None]:
    """(the connection posted, why it was refused or None when it is saved)."""
    try:
        values = posted_connection(store, directory_id, provider, form)
    except AccessIQError as exc:
        return {}, forms.form_errors(exc, provider)
    return values, store_connection(store, directory_id, provider, values, policy)


def store_connection(
    store: Store, directory_id: int, provider: str, values: dict[str, Any], policy: InputPolicy
) -> forms.FormErrors | None:
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            configure.update_connection(session, store.secrets, directory, values, policy=policy)
    except AccessIQError as exc:
        return forms.form_errors(exc, provider)
    return None


def form_context(store: Store, directory_id: int, **extra: Any) -> dict[str, Any]:
    """What the settings and group-mapping forms show: the directory, its source groups, the choices."""
    with store.transaction() as session:
        _, data = load_directory(session, directory_id)
        choices = _choices(session)
    groups, groups_error = _source_groups(store, directory_id)
    return {
        "directory": data,
        "settings": data["settings"],
        "mappings": data["group_mappings"],
        "source_groups": groups,
        "groups_error": groups_error,
        "frequency_presets": FREQUENCY_PRESETS,
        "percent_floor": PERCENT_FLOOR,
        **choices,
        **extra,
    }


def _source_groups(store: Store, directory_id: int) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return configure.source_groups(store, directory_id), None
    except AccessIQError as exc:
        return [], str(exc)


def save_settings(
    store: Store, directory_id: int, policy: InputPolicy, patch: dict[str, Any], *, finish_setup: bool = False
) -> forms.FormErrors | None:
    """Save a settings patch (and with `finish_setup`, mark the wizard done); the form's errors when refused."""
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            configure.update_settings(session, store.secrets, directory, patch, policy=policy)
            if finish_setup:
                configure.finish_setup(directory)
    except AccessIQError as exc:
        return forms.form_errors(exc)
    return None


def refused_settings_context(
    store: Store, directory_id: int, patch: dict[str, Any], error: forms.FormErrors
) -> dict[str, Any]:
    """The settings form again with what was typed, not the saved values, and every problem beside its field."""
    context = form_context(store, directory_id, error=error)
    saved = context["settings"]
    shown = {**saved, **patch}
    for part in ("safety", "user_filter"):
        shown[part] = {**saved[part], **(patch.get(part) or {})}
    context["settings"] = shown
    return context


def new_organization(store: Store, directory_id: int, form: Any) -> tuple[dict[str, Any], int]:
    """Create the organization typed below the mapping rows; the rows come back as posted, unsaved.

    A row that names a group but no organization yet gets the new one chosen.
    """
    slug, name = forms.text(form, "new_org_slug"), forms.text(form, "new_org_name")
    rows = posted_mappings(form)
    try:
        with store.transaction() as session:
            identity.create_organization(session, slug, name or None)
    except AccessIQError as exc:
        return form_context(store, directory_id, mappings=rows, org_error=str(exc), org_slug=slug, org_name=name), 422
    waiting = next((row for row in rows if row["source_group"] and not row["organization"]), None)
    if waiting is not None:
        waiting["organization"] = slug
    message = f"Organization {slug} created. The mappings below are not saved yet."
    return form_context(store, directory_id, mappings=rows, flash={"kind": "success", "message": message}), 200


def posted_mappings(form: Any) -> list[dict[str, str]]:
    return [
        {"source_group": g, "organization": o, "role": r}
        for g, o, r in zip(
            forms.texts(form, "source_group"),
            forms.texts(form, "organization"),
            forms.texts(form, "role"),
            strict=False,
        )
    ]


def save_mappings(store: Store, directory_id: int, form: Any, policy: InputPolicy) -> forms.FormErrors | None:
    rows: list[tuple[int, Any]] = []
    try:
        rows = forms.group_mappings(form)
        with store.transaction() as session:
            configure.replace_group_mappings(
                session, store.secrets, dirs.get_directory(session, directory_id), [m for _, m in rows], policy=policy
            )
    except ConfigurationError as exc:
        return forms.form_errors(_on_page_rows(exc, [number for number, _ in rows]))
    except AccessIQError as exc:
        return forms.form_errors(exc)
    return None


_MAPPING_FIELD = re.compile(r"group_mappings\[(\d+)\]")


def _on_page_rows(error: ConfigurationError, rows: list[int]) -> ConfigurationError:
    """The refusal with each `group_mappings[i]` (the i-th mapping saved) as the row the page shows it on."""

    def row(found: re.Match[str]) -> str:
        index = int(found[1])
        return f"group_mappings[{rows[index] - 1}]" if index < len(rows) else found[0]

    problems = [FieldProblem(p.field and _MAPPING_FIELD.sub(row, p.field), p.message) for p in error.problems]
    return ConfigurationError(problems[0].message, field=problems[0].field, problems=problems)
