"""The connection block of an `ldap` directory: server, bind account, TLS, where users and groups are."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from accessiq.connectors import active_directory as ad
from accessiq.connectors.base import ConnectionSettings
from accessiq.endpoints import is_loopback
from accessiq.errors import ConfigurationError

OPENLDAP_USER_FILTER = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
OPENLDAP_GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
Flavor = Literal["openldap", "active_directory"]


def _valid_dn(value: str, name: str) -> str:
    value = value.strip()
    try:
        import ldap.dn
    except ImportError:  # validated again when python-ldap is there to read the directory
        return value
    if not value or not ldap.dn.is_dn(value):
        raise ConfigurationError(f"{value!r} is not a distinguished name like ou=People,dc=example,dc=com", field=name)
    return value


def _valid_filter(value: str | None, name: str) -> str | None:
    """A filter the connector can AND with its own: one parenthesized expression, balanced."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    depth, escaped = 0, False
    for position, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0 or (depth == 0 and position != len(text) - 1):
                depth = -1
                break
        escaped = char == "\\"
    if not text.startswith("(") or depth != 0 or escaped or "\x00" in text:
        raise ConfigurationError(
            f"{value!r} is not one LDAP filter in parentheses, like (objectClass=inetOrgPerson)", field=name
        )
    return text


class LdapConnection(ConnectionSettings):
    """Connection block of an `ldap` directory: server, bind account, TLS and where users and groups are."""

    secret_fields: ClassVar[tuple[str, ...]] = ("bind_password",)
    path_fields: ClassVar[tuple[str, ...]] = ("ca_file",)
    # LDAP servers are the customer's own: no public origin, so a directory made through the API
    # or the web UI needs its server allowed by the operator (ACCESSIQ_ALLOWED_ENDPOINTS).
    public_endpoints: ClassVar[Mapping[str, tuple[str, ...]]] = {"url": ()}

    url: str = Field(
        title="Server URL",
        description="ldap://host[:port] or ldaps://host[:port]. Plain ldap:// to a host other than loopback "
        "needs StartTLS, so the bind password never travels unencrypted.",
        json_schema_extra={"kind": "url"},
    )
    bind_dn: str = Field(
        default="",
        title="Bind DN",
        description="The account the sync binds as, e.g. cn=accessiq,ou=Services,dc=example,dc=com "
        "(AD also takes user@domain). Empty binds anonymously.",
    )
    bind_password: str | None = Field(
        default=None,
        repr=False,
        title="Bind password",
        description="Password of the bind DN (simple bind).",
        json_schema_extra={"kind": "secret"},
    )
    start_tls: bool = Field(
        default=False,
        title="StartTLS",
        description="Upgrade an ldap:// connection with StartTLS before binding.",
        json_schema_extra={"kind": "boolean"},
    )
    ca_file: str | None = Field(
        default=None,
        title="CA certificate file",
        description="PEM file on the server with the CA that signed the LDAP server's certificate; "
        "empty uses the system's trusted CAs.",
        json_schema_extra={"kind": "file"},
    )
    tls_verify: bool = Field(
        default=True,
        title="Verify the server certificate",
        description="Turn off only for a test server: without verification anyone on the path can read the "
        "bind password.",
        json_schema_extra={"kind": "boolean"},
    )
    base_dn: str = Field(
        title="Base DN",
        description="Where users and groups are searched (subtree), e.g. dc=example,dc=com.",
    )
    user_filter: str | None = Field(
        default=None,
        title="User filter",
        description="LDAP filter for user entries. Default: (|(objectClass=inetOrgPerson)(objectClass=posixAccount)) "
        "for OpenLDAP, (&(objectCategory=person)(objectClass=user)) for Active Directory.",
    )
    group_filter: str | None = Field(
        default=None,
        title="Group filter",
        description="LDAP filter for group entries. Default: groupOfNames, groupOfUniqueNames and posixGroup "
        "for OpenLDAP, (objectClass=group) for Active Directory.",
    )
    flavor: Flavor = Field(
        default="openldap",
        title="Server kind",
        description="openldap (entryUUID, syncrepl) or active_directory (objectGUID, userAccountControl, "
        "uSNChanged, primary groups).",
        json_schema_extra={"kind": "choice"},
    )
    user_base_dns: list[str] = Field(
        default_factory=list,
        title="User org units",
        description="Read users only in these subtrees (one DN per line); empty reads the whole base DN.",
        json_schema_extra={"kind": "list"},
    )
    group_base_dns: list[str] = Field(
        default_factory=list,
        title="Group org units",
        description="Read groups only in these subtrees (one DN per line); empty reads the whole base DN.",
        json_schema_extra={"kind": "list"},
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        title="Page size",
        description="Entries per page of a paged search (AD caps it at 1000).",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        title="Timeout (seconds)",
        description="For connecting and for each LDAP operation.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise ConfigurationError(f"{value!r} is not an ldap:// or ldaps:// URL", field="connection.url")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigurationError(f"{value!r} has an invalid port", field="connection.url") from None
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
            raise ConfigurationError(
                f"give the server only, like ldaps://{parts.hostname}; the base DN has its own field",
                field="connection.url",
            )
        return f"{parts.scheme.lower()}://{parts.netloc}"

    @field_validator("base_dn")
    @classmethod
    def _base_dn(cls, value: str) -> str:
        return _valid_dn(value, "connection.base_dn")

    @field_validator("user_base_dns", "group_base_dns")
    @classmethod
    def _base_dns(cls, values: list[str], info: Any) -> list[str]:
        return [_valid_dn(v, f"connection.{info.field_name}") for v in values if v.strip()]

    @field_validator("user_filter", "group_filter")
    @classmethod
    def _filter(cls, value: str | None, info: Any) -> str | None:
        return _valid_filter(value, f"connection.{info.field_name}")

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @model_validator(mode="after")
    def _encrypted(self) -> LdapConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "ldaps" and self.start_tls:
            raise ConfigurationError(
                "StartTLS is for ldap:// URLs; an ldaps:// connection is encrypted already",
                field="connection.start_tls",
            )
        if parts.scheme == "ldap" and not self.start_tls and not is_loopback(parts.hostname):
            raise ConfigurationError(
                f"plain ldap:// to {parts.hostname} would send the bind password unencrypted; use ldaps:// "
                "or turn on start_tls (plain ldap:// is accepted only for loopback)",
                field="connection.url",
            )
        if self.bind_dn and not self.bind_password:
            raise ConfigurationError("give the bind DN's password", field="connection.bind_password")
        return self

    @property
    def users_filter(self) -> str:
        return self.user_filter or (ad.USER_FILTER if self.flavor == "active_directory" else OPENLDAP_USER_FILTER)

    @property
    def groups_filter(self) -> str:
        return self.group_filter or (ad.GROUP_FILTER if self.flavor == "active_directory" else OPENLDAP_GROUP_FILTER)

    @property
    def user_bases(self) -> list[str]:
        return self.user_base_dns or [self.base_dn]

    @property
    def group_bases(self) -> list[str]:
        return self.group_base_dns or [self.base_dn]

    @property
    def id_attribute(self) -> str:
        return "objectGUID" if self.flavor == "active_directory" else "entryUUID"

    def scope_fingerprint(self) -> str:
        """What a cursor is valid for: the same server, tree and filters."""
        parts = [self.url, self.base_dn, self.users_filter, self.groups_filter, self.flavor]
        parts += [*sorted(self.user_bases), "|", *sorted(self.group_bases)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
