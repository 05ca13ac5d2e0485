"""The directory document: config as code for one directory (SPEC §6), parsed and validated."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accessiq.connectors import connector_class
from accessiq.connectors.base import ConnectionSettings
from accessiq.errors import ConfigurationError, FieldProblem
from accessiq.sync.mapping import check_fields
from accessiq.sync.settings import GroupMappingSpec, SyncSettings, mapping_key


class DirectoryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    provider: str
    connection: dict[str, Any] = Field(default_factory=dict)
    settings: SyncSettings = Field(default_factory=SyncSettings)
    group_mappings: list[GroupMappingSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _push_beside_provider(cls, raw: Any) -> Any:
        # `push: true` may sit beside `provider` (as SPEC writes it) or among the settings.
        if isinstance(raw, dict) and "push" in raw:
            raw = dict(raw)
            push = raw.pop("push")
            settings = raw.get("settings")
            if settings is None:
                settings = {}
            if isinstance(settings, dict):
                if "push" in settings and settings["push"] != push:
                    raise ConfigurationError(
                        "push is given twice, with different values", field="push", hint="keep settings.push"
                    )
                raw["settings"] = {**settings, "push": push}
        return raw

    @model_validator(mode="after")
    def _one_mapping_per_group_and_organization(self) -> DirectoryDocument:
        # A user has one role in an organization: two rows for one pair would be two answers.
        seen: dict[tuple[str, int | str], GroupMappingSpec] = {}
        for index, spec in enumerate(self.group_mappings):
            first = seen.setdefault(mapping_key(spec.source_group, spec.organization), spec)
            if first is not spec:
                roles = f", as {first.role} and as {spec.role}" if first.role != spec.role else ""
                raise ConfigurationError(
                    f"group {spec.source_group} is mapped to organization {spec.organization} twice{roles}",
                    field=f"group_mappings[{index}]",
                    hint="keep one of the two rows, with the role its members should have there",
                )
        return self

    @model_validator(mode="after")
    def _mapping_reads_fields_the_provider_has(self) -> DirectoryDocument:
        # An unknown provider is reported when the document is applied, naming the known ones.
        try:
            connector_class(self.provider)
        except ConfigurationError:
            return self
        check_provider_fields(self.provider, self.settings.attribute_mapping, self.settings.user_filter.condition)
        return self


def check_provider_fields(provider: str, mapping: dict[str, str | None], condition: str | None = None) -> None:
    """Refuse mapping entries (and a filter condition) that read a field `provider`'s users do not have."""
    cls = connector_class(provider)
    check_fields(cls.user_fields, cls.title, mapping, condition, aliases=cls.default_mapping)


def load_document(path: Path) -> DirectoryDocument:
    """Read a YAML or JSON directory document; every problem is one ConfigurationError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    return parse_document(text, source=str(path))


# A directory document is a page or two; these bound what a hostile one can make the parser do.
MAX_DOCUMENT = 1024 * 1024  # characters
MAX_NESTING = 64  # mappings and lists within one another
MAX_ALIASES = 100  # YAML `*alias` uses: a few keep a document short, thousands are a "billion laughs"


class _DocumentError(yaml.YAMLError):
    """A YAML document past the limits above, or with a key given twice."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _DocumentLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting, many aliases and repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _DocumentError(f"more than {MAX_ALIASES} aliases", self.peek_event().start_mark)
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _DocumentError(f"nested more than {MAX_NESTING} levels deep", self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise _DocumentError(f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"the key {key!r} is given twice")
    return dict(pairs)


_BRACKETS = re.compile(r"[\[\]{}]")


def _load_text(text: str) -> Any:
    # Flow brackets are counted before parsing: json's recursion and PyYAML's flow scanner (which
    # slows down with every level) would meet their limits well past ours, and slowly.
    depth = 0
    for bracket in _BRACKETS.finditer(text):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_NESTING:
            raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    if text.lstrip().startswith("{"):
        return json.loads(text, object_pairs_hook=_unique_keys)
    return yaml.load(text, Loader=_DocumentLoader)


def parse_document(text: str, *, source: str = "document") -> DirectoryDocument:
    if len(text) > MAX_DOCUMENT:
        raise ConfigurationError(f"{source} is longer than {MAX_DOCUMENT // 1024} KiB")
    try:
        raw = _load_text(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"{source} is not valid YAML or JSON{where}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits, deep nesting
        raise ConfigurationError(f"{source} is not a usable document: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source} must be a mapping with name, provider and connection")
    return validate_document(raw)


def validate_document(raw: dict[str, Any]) -> DirectoryDocument:
    try:
        return DirectoryDocument.model_validate(raw)
    except ValidationError as exc:
        raise configuration_error(exc, DirectoryDocument) from None


def configuration_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigurationError:
    """Every validation problem, each naming its field in plain words, as one ConfigurationError.

    The error's own message and field are those of the first problem (a misspelled field first).
    """
    errors = exc.errors()
    # A misspelled field shows up as both "unknown" and "missing": the unknown one says more.
    ordered = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")
    problems: list[FieldProblem] = []
    hints: list[str | None] = []
    for problem in ordered:
        location = [str(part) for part in problem["loc"]]
        field = _path(([prefix] if prefix else []) + location)
        message, hint = _plain(problem, model, location)
        if any(p.field == field for p in problems):
            continue
        problems.append(FieldProblem(field, f"{message} ({hint})" if hint else message))
        hints.append(hint)
    first = problems[0]
    message = first.message.removesuffix(f" ({hints[0]})") if hints[0] else first.message
    return ConfigurationError(message, field=first.field, hint=hints[0], problems=problems)


def _path(parts: list[str]) -> str:
    """`group_mappings.0.organization` as `group_mappings[0].organization`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text


def _plain(problem: Any, model: type[BaseModel], location: list[str]) -> tuple[str, str | None]:
    """(message, hint) for one pydantic problem, in words rather than pydantic's."""
    kind = problem["type"]
    context = problem.get("ctx") or {}
    if kind == "extra_forbidden":
        known = _known_fields(model, location[:-1])
        close = difflib.get_close_matches(location[-1], known, n=1)
        hint = f"did you mean {close[0]}?" if close else (f"known fields: {', '.join(known)}" if known else None)
        return "unknown field", hint
    if kind == "missing":
        return "is required", None
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{problem.get('input')!r} is not a whole number", None
    if kind in ("float_parsing", "float_type"):
        return f"{problem.get('input')!r} is not a number", None
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {_number(context.get('ge', context.get('gt')))}", None
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {_number(context.get('le', context.get('lt')))}", None
    if kind == "string_too_short":
        return "is required", None
    # Our validators raise ConfigurationError inside pydantic; keep their own text.
    cause = context.get("error")
    if isinstance(cause, ConfigurationError):
        return cause.problems[0].message, None
    return str(problem["msg"]).removeprefix("Value error, "), None


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _known_fields(model: type[BaseModel], path: list[str]) -> list[str]:
    current: Any = model
    for part in path:
        if part.isdigit():
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        annotation = info.annotation
        current = (
            getattr(annotation, "__args__", [annotation])[0]
            if hasattr(annotation, "__origin__")
            else annotation
        )
    return sorted(getattr(current, "model_fields", {}))


def connection_model(provider: str) -> type[ConnectionSettings]:
    return connector_class(provider).settings_model


def validate_connection(provider: str, connection: dict[str, Any]) -> ConnectionSettings:
    model = connection_model(provider)
    try:
        return model.model_validate(connection)
    except ValidationError as exc:
        raise configuration_error(exc, model, prefix="connection") from None
