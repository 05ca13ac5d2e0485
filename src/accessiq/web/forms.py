"""Reading the UI's HTML forms into the shapes the services take."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile

from accessiq.errors import AccessIQError, ConfigurationError, FieldProblem
from accessiq.services import configure
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


# A sealed secret carried back by a page (services.configure.seal_pending_secrets): a few KiB at most.
MAX_PENDING_TOKEN = 4 * MAX_KEY_FILE


def pending_tokens(form: FormData, fields: Sequence[ConnectionField]) -> dict[str, str]:
    """The sealed secrets a refused or unconfirmed connection form carried back, by field."""
    tokens = {f.name: text(form, f"connection.{f.name}.pending") for f in fields if f.secret}
    return {name: token for name, token in tokens.items() if token and len(token) <= MAX_PENDING_TOKEN}


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


# The safety thresholds' inputs, named as their settings, with the kind of number each takes.
SAFETY_INPUTS: dict[str, type[int] | type[float]] = {
    "max_deactivations": int,
    "max_deactivation_percent": float,
    "max_group_deletions": int,
    "max_group_deletion_percent": float,
    "max_membership_removals": int,
    "max_membership_removal_percent": float,
}
# The settings form's inputs by the document field they set; a refused field's message shows beside its input.
SETTINGS_INPUTS = {
    "settings.frequency": "frequency",
    "settings.schedule_enabled": "schedule_enabled",
    "settings.default_organization": "default_organization",
    "settings.default_role": "default_role",
    "settings.deactivation": "deactivation",
    "settings.link_existing_users": "link_existing_users",
    "settings.user_filter.groups": "filter_groups",
    "settings.user_filter.org_units": "filter_org_units",
    "settings.user_filter.condition": "filter_condition",
    **{f"settings.safety.{name}": name for name in SAFETY_INPUTS},
    "settings.full_sync_interval": "full_sync_interval",
    "settings.push": "push",
}
# The frequency choices every form offers, besides a custom interval or cron expression.
FREQUENCY_PRESETS = ("15m", "1h", "24h")
CUSTOM_FREQUENCY = "custom"


@dataclass(frozen=True)
class FormErrors:
    """Why a form was refused: every problem, each by its field's label, and beside its input where it has one."""

    listed: tuple[str, ...]
    by_input: Mapping[str, str] = dataclass_field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.by_input.get(name)

    def __str__(self) -> str:
        return " ".join(self.listed)


def form_errors(exc: AccessIQError, provider: str | None = None) -> FormErrors:
    """A service's refusal in a form's words: field labels, never document keys; each problem by its input."""
    if not isinstance(exc, ConfigurationError):
        return FormErrors((str(exc),))
    listed: list[str] = []
    by_input: dict[str, str] = {}
    for problem in exc.problems:
        if provider is not None:
            problem = FieldProblem(problem.field, configure.with_labels(problem.message, provider))
        listed.append(_labelled(problem, provider))
        name = _input_of(problem.field)
        if name is not None and name not in by_input:
            by_input[name] = _beside_input(problem.message)
    return FormErrors(tuple(listed), by_input)


def labelled_result(result: dict[str, Any], provider: str) -> dict[str, Any]:
    """A connection test's answer with connection keys in its lines said as the fields' labels."""
    return {
        **result,
        "details": [configure.with_labels(line, provider) for line in result["details"]],
        "problems": [configure.with_labels(line, provider) for line in result["problems"]],
    }


def _input_of(field_name: str | None) -> str | None:
    if field_name is None:
        return None
    if field_name.startswith("connection."):
        return field_name
    return SETTINGS_INPUTS.get(field_name)


def _labelled(problem: FieldProblem, provider: str | None) -> str:
    message = problem.message
    if problem.field is None:
        return _sentence(message)
    label = configure.field_label(problem.field, provider)
    joined = f"{label} {message}" if message.startswith(_VERBS) else f"{label}: {message}"
    return _sentence(joined)


_VERBS = ("is ", "must ", "does ")


def _beside_input(message: str) -> str:
    """A problem as said next to its input: "This must be at least 0."."""
    return _sentence(f"this {message}" if message.startswith(_VERBS) else message)


def _sentence(message: str) -> str:
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _number(form: FormData, name: str, kind: type[int] | type[float]) -> int | float | str | None:
    """A number as typed; text that is no number goes on as it is, for validation to name it."""
    raw = text(form, name)
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        return raw


def frequency(form: FormData) -> str:
    """The frequency chosen: a preset, or the custom interval or cron typed beside "Custom"."""
    choice = text(form, "frequency")
    if choice == CUSTOM_FREQUENCY:
        return text(form, "frequency_custom")
    return choice or text(form, "frequency_custom") or "1h"


def settings_patch(form: FormData, *, schedule: bool = False) -> dict[str, Any]:
    """The settings form as a settings patch (SPEC §3 names)."""
    patch: dict[str, Any] = {
        "frequency": frequency(form),
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
    for name, kind in SAFETY_INPUTS.items():
        value = _number(form, name, kind)
        if value is not None:
            safety[name] = value
    patch["safety"] = safety
    if text(form, "full_sync_interval"):
        patch["full_sync_interval"] = text(form, "full_sync_interval")
    if schedule:
        patch["schedule_enabled"] = form.get("schedule_enabled") == "on"
    if form.get("push_shown"):
        patch["push"] = form.get("push") == "on"
    return patch


def group_mappings(form: FormData) -> list[tuple[int, GroupMappingSpec]]:
    """Rows of (source group, organization, role) with their row number on the page; blank rows are skipped."""
    rows = zip(texts(form, "source_group"), texts(form, "organization"), texts(form, "role"), strict=False)
    mappings = []
    problems: list[FieldProblem] = []
    for index, (group, org, role) in enumerate(rows):
        if not group and not org:
            continue
        if not group:
            problems.append(FieldProblem(f"group_mappings[{index}].source_group", "choose a source group"))
        if not org:
            problems.append(FieldProblem(f"group_mappings[{index}].organization", "choose an organization"))
        if group and org:
            mappings.append((index + 1, GroupMappingSpec(source_group=group, organization=org, role=role or "member")))
    if problems:
        first = problems[0]
        raise ConfigurationError(first.message, field=first.field, problems=problems)
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
