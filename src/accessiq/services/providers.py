"""The provider catalog: what every face shows of the providers, read from the connectors' own descriptions.

The wizard, `GET /api/v1/providers`, `directories apply`, `accessiq sandbox PROVIDER` and
`serve --demo` all read this; a provider is added by its connector and sandbox modules alone.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, replace
from enum import Enum
from importlib import import_module
from typing import Any, Literal

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from accessiq.connectors import PLANNED, available_providers, connector_class, registered_providers
from accessiq.connectors.base import ConnectionSettings, Connector, missing_requirements
from accessiq.errors import NotFoundError

if typing.TYPE_CHECKING:
    from accessiq.sandbox import SandboxSpec

# How a connection field is entered; "kind" in a field's json_schema_extra, else guessed from its type.
FIELD_KINDS = ("text", "secret", "multiline_secret", "url", "list", "boolean", "choice", "file")


@dataclass(frozen=True)
class ConnectionField:
    """One field of a provider's connection form."""

    name: str
    label: str
    help: str | None
    kind: str
    required: bool
    default: Any
    choices: tuple[str, ...] = ()
    # Labels of the fields that may be given instead of this one (one of them is required).
    alternatives: tuple[str, ...] = ()
    # Labels of the fields this one is given together with (each needs the others).
    together_with: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        return self.kind in ("secret", "multiline_secret")


@dataclass(frozen=True)
class Provider:
    """A provider as the faces present it; `available` is False for planned or not installed ones."""

    name: str
    title: str
    description: str
    available: bool
    install_hint: str | None = None
    incremental: bool = False
    fields: tuple[ConnectionField, ...] = ()
    schema: dict[str, Any] | None = None
    sandbox: str | None = None

    def load_sandbox(self) -> SandboxSpec | None:
        """The provider's SandboxSpec, imported now; None when it has none."""
        if not self.sandbox:
            return None
        module, _, attribute = self.sandbox.partition(":")
        spec: SandboxSpec = getattr(import_module(module), attribute)
        return spec

    def json(self) -> dict[str, Any]:
        """The shape of `GET /api/v1/providers`."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "available": self.available,
            "install_hint": self.install_hint,
            "incremental": self.incremental,
            "sandbox": self.sandbox is not None,
            "connection_schema": self.schema,
        }


def catalog() -> list[Provider]:
    """Every provider: the registered ones (installed or not), then those still planned."""
    found = [_describe(name) for name in registered_providers()]
    known = {p.name for p in found}
    planned = [
        Provider(name, title, description, available=False, install_hint="planned")
        for name, (title, description) in PLANNED.items()
        if name not in known
    ]
    return sorted(found, key=lambda p: (p.name == "file", p.title.lower())) + planned


def get_provider(name: str) -> Provider:
    """One provider by name; a ConfigurationError naming the known ones for any other name."""
    connector_class(name)  # raises the error that names the choices
    return _describe(name)


def find_provider(name: str) -> Provider:
    """One provider of the catalog, installed, not installed or planned; NotFoundError naming the others."""
    listed = catalog()
    for provider in listed:
        if provider.name == name:
            return provider
    raise NotFoundError(
        f"no provider {name!r}", hint=f"the providers are {', '.join(p.name for p in listed)}"
    )


def available_names() -> list[str]:
    """Names of the providers a directory can use on this server (registered and installed)."""
    return available_providers()


def connection_fields(model: type[ConnectionSettings]) -> tuple[ConnectionField, ...]:
    """The form of a connection model: label, help, kind, required, default, choices and alternatives."""
    fields = [_field(model, name, info) for name, info in model.model_fields.items()]
    labels = {f.name: f.label for f in fields}

    def others(groups: tuple[tuple[str, ...], ...], name: str) -> tuple[str, ...]:
        return tuple(labels[o] for g in groups if name in g for o in g if o != name)

    return tuple(
        replace(f, alternatives=others(model.one_of, f.name), together_with=others(model.together, f.name))
        for f in fields
    )


def _describe(name: str) -> Provider:
    cls: type[Connector] = connector_class(name, require_installed=False)
    missing = missing_requirements(cls)
    model = cls.settings_model
    return Provider(
        name=name,
        title=getattr(cls, "title", name),
        description=getattr(cls, "description", ""),
        available=not missing,
        install_hint=cls.install_hint if missing else None,
        incremental=cls.incremental,
        fields=connection_fields(model),
        schema=model.model_json_schema(),
        sandbox=cls.sandbox,
    )


def _field(model: type[ConnectionSettings], name: str, info: FieldInfo) -> ConnectionField:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    choices = _choices(info.annotation)
    kind = str(extra.get("kind") or _guess_kind(model, name, info.annotation, choices))
    if kind not in FIELD_KINDS:
        raise ValueError(f"{model.__name__}.{name}: unknown field kind {kind!r}; one of {', '.join(FIELD_KINDS)}")
    default = None if info.default is PydanticUndefined else info.default
    return ConnectionField(
        name=name,
        label=info.title or name.replace("_", " ").capitalize(),
        help=info.description,
        kind=kind,
        required=info.is_required(),
        default=default,
        choices=choices,
    )


def _guess_kind(model: type[ConnectionSettings], name: str, annotation: Any, choices: tuple[str, ...]) -> str:
    if name in model.secret_fields:
        return "secret"
    if name in model.path_fields:
        return "file"
    if choices:
        return "choice"
    inner = _without_none(annotation)
    if inner is bool:
        return "boolean"
    if typing.get_origin(inner) in (list, tuple, set, frozenset):
        return "list"
    if name.endswith("_url") or name in model.public_endpoints:
        return "url"
    return "text"


def _choices(annotation: Any) -> tuple[str, ...]:
    inner = _without_none(annotation)
    if typing.get_origin(inner) is Literal:
        return tuple(str(value) for value in typing.get_args(inner))
    if isinstance(inner, type) and issubclass(inner, Enum):
        return tuple(str(member.value) for member in inner)
    return ()


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
