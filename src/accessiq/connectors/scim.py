"""The `scim` provider: Entra ID, Okta or any SCIM 2.0 client pushes users and groups to us.

Nothing is read from anywhere: each SCIM write becomes a push run whose events (see
`accessiq.services.scim`) move the stored mirror, which is the whole source. A run started
by hand (Sync Now) plans again from that mirror, e.g. after the mapping changed.

A user's mirror record is its SCIM resource as the client wrote it (`userName`, `name.givenName`,
`emails`, ...), with the enterprise extension under `enterprise` (`enterprise.department`,
`enterprise.manager.value`) so that field paths and templates can reach it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from accessiq.connectors.base import (
    CheckResult,
    ConnectionSettings,
    Connector,
    ReadFinished,
    ReadStarted,
    SourceEvent,
    UserFields,
)


class ScimConnection(ConnectionSettings):
    """A SCIM directory has no connection: the identity provider calls us with the directory's token."""


class ScimConnector(Connector):
    """Receives pushes at `/scim/v2/{directory}`; its reads add nothing to the mirror."""

    provider = "scim"
    title = "SCIM (push from Entra ID, Okta, …)"
    description = (
        "The identity provider pushes users and groups to this directory's SCIM 2.0 endpoint the moment "
        "they change; create its token with `accessiq directories scim-token`."
    )
    settings_model = ScimConnection
    incremental = True
    push_only = True
    default_mapping = {
        "email": (
            "{{ (emails | selectattr('primary') | map(attribute='value') | first)"
            " or (emails | map(attribute='value') | first) or userName }}"
        ),
        "username": "userName",
        "given_name": "name.givenName",
        "family_name": "name.familyName",
        "display_name": "displayName",
    }
    user_fields = UserFields(
        known=frozenset(
            {
                "id",
                "externalId",
                "userName",
                "name",
                "displayName",
                "nickName",
                "profileUrl",
                "title",
                "userType",
                "preferredLanguage",
                "locale",
                "timezone",
                "active",
                "emails",
                "phoneNumbers",
                "ims",
                "photos",
                "addresses",
                "entitlements",
                "roles",
                "x509Certificates",
                "enterprise",
                "meta",
            }
        )
    )
    example_fields = ("title", "enterprise.department", "enterprise.employeeNumber")

    def check(self) -> CheckResult:
        return CheckResult(ok=True, details=["receives changes by SCIM push; nothing to connect to"])

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        yield ReadStarted(full=False)
        yield ReadFinished(cursor=cursor)
