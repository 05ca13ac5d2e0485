"""The connector protocol: what every directory provider implements.

A connector knows its provider's wire format and nothing of the store. It reads
the source as a stream of normalized events keyed on the provider's immutable id;
the sync engine folds them into its mirror of the source and plans from there.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from accessiq.endpoints import EndpointAllowList


@dataclass(frozen=True)
class SourceUser:
    """A user as the provider has it: immutable id, raw record, enabled state."""

    external_id: str
    data: Mapping[str, Any]
    active: bool = True
    # Where the user sits in the directory tree: an LDAP DN or a Google OU path.
    org_unit: str | None = None


@dataclass(frozen=True)
class SourceGroup:
    """A group's own attributes; members travel separately as membership deltas."""

    external_id: str
    name: str
    description: str | None = None
    email: str | None = None
    dn: str | None = None
    # The record as the source gave it, for providers whose mirror must answer for it (SCIM).
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ReadStarted:
    """First event of every read. `full` means: forget the mirror, this read is everything."""

    full: bool
    note: str | None = None


@dataclass(frozen=True)
class UserUpserted:
    user: SourceUser


@dataclass(frozen=True)
class UserRemoved:
    external_id: str


@dataclass(frozen=True)
class GroupUpserted:
    """A group's attributes changed or it appeared.

    With `replace_members` the member lists below are the complete direct
    membership; otherwise they are additions and removals (Graph `members@delta`).
    """

    group: SourceGroup
    added_users: frozenset[str] = frozenset()
    removed_users: frozenset[str] = frozenset()
    added_groups: frozenset[str] = frozenset()
    removed_groups: frozenset[str] = frozenset()
    replace_members: bool = False


@dataclass(frozen=True)
class GroupRemoved:
    external_id: str


@dataclass(frozen=True)
class RecordRejected:
    """A record the connector could not understand: an error on that record, not on the read.

    The engine leaves the object with that external id exactly as it is in the store.
    """

    object: str  # "user" or "group"
    external_id: str | None
    message: str


@dataclass(frozen=True)
class ReadFinished:
    """Last event of a read that reached the end: the cursor to store when the run applies."""

    cursor: dict[str, Any] | None = None


SourceEvent = ReadStarted | UserUpserted | UserRemoved | GroupUpserted | GroupRemoved | RecordRejected | ReadFinished


@dataclass(frozen=True)
class CheckResult:
    """What a credential check found: facts to show the admin, and problems that stop a sync."""

    ok: bool
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class ConnectionSettings(BaseModel):
    """Base of every provider's `connection` block; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    # Names of the fields that hold secrets: stored encrypted, never shown.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Endpoint fields and the provider's own public origins for each (entries as in
    # ACCESSIQ_ALLOWED_ENDPOINTS). Directories made through the API or the web UI may
    # use another origin only when the operator allows it.
    public_endpoints: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # Fields that name a file on the server: through the API or the web UI it must lie
    # in the snapshot directory.
    path_fields: ClassVar[tuple[str, ...]] = ()
    # Alternative credentials: in each group exactly one field is given (a client secret or a certificate).
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # Fields given together or not at all (an OAuth app's client ID and its private key).
    together: ClassVar[tuple[tuple[str, ...], ...]] = ()

    @classmethod
    def public_origins(cls, endpoint: str | None = None) -> EndpointAllowList:
        """The provider's public origins for one endpoint field, or for all of them."""
        names = [endpoint] if endpoint is not None else list(cls.public_endpoints)
        return EndpointAllowList.parse(entry for name in names for entry in cls.public_endpoints.get(name, ()))


@dataclass(frozen=True)
class UserFields:
    """The fields a provider's user records have, so a mapping naming another is refused when saved.

    `known` are field paths (`mail`, `name.givenName`); a path inside a known one
    (`onPremisesExtensionAttributes.extensionAttribute1`) is accepted as well.
    `open_prefixes` begin names that each tenant defines (Okta `profile.`, Google
    `customSchemas.`, Graph `extension_`), which are accepted unseen.
    """

    known: frozenset[str]
    open_prefixes: tuple[str, ...] = ()
    # Fields the users have but a sync cannot read (Graph lists no `birthday`): field -> why.
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def has(self, path: str) -> bool:
        if path.startswith(self.open_prefixes):
            return True
        return any(path == k or path.startswith(k + ".") or k.startswith(path + ".") for k in self.known)


class Connector(ABC):
    """A directory provider. Subclasses set `provider`, `settings_model` and implement the reads."""

    provider: ClassVar[str]
    # How the wizard, `GET /api/v1/providers` and the CLI present the provider.
    title: ClassVar[str]
    description: ClassVar[str]
    settings_model: ClassVar[type[ConnectionSettings]]
    # "module:ATTRIBUTE" of its sandbox's SandboxSpec (accessiq.sandbox), loaded only when used.
    sandbox: ClassVar[str | None] = None
    # Modules the provider needs beyond the product's own dependencies (an extra), and what to
    # install when one is missing; the module itself must import without them.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str | None] = None
    # True when `read` can continue from a cursor instead of reading everything.
    incremental: ClassVar[bool] = False
    # True when the cursor stands for the whole source as last read (the digest of a snapshot
    # file): a push, which writes the mirror between reads, voids it, so the next read is in full.
    cursor_is_whole_read: ClassVar[bool] = False
    # True when the source pushes its changes (SCIM): the stored mirror is the whole source, a read
    # adds nothing to it, and a run plans from the mirror.
    push_only: ClassVar[bool] = False
    # Default attribute mapping: AccessIQ attribute <- field path or template.
    default_mapping: ClassVar[dict[str, str]] = {}
    # Connection fields that together name the tenant a directory reads (Entra tenant, Okta org,
    # LDAP server and base): two directories of the provider with equal values read the same people.
    tenant_fields: ClassVar[tuple[str, ...]] = ()
    # What an organizational unit looks like in this source, for the user filter (LDAP base DNs,
    # Google OU paths); None when the source has none, and the filter does not offer them.
    org_unit_example: ClassVar[str | None] = None
    # Notes of an ordinary read (a first full read, a source without a change feed): information
    # for the run log, not warnings; any other note of a read is a warning.
    ordinary_notes: ClassVar[tuple[str, ...]] = ()
    # The user fields the provider's records have; None when they are the directory's own
    # schema (LDAP, file snapshots), where any field name may exist.
    user_fields: ClassVar[UserFields | None] = None
    # Field paths the attribute-mapping page offers as examples of what else can be mapped.
    example_fields: ClassVar[tuple[str, ...]] = ("department", "title")
    # The user filter's organizational units (Google OU paths, LDAP base DNs), children included,
    # set by the engine: a connector whose source can filter by them may read only those users.
    # The planner scopes again either way, so a connector that ignores them stays correct.
    org_units: tuple[str, ...] = ()

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        fields: Collection[str] = (),
        allowed_endpoints: EndpointAllowList | None = None,
    ) -> None:
        self.settings = settings
        # Top-level source fields the attribute mapping and user filter use: a
        # connector that selects fields (Graph `$select`) reads at least these.
        self.fields = frozenset(fields)
        # Origins the operator allows besides the provider's public ones (ACCESSIQ_ALLOWED_ENDPOINTS).
        self.allowed_endpoints = allowed_endpoints or EndpointAllowList()

    @classmethod
    def tenant(cls, connection: Mapping[str, Any]) -> dict[str, str]:
        """The tenant a connection reads, {field: value} compared case-insensitively; {} when unknown."""
        fields = cls.settings_model.model_fields
        values = {}
        for name in cls.tenant_fields:
            value = connection.get(name)
            if value is None and name in fields and isinstance(fields[name].default, str):
                value = fields[name].default
            if value:
                values[name] = str(value).strip().rstrip("/").casefold()
        return values

    def trusts(self, url: str) -> bool:
        """True for the provider's public endpoints and those the operator allows.

        Only what such an endpoint answers may be quoted in an error message: any
        other endpoint could be a service on the server's network that the run would
        otherwise read out for whoever sees the run log.
        """
        return self.settings.public_origins().allows(url) or self.allowed_endpoints.allows(url)

    @abstractmethod
    def check(self) -> CheckResult:
        """Verify credentials and permissions; raise a ConnectorError when the source cannot be read."""

    @abstractmethod
    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        """Stream the source: everything when `cursor` is None, else the changes since it.

        Yields ReadStarted first and ReadFinished last; a read that stops early raises. A read
        whose change state expires midway may yield ReadStarted(full=True) again and start over:
        every event before it is void.
        """

    def list_groups(self) -> Iterator[SourceGroup]:
        """The source's groups, for the group-mapping picker."""
        for event in self.read(None):
            if isinstance(event, GroupUpserted):
                yield event.group

    def close(self) -> None:
        """Release connections; the default has none."""


def missing_requirements(connector: type[Connector]) -> list[str]:
    """The modules of `connector.requires` that cannot be imported here."""
    return [name for name in connector.requires if importlib.util.find_spec(name) is None]
