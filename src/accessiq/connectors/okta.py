"""The `okta` provider: an Okta org over the Okta Management API, read-only.

Credentials are an API token (`SSWS`) or an OAuth 2.0 service app that signs a
`private_key_jwt` client assertion for the org authorization server. Users and
groups page with RFC 8288 `Link` headers followed exactly as given. Incremental
reads ask for what moved since a high-water mark (`lastUpdated`,
`lastMembershipUpdated`) and find permanent deletes in the System Log. Wire facts
this module relies on are in `reference/provider-apis.md` §2.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field, field_validator, model_validator

from accessiq.connectors.base import (
    CheckResult,
    ConnectionSettings,
    Connector,
    GroupRemoved,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceGroup,
    SourceUser,
    UserFields,
    UserRemoved,
    UserUpserted,
)
from accessiq.connectors.http import HttpClient, HttpOptions, PageGuard, RateLimitPacer
from accessiq.endpoints import EndpointAllowList, is_loopback
from accessiq.errors import (
    AccessIQError,
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SourceError,
    TransientError,
)

log = structlog.get_logger(__name__)

# Statuses of a user who may sign in, or is on the way to (§2.2); SUSPENDED and DEPROVISIONED are not.
# A user as the connector passes it on (credentials and links left out). Profile attributes are
# Okta's base profile plus any custom attributes the org defines, so `profile.` is open.
USER_FIELDS = UserFields(
    frozenset(
        {"id", "status", "created", "activated", "statusChanged", "lastLogin", "lastUpdated", "passwordChanged",
         "type", "transitioningToStatus", "realmId"}
        | {
            f"profile.{name}"
            for name in (
                "login", "email", "secondEmail", "firstName", "lastName", "middleName", "honorificPrefix",
                "honorificSuffix", "title", "displayName", "nickName", "profileUrl", "primaryPhone", "mobilePhone",
                "streetAddress", "city", "state", "zipCode", "countryCode", "postalAddress", "preferredLanguage",
                "locale", "timezone", "userType", "employeeNumber", "costCenter", "organization", "division",
                "department", "managerId", "manager",
            )
        }
    ),
    open_prefixes=("profile.",),
)
ACTIVE_STATUSES = frozenset({"ACTIVE", "PROVISIONED", "STAGED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"})
SYNCED_GROUP_TYPES = ("OKTA_GROUP", "APP_GROUP")
REQUIRED_SCOPES = ("okta.users.read", "okta.groups.read")
LOG_SCOPE = "okta.logs.read"
PAGE_LIMIT = "200"
USER_DELETED = "user.lifecycle.delete.completed"
GROUP_DELETED = "group.lifecycle.delete"
# An incremental read asks for changes since the previous read started minus this much:
# clock skew, commit lag and Okta's eventual consistency all fit in it. Replays are skipped.
OVERLAP = timedelta(minutes=2)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CURSOR_VERSION = 1
_ADMIN_HOST = re.compile(r"^(?P<org>[^.]+)-admin\.(?P<rest>okta\.com|oktapreview\.com|okta-emea\.com)$")


class OktaConnection(ConnectionSettings):
    """Connection block of an `okta` directory: the org and one credential."""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_token", "private_key")
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("api_token", "private_key"),)
    together: ClassVar[tuple[tuple[str, ...], ...]] = (("client_id", "private_key"),)
    public_endpoints: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "org_url": ("https://*.okta.com", "https://*.oktapreview.com", "https://*.okta-emea.com"),
    }

    org_url: str = Field(
        title="Okta org URL",
        description="Your Okta org, like https://acme.okta.com (not the -admin URL).",
        json_schema_extra={"kind": "url"},
    )
    api_token: str | None = Field(
        default=None,
        repr=False,
        title="API token",
        description="An API token of a read-only administrator (Security > API > Tokens). "
        "Give this, or a service app's client ID and private key.",
        json_schema_extra={"kind": "secret"},
    )
    client_id: str | None = Field(
        default=None,
        title="Service app client ID",
        description="Client ID of an API Services app granted okta.users.read and okta.groups.read "
        "(and okta.logs.read to see permanent deletes); needs the private key too.",
    )
    private_key: str | None = Field(
        default=None,
        repr=False,
        title="Service app private key",
        description="PEM RSA or EC private key whose public key is registered with the service app.",
        json_schema_extra={"kind": "multiline_secret"},
    )
    key_id: str | None = Field(
        default=None,
        title="Key ID (kid)",
        description="The kid of that public key in Okta; leave empty when the app has a single key.",
    )
    include_everyone_group: bool = Field(
        default=False,
        title="Include the Everyone group",
        description="Also sync Okta's built-in Everyone group.",
    )

    @field_validator("org_url")
    @classmethod
    def _org(cls, value: str) -> str:
        field = "connection.org_url"
        text = value.strip()
        parts = urlsplit(text if "://" in text else f"https://{text}")
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host or ("." not in host and not is_loopback(host)):
            raise ConfigurationError(f"{value!r} is not an Okta org URL like https://acme.okta.com", field=field)
        if parts.scheme == "http" and not is_loopback(host):
            raise ConfigurationError(
                f"plain http:// is refused for {host}: use https:// (plain http only for loopback sandboxes)",
                field=field,
            )
        admin = _ADMIN_HOST.match(host)
        if admin:
            raise ConfigurationError(
                f"{host} is the Admin Console address; use https://{admin['org']}.{admin['rest']}", field=field
            )
        if parts.query or parts.fragment or parts.path.strip("/"):
            raise ConfigurationError(
                f"give the org URL only, like https://{host}, without a path such as /api/v1", field=field
            )
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("api_token", "client_id", "key_id")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        # A token pasted with its header scheme still works.
        return value.removeprefix("SSWS ").strip() or None

    @field_validator("private_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        load_signing_key(value)
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> OktaConnection:
        oauth = self.client_id or self.private_key
        if self.api_token and oauth:
            raise ConfigurationError(
                "give either api_token or client_id + private_key, not both", field="connection.api_token"
            )
        if not self.api_token and not oauth:
            raise ConfigurationError(
                "give an API token, or a service app's client ID and private key", field="connection.api_token"
            )
        if oauth and not self.client_id:
            raise ConfigurationError("the private key needs the service app's client ID", field="connection.client_id")
        if oauth and not self.private_key:
            raise ConfigurationError("the service app needs its private key (PEM)", field="connection.private_key")
        return self


def load_signing_key(pem: str) -> tuple[Any, str]:
    """(private key, JWS algorithm) from a PEM RSA or EC key; a ConfigurationError otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"no unencrypted PEM private key found ({exc})", field="connection.private_key"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigurationError("Okta needs an RSA key of 2048 bits or more", field="connection.private_key")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name)
        if algorithm:
            return key, algorithm
    raise ConfigurationError(
        "Okta accepts RSA keys or EC keys on P-256, P-384 or P-521", field="connection.private_key"
    )


NO_CURSOR_NOTE = "no cursor: reading every user and group (full read)"


class OktaConnector(Connector):
    """Reads users, groups and memberships from an Okta org; incremental by `lastUpdated`."""

    provider = "okta"
    title = "Okta"
    description = "Okta organizations through the Okta Management API (API token or OAuth service app)."
    sandbox = "accessiq.sandbox.okta_commands:SANDBOX"
    settings_model = OktaConnection
    incremental = True
    tenant_fields = ("org_url",)
    ordinary_notes = (NO_CURSOR_NOTE,)
    default_mapping = {
        "email": "profile.email",
        "username": "profile.login",
        "given_name": "profile.firstName",
        "family_name": "profile.lastName",
        "display_name": "{{ profile.displayName or ((profile.firstName or '') ~ ' ' ~ (profile.lastName or '')) }}",
    }
    example_fields = ("profile.department", "profile.costCenter")
    user_fields = USER_FIELDS

    settings: OktaConnection

    def __init__(
        self,
        settings: OktaConnection,
        *,
        fields: Collection[str] = (),
        http: HttpOptions | None = None,
        allowed_endpoints: EndpointAllowList | None = None,
    ) -> None:
        super().__init__(settings, fields=fields, allowed_endpoints=allowed_endpoints)
        self._options = http or HttpOptions()
        self._api = HttpClient(
            "Okta",
            self._options,
            origin=settings.org_url,
            show_bodies=self.trusts(settings.org_url),
            describe_error=self._okta_error,
            pacer=RateLimitPacer(),
        )
        self._token: str | None = None
        self._token_expires = 0.0
        # True once Okta answered a list with JSON: later answers that are not JSON are not a wrong org URL.
        self._answered = False
        self._scopes: tuple[str, ...] = (*REQUIRED_SCOPES, LOG_SCOPE)

    # ------------------------------------------------------------ public API

    def check(self) -> CheckResult:
        org = self.settings.org_url
        details = [self._identify_org()]
        self._authorization()
        details.append(
            f"signed in with an API token to {org}"
            if self.settings.api_token
            else f"signed in to {org} as service app {self.settings.client_id} (scopes {' '.join(self._scopes)})"
        )
        users, _ = self._get_list(f"{org}/api/v1/users", {"limit": "1"})
        details.append("users readable" if users else "users readable (the org returned no users)")
        groups, _ = self._get_list(f"{org}/api/v1/groups", {"limit": "1"})
        if groups and isinstance(groups[0], dict) and groups[0].get("id"):
            self._get_list(f"{org}/api/v1/groups/{groups[0]['id']}/users", {"limit": "1"})
            details.append("groups and group members readable")
        else:
            details.append("groups readable (the org has no group to test members with)")
        details.append(
            "System Log readable: users deleted for good are found by every incremental sync"
            if self._log_readable()
            else "the System Log is not readable (okta.logs.read, or a role that reads it): users deleted for "
            "good are found by the periodic full sync only"
        )
        return CheckResult(ok=True, details=details)

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        note = self._cursor_problem(cursor)
        if note is not None or cursor is None:
            yield from self._full_read(note or NO_CURSOR_NOTE)
            return
        try:
            deletions = self._deletions(_parse_time(str(cursor["since"])), datetime.now(UTC))
        except _LogWindowPassed as exc:
            # The change feed no longer reaches back to the last sync: like an expired delta token.
            log.info("okta.log_window_passed", reason=str(exc))
            yield from self._full_read(f"{exc}; reading everything again (full read)")
            return
        yield from self._incremental_read(cursor, deletions)

    def list_groups(self) -> Iterator[SourceGroup]:
        """Every synced group with its name: one cheap list, no membership."""
        for page in self._pages("/api/v1/groups", {"filter": self._type_filter(), "limit": PAGE_LIMIT}, "groups"):
            for item in page:
                if isinstance(item, dict) and item.get("id") and self._synced(item):
                    yield _source_group(item)

    def close(self) -> None:
        self._api.close()

    # ------------------------------------------------------------ reads

    def _full_read(self, note: str) -> Iterator[SourceEvent]:
        started = self._server_now()
        yield ReadStarted(full=True, note=note)
        recent_users: dict[str, str] = {}
        mark = started - OVERLAP
        # List-all omits DEPROVISIONED users (§2.2): they come from a filter of their own.
        for params in (
            {"limit": PAGE_LIMIT},
            {"filter": 'status eq "DEPROVISIONED"', "limit": PAGE_LIMIT},
        ):
            for page in self._pages("/api/v1/users", params, "users"):
                for item in page:
                    event = _user_event(item)
                    if isinstance(event, UserUpserted):
                        _note_recent(recent_users, item, mark)
                    yield event
        recent_groups: dict[str, list[str]] = {}
        for page in self._pages("/api/v1/groups", {"filter": self._type_filter(), "limit": PAGE_LIMIT}, "groups"):
            for item in page:
                if not isinstance(item, dict) or not item.get("id"):
                    yield RecordRejected("group", None, "Okta sent a group without an id")
                    continue
                if not self._synced(item):
                    continue
                _note_recent_group(recent_groups, item, mark)
                yield self._group_with_members(item)
        yield ReadFinished(cursor=self._cursor(mark, recent_users, recent_groups, [], self._log_readable()))

    def _incremental_read(
        self, cursor: Mapping[str, Any], events: list[tuple[str, datetime, str, str]] | None
    ) -> Iterator[SourceEvent]:
        """The changes since the cursor. `events` are the System Log's deletions since it, read first (None
        when the log cannot be read): an expired window turns the read full, and readability is its note."""
        since = _parse_time(str(cursor["since"]))
        started = self._server_now()
        mark = started - OVERLAP
        seen_users: dict[str, str] = dict(cursor.get("recent_users") or {})
        seen_groups: dict[str, list[str]] = dict(cursor.get("recent_groups") or {})
        seen_events = set(cursor.get("recent_events") or [])
        # Deletions published after the log was read fall inside the next read's overlap.
        note = None
        if events is None:
            note = (
                "the System Log is not readable (okta.logs.read, or a role that reads it): users deleted "
                "for good are found by the periodic full sync"
            )
        yield ReadStarted(full=False, note=note)
        recent_users: dict[str, str] = {}
        stamp = _okta_time(since)
        for page in self._pages(
            "/api/v1/users", {"filter": f'lastUpdated gt "{stamp}"', "limit": PAGE_LIMIT}, "changed users"
        ):
            for item in page:
                if (
                    isinstance(item, dict)
                    and item.get("id")
                    and seen_users.get(str(item["id"])) == item.get("lastUpdated")
                ):
                    _note_recent(recent_users, item, mark)
                    continue  # replayed from the overlap: already applied
                event = _user_event(item)
                if isinstance(event, UserUpserted):
                    _note_recent(recent_users, item, mark)
                yield event
        recent_events: list[str] = []
        for event_id, published, kind, target in events or []:
            if published >= mark:
                recent_events.append(event_id)
            if event_id in seen_events:
                continue
            yield UserRemoved(target) if kind == USER_DELETED else GroupRemoved(target)
        recent_groups: dict[str, list[str]] = {}
        params = {
            "filter": f'lastUpdated gt "{stamp}" or lastMembershipUpdated gt "{stamp}"',
            "limit": PAGE_LIMIT,
        }
        for page in self._pages("/api/v1/groups", params, "changed groups"):
            for item in page:
                if not isinstance(item, dict) or not item.get("id") or not self._synced(item):
                    continue
                group_id = str(item["id"])
                stamps = [str(item.get("lastUpdated")), str(item.get("lastMembershipUpdated"))]
                _note_recent_group(recent_groups, item, mark)
                before = seen_groups.get(group_id)
                if before == stamps:
                    continue
                moved = _parse_time_or_none(stamps[1])
                # Members are re-read only when their own stamp moved, not for a rename.
                members_moved = moved is not None and moved > since and (before is None or before[1] != stamps[1])
                if members_moved:
                    yield self._group_with_members(item)
                else:
                    yield GroupUpserted(_source_group(item))
        yield ReadFinished(cursor=self._cursor(mark, recent_users, recent_groups, recent_events, events is not None))

    def _group_with_members(self, item: Mapping[str, Any]) -> SourceEvent:
        group_id = str(item["id"])
        members: set[str] = set()
        try:
            for page in self._pages(f"/api/v1/groups/{group_id}/users", {"limit": PAGE_LIMIT}, "group members"):
                members.update(str(m["id"]) for m in page if isinstance(m, dict) and m.get("id"))
        except SourceError as exc:
            if "E0000007" not in str(exc):
                raise
            # Deleted between the group list and its members: the next read sees it gone.
            return RecordRejected("group", group_id, f"the group disappeared while it was read: {exc}")
        return GroupUpserted(_source_group(item), added_users=frozenset(members), replace_members=True)

    def _deletions(self, since: datetime, until: datetime) -> list[tuple[str, datetime, str, str]] | None:
        """Permanent deletes from the System Log, oldest first; None when the log cannot be read."""
        if LOG_SCOPE not in self._scopes and not self.settings.api_token:
            return None
        params = {
            "since": _okta_time(since),
            # Bounded (since and until): ordered by `published`, and the last page has no next link.
            "until": _okta_time(until + timedelta(seconds=1)),
            "filter": f'eventType eq "{USER_DELETED}" or eventType eq "{GROUP_DELETED}"',
            "limit": "1000",
        }
        found: list[tuple[str, datetime, str, str]] = []
        try:
            for page in self._pages("/api/v1/logs", params, "System Log", accept_forbidden=True):
                for event in page:
                    parsed = _deletion(event)
                    if parsed is not None:
                        found.append(parsed)
        except _Forbidden:
            return None
        except SourceError as exc:
            if "E0000053" in str(exc) and "since" in str(exc):
                raise _LogWindowPassed(
                    f"Okta's System Log no longer reaches back to the last sync ({_okta_time(since)})"
                ) from None
            raise
        return found

    def _log_readable(self) -> bool:
        if LOG_SCOPE not in self._scopes and not self.settings.api_token:
            return False
        try:
            since = _okta_time(self._server_now() - timedelta(minutes=5))
            for _ in self._pages("/api/v1/logs", {"since": since, "limit": "1"}, "System Log", accept_forbidden=True):
                break
        except _Forbidden:
            return False
        return True

    # ------------------------------------------------------------ cursor

    def _cursor(
        self,
        mark: datetime,
        recent_users: dict[str, str],
        recent_groups: dict[str, list[str]],
        recent_events: list[str],
        log_readable: bool,
    ) -> dict[str, Any]:
        return {
            "version": _CURSOR_VERSION,
            "org_url": self.settings.org_url,
            "include_everyone_group": self.settings.include_everyone_group,
            "since": _okta_time(mark),
            # Objects and log events inside the overlap, as last seen: the next read skips their replays.
            "recent_users": recent_users,
            "recent_groups": recent_groups,
            "recent_events": recent_events,
            "log_readable": log_readable,
        }

    def _cursor_problem(self, cursor: Mapping[str, Any] | None) -> str | None:
        if cursor is None:
            return None
        if cursor.get("version") != _CURSOR_VERSION or _parse_time_or_none(str(cursor.get("since"))) is None:
            return "the stored cursor is from another version; reading everything again (full read)"
        if cursor.get("org_url") != self.settings.org_url:
            return "the Okta org changed since the last sync; reading everything again (full read)"
        if bool(cursor.get("include_everyone_group")) != self.settings.include_everyone_group:
            return "the Everyone group setting changed; reading everything again (full read)"
        return None

    # ------------------------------------------------------------ HTTP

    def _type_filter(self) -> str:
        types = (*SYNCED_GROUP_TYPES, "BUILT_IN") if self.settings.include_everyone_group else SYNCED_GROUP_TYPES
        return " or ".join(f'type eq "{t}"' for t in types)

    def _synced(self, group: Mapping[str, Any]) -> bool:
        kind = group.get("type")
        return kind in SYNCED_GROUP_TYPES or (kind == "BUILT_IN" and self.settings.include_everyone_group)

    def _pages(
        self, path: str, params: Mapping[str, str], what: str, *, accept_forbidden: bool = False
    ) -> Iterator[list[Any]]:
        """Every page of a list, following `Link: rel="next"` as given; a repeated link is an error."""
        url = f"{self.settings.org_url}{path}"
        guard = PageGuard(f"Okta {what}", self.settings.org_url)
        query: Mapping[str, str] | None = params
        while True:
            items, response = self._get_list(url, query, accept_forbidden=accept_forbidden)
            guard.served(str(item.get("id") or item.get("uuid") or "") for item in items if isinstance(item, dict))
            yield items
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            guard.visit(link)
            url, query = link, None

    def _get_list(
        self, url: str, params: Mapping[str, str] | None, *, accept_forbidden: bool = False
    ) -> tuple[list[Any], httpx.Response]:
        accept = (401, 403) if accept_forbidden else (401,)
        for attempt in (1, 2):
            headers = {"Authorization": self._authorization(refresh=attempt == 2), "Accept": "application/json"}
            response = self._api.request("GET", url, params=params, headers=headers, accept=accept)
            if response.status_code == 401 and attempt == 1 and not self.settings.api_token:
                log.info("okta.token_refused", request_id=response.headers.get("x-okta-request-id"))
                continue
            if response.status_code == 403:
                raise _Forbidden()
            if response.status_code == 401:
                raise self._okta_error(response) or AuthenticationError("Okta refused the credentials")
            try:
                body = response.json()
            except ValueError:
                if not self._answered:
                    raise self._not_okta(response) from None
                # Okta answered this read before: a page cut short or replaced on the way is not a wrong URL.
                raise SourceError(
                    f"Okta sent a page of {urlsplit(url).path} that is not JSON (cut short or replaced on the way): "
                    f"{self._api.snippet(response, 120)}{_request_id(response)}",
                    hint="nothing was applied; the next sync reads again",
                ) from None
            if not isinstance(body, list):
                raise SourceError(
                    f"Okta sent {type(body).__name__} where a list was expected for {urlsplit(url).path}"
                    f"{_request_id(response)}"
                )
            self._answered = True
            return body, response
        raise AssertionError("unreachable")

    def _server_now(self) -> datetime:
        """Now on Okta's clock when it says (the `Date` of a cheap request), else here; never later than here."""
        local = datetime.now(UTC)
        try:
            response = self._api.request(
                "GET", f"{self.settings.org_url}/.well-known/okta-organization", raise_for_status=False
            )
            stamp = parsedate_to_datetime(response.headers.get("date", ""))
        except (TypeError, ValueError, IndexError):
            return local
        return min(local, stamp.astimezone(UTC))

    def _identify_org(self) -> str:
        """Confirm an Okta org answers at org_url (its public metadata), or say what answers instead."""
        org = self.settings.org_url
        response = self._api.request("GET", f"{org}/.well-known/okta-organization", raise_for_status=False)
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("id"):
            raise ConfigurationError(
                f"no Okta org answers at {org} (its /.well-known/okta-organization answered "
                f"{response.status_code}){_request_id(response)}",
                field="connection.org_url",
                hint="give your org's address as it appears before /admin, like https://acme.okta.com",
            )
        canonical = ((body.get("_links") or {}).get("organization") or {}).get("href")
        detail = f"Okta org {body['id']} at {org}"
        if canonical and str(canonical).rstrip("/") != org:
            detail += f" (its own address is {canonical})"
        return detail

    def _authorization(self, refresh: bool = False) -> str:
        if self.settings.api_token:
            return f"SSWS {self.settings.api_token}"
        if refresh or self._token is None or time.monotonic() >= self._token_expires:
            self._fetch_token()
        return f"Bearer {self._token}"

    def _fetch_token(self) -> None:
        """Client credentials with a private_key_jwt assertion against the org authorization server."""
        token_url = f"{self.settings.org_url}/oauth2/v1/token"
        assert self.settings.private_key and self.settings.client_id
        key, algorithm = load_signing_key(self.settings.private_key)
        while True:
            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": self.settings.client_id,
                    "sub": self.settings.client_id,
                    "aud": token_url,
                    "iat": now,
                    "exp": now + 300,
                    "jti": uuid.uuid4().hex,
                },
                key,
                algorithm=algorithm,
                headers={"kid": self.settings.key_id} if self.settings.key_id else None,
            )
            response = self._api.request(
                "POST",
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": " ".join(self._scopes),
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion,
                },
                headers={"Accept": "application/json"},
                accept=(400, 401, 403),
            )
            body: Any
            try:
                body = response.json()
            except ValueError:
                raise self._not_okta(response) from None
            if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in") or 3600)
                self._token_expires = time.monotonic() + max(30.0, lifetime - 60.0)
                return
            error = str(body.get("error") or "") if isinstance(body, dict) else ""
            description = str(body.get("error_description") or "") if isinstance(body, dict) else ""
            if error == "invalid_scope" and LOG_SCOPE in self._scopes:
                # The System Log scope is optional: without it, deletes wait for the periodic full read.
                log.info("okta.no_log_scope", client_id=self.settings.client_id)
                self._scopes = REQUIRED_SCOPES
                continue
            raise self._token_error(error, description, response)

    def _token_error(self, error: str, description: str, response: httpx.Response) -> AccessIQError:
        client = self.settings.client_id
        detail = f"{error}: {description}" if description else error or f"HTTP {response.status_code}"
        rid = _request_id(response)
        if error == "invalid_scope":
            return PermissionDeniedError(
                f"Okta will not grant service app {client} the scopes {' '.join(REQUIRED_SCOPES)} ({detail}){rid}",
                hint="grant okta.users.read and okta.groups.read on the app's Okta API Scopes tab",
            )
        if error in ("invalid_client", "unauthorized_client", "invalid_request"):
            return AuthenticationError(
                f"Okta refused service app {client}'s client assertion ({detail}){rid}",
                hint="check connection.client_id, and that the public key of connection.private_key is "
                "registered with the app (Client authentication: Public key / Private key"
                + (f", kid {self.settings.key_id}" if self.settings.key_id else "")
                + ")",
            )
        if response.status_code == 404:
            return self._not_okta(response)
        return AuthenticationError(f"Okta sign-in failed ({detail}){rid}")

    def _not_okta(self, response: httpx.Response) -> ConfigurationError:
        return ConfigurationError(
            f"{self.settings.org_url} answered {response.status_code} to {urlsplit(str(response.url)).path} "
            f"with something that is not Okta's API: {self._api.snippet(response, 120)}",
            field="connection.org_url",
            hint="give your Okta org URL, like https://acme.okta.com",
        )

    def _okta_error(self, response: httpx.Response) -> AccessIQError | None:
        """Turn Okta's error envelope into the error an admin can act on; every one names the request id."""
        status = response.status_code
        code, summary = _envelope(response)
        rid = _request_id(response)
        path = urlsplit(str(response.url)).path
        what = "the System Log" if "/logs" in path else "groups" if "/groups" in path else "users"
        oauth = not self.settings.api_token
        if status == 401:
            if oauth:
                return AuthenticationError(
                    f"Okta refused the service app's access token ({code or 401}: {summary}){rid}",
                    hint="check the service app is active and its client credentials are current",
                )
            return AuthenticationError(
                f"Okta refused the API token ({code or 401}: {summary}): it is wrong, revoked, or expired after "
                f"30 days without use{rid}",
                hint="create a new token in Security > API > Tokens and set connection.api_token",
            )
        if status == 403:
            challenge = response.headers.get("www-authenticate", "")
            scope = re.search(r'scope="([^"]+)"', challenge)
            if "insufficient_scope" in challenge and scope:
                return PermissionDeniedError(
                    f"service app {self.settings.client_id}'s token lacks the scope {scope.group(1)} to read "
                    f"{what}{rid}",
                    hint=f"grant {scope.group(1)} on the app's Okta API Scopes tab",
                )
            who = f"service app {self.settings.client_id}" if oauth else "the API token's administrator"
            return PermissionDeniedError(
                f"{who} has no admin role that may read {what} ({code or 403}: {summary}){rid}",
                hint="assign the Read-only Administrator role"
                + (" to the service app (Admin roles tab)" if oauth else " and create the token as that admin"),
            )
        if status == 404 and not code:
            return self._not_okta(response)
        if status == 400 and code == "E0000053":
            return SourceError(f"Okta refused a filter of {path} ({code}: {summary}){rid}")
        if status in self._options.retry.statuses:
            return TransientError(
                f"Okta kept answering {status} {code} to {path} after {self._options.retry.attempts} attempts"
                f" ({summary}){rid}",
                hint="Okta is throttling or unavailable; the next run retries",
            )
        return SourceError(f"Okta answered {status} {code} to {path}: {summary or self._api.snippet(response)}{rid}")


class _Forbidden(Exception):
    """A 403 on an optional read (the System Log)."""


class _LogWindowPassed(Exception):
    """The System Log refuses a `since` older than its window (E0000053): the cursor has expired."""


# ---------------------------------------------------------------------- records


def _user_event(item: Any) -> SourceEvent:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        return RecordRejected("user", None, "Okta sent a user without an id")
    if not isinstance(item.get("profile"), dict):
        return RecordRejected("user", item["id"], "Okta sent a user without a profile")
    status = str(item.get("status") or "")
    # Links and credentials are Okta's plumbing, not attributes to map.
    record = {k: v for k, v in item.items() if k not in ("_links", "_embedded", "credentials")}
    return UserUpserted(SourceUser(external_id=item["id"], data=record, active=status in ACTIVE_STATUSES))


def _source_group(item: Mapping[str, Any]) -> SourceGroup:
    profile = item.get("profile") if isinstance(item.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    return SourceGroup(
        external_id=str(item["id"]),
        name=str(profile.get("name") or item["id"]),
        description=profile.get("description") or None,
    )


def _deletion(event: Any) -> tuple[str, datetime, str, str] | None:
    """(uuid, published, event type, deleted id) of a delete event; None for anything else."""
    if not isinstance(event, dict) or event.get("eventType") not in (USER_DELETED, GROUP_DELETED):
        return None
    outcome = event.get("outcome")
    if (outcome.get("result") if isinstance(outcome, dict) else outcome) not in (None, "SUCCESS"):
        return None
    wanted = "User" if event["eventType"] == USER_DELETED else "UserGroup"
    published = _parse_time_or_none(str(event.get("published")))
    targets = event.get("target")
    for target in targets if isinstance(targets, list) else []:
        if isinstance(target, dict) and target.get("type") == wanted and target.get("id") and published:
            return str(event.get("uuid") or target["id"]), published, str(event["eventType"]), str(target["id"])
    return None


def _note_recent(recent: dict[str, str], item: Any, mark: datetime) -> None:
    stamp = _parse_time_or_none(str(item.get("lastUpdated"))) if isinstance(item, dict) else None
    if stamp is not None and stamp >= mark:
        recent[str(item["id"])] = str(item["lastUpdated"])


def _note_recent_group(recent: dict[str, list[str]], item: Mapping[str, Any], mark: datetime) -> None:
    stamps = [str(item.get("lastUpdated")), str(item.get("lastMembershipUpdated"))]
    if any(stamp is not None and stamp >= mark for stamp in map(_parse_time_or_none, stamps)):
        recent[str(item["id"])] = stamps


def _envelope(response: httpx.Response) -> tuple[str, str]:
    """(`errorCode`, `errorSummary` with its causes) of Okta's error envelope; empty when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    summary = str(body.get("errorSummary") or "")
    causes = [str(c.get("errorSummary")) for c in body.get("errorCauses") or [] if isinstance(c, dict)]
    if causes:
        summary += f" ({'; '.join(causes)})"
    return str(body.get("errorCode") or ""), summary


def _request_id(response: httpx.Response) -> str:
    rid = response.headers.get("x-okta-request-id")
    return f" [Okta request id {rid}]" if rid else ""


def _okta_time(moment: datetime) -> str:
    """`yyyy-MM-dd'T'HH:mm:ss.SSSZ`, the only date format Okta's filters take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _parse_time_or_none(text: str) -> datetime | None:
    try:
        return _parse_time(text)
    except (ValueError, OverflowError):  # not a time; a time that leaves the calendar in UTC
        return None
