"""Attribute mapping: AccessIQ attribute <- a field path into the source record or a sandboxed template.

Templates run in Jinja2's immutable sandbox: they can read the record and call
filters, never touch Python internals or mutate anything.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError, meta, nodes

from accessiq.connectors.base import UserFields
from accessiq.errors import ConfigurationError
from accessiq.sync.expression_errors import explain_syntax_error
from accessiq.sync.template_sandbox import MAX_SOURCE, TemplateSandbox, budget, fits_output, refused_statement

CORE_FIELDS = ("email", "username", "given_name", "family_name", "display_name")
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

_ENV = TemplateSandbox()


class MappingError(Exception):
    """A mapping failed for one record; the record gets the error, the run goes on."""


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def resolve_path(record: Mapping[str, Any], path: str) -> Any:
    """Follow `a.b.c` through nested objects (and list indexes); missing parts give None."""
    return _follow(record, path.split("."))


def _follow(record: Mapping[str, Any], parts: Sequence[str]) -> Any:
    value: Any = record
    for part in parts:
        if isinstance(value, (dict, Mapping)):  # dict first: no ABC check for plain records
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def _compile(target: str, source: str) -> Callable[[Mapping[str, Any]], Any]:
    field = f"settings.attribute_mapping.{target}"
    if len(source) > MAX_SOURCE:
        raise ConfigurationError(f"is longer than {MAX_SOURCE} characters", field=field)
    if is_template(source):
        try:
            refused = refused_statement(_ENV.parse(source))
            template = _ENV.from_string(source)
        except TemplateError as exc:
            raise ConfigurationError(
                f"template does not parse: {explain_syntax_error(exc, source, condition=False)}", field=field
            ) from None
        if refused:
            raise ConfigurationError(refused, field=field)

        def render(record: Mapping[str, Any]) -> Any:
            with budget():
                text = fits_output(template.render(record)).strip()
            return text or None

        return render
    if not source.strip() or any(ch.isspace() for ch in source.strip()):
        raise ConfigurationError(
            f"{source!r} is neither a field path (like mail or name.givenName) nor a template "
            "(wrap expressions in {{ }})",
            field=f"settings.attribute_mapping.{target}",
        )
    parts = source.strip().split(".")
    if len(parts) == 1:  # a top-level field, the common case: one lookup per record
        key = parts[0]
        return lambda record: record.get(key) if isinstance(record, dict) else _follow(record, parts)
    return lambda record: _follow(record, parts)


def check_mapping(mapping: Mapping[str, str | None]) -> None:
    """Refuse a mapping whose target names or templates are unusable, naming the field."""
    for target, source in mapping.items():
        if not _TARGET.match(target):
            raise ConfigurationError(
                "an attribute name starts with a letter and holds letters, digits, '_', '-' or '.'",
                field=f"settings.attribute_mapping.{target}",
            )
        if source is not None:
            _compile(target, source)


def check_condition(expression: str) -> None:
    if len(expression) > MAX_SOURCE:
        raise ConfigurationError(f"is longer than {MAX_SOURCE} characters", field="settings.user_filter.condition")
    try:
        _ENV.compile_expression(expression)
        refused = refused_statement(_ENV.parse("{{ " + expression + " }}"))
    except TemplateError as exc:
        raise ConfigurationError(
            f"is not valid: {explain_syntax_error(exc, expression, condition=True)}",
            field="settings.user_filter.condition",
        ) from None
    if refused:
        raise ConfigurationError(f"is not valid: {refused}", field="settings.user_filter.condition")


def referenced_fields(sources: list[str], condition: str | None = None) -> set[str]:
    """Top-level source fields that paths, templates and a condition read (for Graph `$select`)."""
    fields: set[str] = set()
    for source in sources:
        if is_template(source):
            fields |= meta.find_undeclared_variables(_ENV.parse(source))
        else:
            fields.add(source.strip().split(".")[0])
    if condition:
        fields |= meta.find_undeclared_variables(_ENV.parse("{{ " + condition + " }}"))
    return fields


def source_paths(source: str) -> list[str]:
    """The field paths a mapping value reads: the path itself, or each `a.b` a template names.

    A method call's name is not a field (`mail.split('@')` reads `mail`); names a
    template sets itself (`{% set x = ... %}`, loop variables) are not either.
    """
    if not is_template(source):
        return [source.strip()]
    try:
        tree = _ENV.parse(source)
    except TemplateError:
        return []  # compiling the mapping reports it, naming the attribute
    return list(dict.fromkeys(_paths(tree, meta.find_undeclared_variables(tree))))


def _paths(node: nodes.Node, names: set[str]) -> Iterator[str]:
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        yield from _paths(node.node.node, names)
        arguments: list[nodes.Node] = [*node.args, *node.kwargs]
        arguments += [extra for extra in (node.dyn_args, node.dyn_kwargs) if extra is not None]
        for argument in arguments:
            yield from _paths(argument, names)
        return
    chain = _chain(node)
    if chain is not None:
        if chain[0] in names:
            yield ".".join(chain)
        return
    for child in node.iter_child_nodes():
        yield from _paths(child, names)


def _chain(node: nodes.Node) -> list[str] | None:
    """`a.b['c']` as ["a", "b", "c"]; None for anything but a name followed by constant lookups."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node)
        return None if base is None else [*base, node.attr]
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
        base = _chain(node.node)
        return None if base is None else [*base, str(node.arg.value)]
    return None


def check_fields(
    fields: UserFields | None,
    provider_title: str,
    mapping: Mapping[str, str | None],
    condition: str | None = None,
    *,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Refuse a mapping or condition that reads a field the provider's users do not have.

    `aliases` suggest the provider's own field for a name another provider uses
    (its default mapping: AccessIQ attribute -> source field).
    """
    if fields is None:
        return
    sources = [(f"settings.attribute_mapping.{t}", s) for t, s in mapping.items() if s is not None]
    if condition:
        sources.append(("settings.user_filter.condition", "{{ " + condition + " }}"))
    for where, source in sources:
        for path in source_paths(source):
            reason = fields.unreadable.get(path.split(".")[0])
            if reason:
                raise ConfigurationError(
                    f"{provider_title} cannot sync the field {path}: {reason}", field=where, hint="remove it"
                )
            if not fields.has(path):
                close = _suggest(fields, path, aliases or {})
                raise ConfigurationError(
                    f"{provider_title} users have no field {path}",
                    field=where,
                    hint=f"did you mean {close}?" if close else "field names are case-sensitive; check the spelling",
                )


def _suggest(fields: UserFields, path: str, aliases: Mapping[str, str]) -> str | None:
    def plain(name: str) -> str:
        return name.casefold().replace("_", "").replace("-", "")

    for target, source in aliases.items():
        if plain(target) == plain(path) and not is_template(source):
            return source
    known = {plain(k): k for k in sorted(fields.known)}
    if plain(path) in known:
        return known[plain(path)]
    last = plain(path.rsplit(".", 1)[-1])
    by_last = [k for k in sorted(fields.known) if plain(k.rsplit(".", 1)[-1]) == last]
    if by_last:
        return by_last[0]
    close = difflib.get_close_matches(plain(path), list(known), n=1)
    return known[close[0]] if close else None


def effective_mapping(defaults: Mapping[str, str], overrides: Mapping[str, str | None]) -> dict[str, str]:
    """Provider defaults overlaid with the admin's entries; an entry set to None drops a default."""
    effective = dict(defaults)
    for target, source in overrides.items():
        if source is None:
            effective.pop(target, None)
        else:
            effective[target] = source
    return dict(sorted(effective.items()))


@dataclass(frozen=True)
class CompiledMapping:
    """A directory's effective mapping: provider defaults overlaid with the admin's entries."""

    rules: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]
    sources: tuple[str, ...]

    @classmethod
    def build(cls, defaults: Mapping[str, str], overrides: Mapping[str, str | None]) -> CompiledMapping:
        effective = effective_mapping(defaults, overrides)
        rules = tuple((target, _compile(target, source)) for target, source in sorted(effective.items()))
        return cls(rules=rules, sources=tuple(effective.values()))

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Map one record; raises MappingError naming the attribute that failed."""
        out: dict[str, Any] = {}
        for target, rule in self.rules:
            try:
                out[target] = rule(record)
            except Exception as exc:  # a template may raise anything: it is the record's error
                raise MappingError(f"attribute {target}: {exc}") from None
        return out


class Condition:
    """A compiled user-filter condition evaluated on a source record."""

    def __init__(self, expression: str) -> None:
        check_condition(expression)
        self._expression = _ENV.compile_expression(expression, undefined_to_none=True)

    def __call__(self, record: Mapping[str, Any]) -> bool:
        try:
            with budget():
                return bool(self._expression(**record))
        except Exception as exc:
            raise MappingError(f"user_filter.condition: {exc}") from None
