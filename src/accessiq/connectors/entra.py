"""The `entra` provider: Microsoft Entra ID over Microsoft Graph, app-only.

Tokens come from MSAL's client-credentials flow (a secret or a certificate).
Users and groups are read with Graph delta queries: the first round is the full
read, later rounds bring only what changed, and the two deltaLinks become the
cursor. Wire facts this module relies on are in `reference/provider-apis.md` §1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import msal
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
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
from accessiq.connectors.http import HttpClient, HttpOptions, PageGuard
from accessiq.endpoints import EndpointAllowList, is_loopback, origin_of
from accessiq.errors import (
    AccessIQError,
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SourceError,
    TransientError,
)

log = structlog.get_logger(__name__)

# What the connector reads for itself, whatever the mapping: identity, enabled
# state, and the two fields the default email fallback needs.
REQUIRED_USER_FIELDS = ("id", "accountEnabled", "mail", "userPrincipalName")
GROUP_SELECT = ("displayName", "description", "mail", "members")
# Graph returns these for a single user only; selecting one on a collection is a 501.
NON_COLLECTION_USER_FIELDS = frozenset(
    {
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
        "mailboxSettings",
    }
)
# The Graph user properties `$select` accepts (v1.0); any other name fails every read with a 400.
USER_PROPERTIES = UserFields(
    frozenset(
        {
            "accountEnabled", "ageGroup", "assignedLicenses", "businessPhones", "city", "companyName", "country",
            "createdDateTime", "creationType", "deletedDateTime", "department", "displayName", "employeeHireDate",
            "employeeId", "employeeLeaveDateTime", "employeeOrgData", "employeeType", "externalUserState",
            "faxNumber", "givenName", "id", "identities", "imAddresses", "isResourceAccount", "jobTitle",
            "lastPasswordChangeDateTime", "legalAgeGroupClassification", "mail", "mailNickname", "mobilePhone",
            "officeLocation", "onPremisesDistinguishedName", "onPremisesDomainName",
            "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
            "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
            "onPremisesUserPrincipalName", "otherMails", "passwordPolicies", "postalCode", "preferredDataLocation",
            "preferredLanguage", "proxyAddresses", "securityIdentifier", "showInAddressList",
            "signInSessionsValidFromDateTime", "state", "streetAddress", "surname", "usageLocation",
            "userPrincipalName", "userType",
        }
    ),
    # Directory extensions: extension_{app id}_{name}.
    open_prefixes=("extension_",),
    unreadable=dict.fromkeys(
        NON_COLLECTION_USER_FIELDS, "Microsoft Graph returns it for one user at a time, never in the lists a sync reads"
    ),
)
USER_PERMISSION = "User.Read.All"
GROUP_PERMISSION = "GroupMember.Read.All"
# Any of these grants what the permission above grants, so none of them is "missing".
_USER_EQUIVALENTS = frozenset({USER_PERMISSION, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
_GROUP_EQUIVALENTS = frozenset(
    {
        GROUP_PERMISSION,
        "GroupMember.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_CURSOR_VERSION = 1
_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class EntraConnection(ConnectionSettings):
    """Connection block of an `entra` directory: the app registration and the cloud's endpoints."""

    secret_fields: ClassVar[tuple[str, ...]] = ("client_secret", "certificate")
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("client_secret", "certificate"),)
    # Microsoft's own clouds: global, US Government (L4 and DoD) and China (21Vianet).
    public_endpoints: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "authority_url": (
            "https://login.microsoftonline.com",
            "https://login.microsoftonline.us",
            "https://login.chinacloudapi.cn",
            "https://login.partner.microsoftonline.cn",
        ),
        "graph_url": (
            "https://graph.microsoft.com",
            "https://graph.microsoft.us",
            "https://dod-graph.microsoft.us",
            "https://microsoftgraph.chinacloudapi.cn",
        ),
    }

    tenant_id: str = Field(
        title="Directory (tenant) ID",
        description="The tenant's ID (a GUID) or one of its verified domains, such as contoso.onmicrosoft.com.",
    )
    client_id: str = Field(
        title="Application (client) ID",
        description="The app registration's application ID, on its Overview page in the Entra admin center.",
    )
    client_secret: str | None = Field(
        default=None,
        repr=False,
        title="Client secret",
        description="A client secret's Value (not its Secret ID) from the app registration's Certificates & "
        "secrets page.",
    )
    certificate: str | None = Field(
        default=None,
        repr=False,
        title="Certificate",
        description="When the app registration authenticates with a certificate: its private key and the "
        "certificate, both in PEM (-----BEGIN PRIVATE KEY----- … -----BEGIN CERTIFICATE----- …).",
        json_schema_extra={"kind": "multiline_secret"},
    )
    authority_url: str = Field(
        default="https://login.microsoftonline.com",
        title="Sign-in endpoint (national clouds)",
        description="Change only for a national cloud, e.g. https://login.microsoftonline.us for US Government.",
        json_schema_extra={"kind": "url"},
    )
    graph_url: str = Field(
        default="https://graph.microsoft.com",
        title="Microsoft Graph endpoint",
        description="Change only for a national cloud, e.g. https://graph.microsoft.us for US Government L4.",
        json_schema_extra={"kind": "url"},
    )

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _required_text(cls, value: str, info: Any) -> str:
        value = value.strip()
        if not value or "/" in value or any(ch.isspace() for ch in value):
            what = (
                "the directory (tenant) ID or a verified domain"
                if info.field_name == "tenant_id"
                else "the application (client) ID of the app registration"
            )
            raise ConfigurationError(f"give {what}", field=f"connection.{info.field_name}")
        return value

    @field_validator("authority_url", "graph_url")
    @classmethod
    def _endpoint(cls, value: str, info: Any) -> str:
        name = f"connection.{info.field_name}"
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"{value!r} is not an http(s) URL", field=name)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigurationError(
                f"plain http:// is refused for {parts.hostname}: credentials and directory data would travel "
                "unencrypted; use https:// (plain http is accepted only for loopback sandboxes)",
                field=name,
            )
        if parts.query or parts.fragment or parts.path.strip("/"):
            raise ConfigurationError(
                f"give the base URL only, like https://{parts.hostname}, without path or query", field=name
            )
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("certificate")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        _load_certificate(value)
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> EntraConnection:
        if bool(self.client_secret) == bool(self.certificate):
            which = "not both" if self.client_secret else "one of the two is required"
            raise ConfigurationError(
                f"give exactly one credential, a client secret or a certificate (PEM private key and certificate): "
                f"{which}",
                field="connection.client_secret" if not self.client_secret else "connection.certificate",
            )
        return self


@dataclass
class _GroupRound:
    """One group's merged state over a delta round: later pages and replays fold in idempotently."""

    props: dict[str, Any] = field(default_factory=dict)
    users: dict[str, bool] = field(default_factory=dict)  # member id -> present
    groups: dict[str, bool] = field(default_factory=dict)
    removed: bool = False


class _DeltaExpired(Exception):
    """Graph no longer knows the delta state behind a token; a full round must follow."""


class _RoundExpired(Exception):
    """The delta state expired in the middle of a round: what the round read so far is void."""


NO_CURSOR_NOTE = "no cursor: reading every user and group (full round)"


class EntraConnector(Connector):
    """Reads users, groups and direct memberships from Microsoft Graph with delta queries."""

    provider = "entra"
    title = "Microsoft Entra ID"
    description = "Azure AD tenants through Microsoft Graph (app registration)."
    sandbox = "accessiq.sandbox.entra_commands:SANDBOX"
    settings_model = EntraConnection
    incremental = True
    tenant_fields = ("tenant_id", "graph_url")
    ordinary_notes = (NO_CURSOR_NOTE,)
    default_mapping = {
        "email": "{{ (mail or userPrincipalName) | lower }}",
        "username": "userPrincipalName",
        "given_name": "givenName",
        "family_name": "surname",
        "display_name": "displayName",
    }
    example_fields = ("department", "employeeOrgData.costCenter")
    user_fields = USER_PROPERTIES

    settings: EntraConnection

    def __init__(
        self,
        settings: EntraConnection,
        *,
        fields: Collection[str] = (),
        http: HttpOptions | None = None,
        allowed_endpoints: EndpointAllowList | None = None,
    ) -> None:
        # Only names Graph could have as properties reach $select (a template may mention other words).
        super().__init__(
            settings, fields=[f for f in fields if _PROPERTY_NAME.fullmatch(f)], allowed_endpoints=allowed_endpoints
        )
        self._options = http or HttpOptions()
        self._graph = HttpClient(
            "Microsoft Graph",
            self._options,
            origin=settings.graph_url,
            show_bodies=self.trusts(settings.graph_url),
            describe_error=self._graph_error,
        )
        # Pinned to the authority: the client secret never goes to a token endpoint that
        # the OpenID configuration places on another origin.
        self._login = HttpClient(
            "Microsoft Entra sign-in",
            self._options,
            origin=settings.authority_url,
            show_bodies=self.trusts(settings.authority_url),
        )
        self._msal_http = _MsalHttp(self._login, settings.authority_url)
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None

    # ------------------------------------------------------------ public API

    @property
    def user_select(self) -> tuple[str, ...]:
        """`$select` for users: the mapping's fields plus what the connector needs, `id` first."""
        wanted = set(self.fields) or {name for source in self.default_mapping.values() for name in _names_in(source)}
        wanted |= set(REQUIRED_USER_FIELDS)
        wanted.discard("id")
        return ("id", *sorted(wanted))

    def check(self) -> CheckResult:
        token = self._access_token()
        details = [f"signed in to tenant {self.settings.tenant_id} as application {self.settings.client_id}"]
        roles = _token_roles(token)
        if roles is not None:
            details.append("application permissions with admin consent: " + (", ".join(sorted(roles)) or "none"))
            extra = sorted(r for r in roles if "ReadWrite" in r)
            if extra:
                details.append(f"the app also holds write permissions it does not need: {', '.join(extra)}")
        # The users probe uses the real $select, so a mapping field Graph rejects shows up here.
        users, _ = self._graph_get(f"{self._base}/users", {"$select": ",".join(self.user_select), "$top": "1"})
        details.append(f"users readable ({len(self.user_select)} fields selected)")
        groups, _ = self._graph_get(f"{self._base}/groups", {"$select": "id,displayName", "$top": "1"})
        sample = groups.get("value") or []
        if sample and isinstance(sample[0], dict) and sample[0].get("id"):
            self._graph_get(f"{self._base}/groups/{sample[0]['id']}/members", {"$select": "id", "$top": "1"})
            details.append("groups and group members readable")
        else:
            details.append("groups readable (the directory has no group to test members with)")
        if not users.get("value"):
            details.append("the directory returned no users")
        return CheckResult(ok=True, details=details)

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        users_first: dict[str, Any] | None = None
        groups_first: dict[str, Any] | None = None
        note = self._cursor_problem(cursor)
        full = note is not None
        if cursor is not None and not full:
            # Both first pages come before ReadStarted: an expired token must turn this
            # into a full read before any event says otherwise.
            try:
                users_first = self._delta_page(str(cursor["users_delta"]))
                groups_first = self._delta_page(str(cursor["groups_delta"]))
            except _DeltaExpired as exc:
                full, note = True, f"{exc}; reading everything again (full round)"
                log.info("entra.delta_expired", reason=str(exc))
        if full:
            users_first = self._first_round("users", {"$select": ",".join(self.user_select)})
        yield ReadStarted(full=full, note=note)
        assert users_first is not None
        try:
            users_link, groups_link = yield from self._rounds(users_first, groups_first, full)
        except _RoundExpired as exc:
            # Start over with a full round, once: a read that starts again in full makes the
            # engine forget every event of this one.
            log.info("entra.delta_expired_mid_round", reason=str(exc))
            yield ReadStarted(full=True, note=f"{exc}; reading everything again (full round)")
            try:
                users_first = self._first_round("users", {"$select": ",".join(self.user_select)})
                users_link, groups_link = yield from self._rounds(users_first, None, True)
            except _RoundExpired as again:
                raise TransientError(
                    f"{again}, and again in the full round that followed",
                    hint="nothing was applied; the next sync reads everything again",
                ) from None
        yield ReadFinished(
            cursor={
                "version": _CURSOR_VERSION,
                "graph_url": self.settings.graph_url,
                "tenant_id": self.settings.tenant_id,
                "users_select": list(self.user_select),
                "users_delta": users_link,
                "groups_delta": groups_link,
            }
        )

    def _rounds(
        self, users_first: dict[str, Any], groups_first: dict[str, Any] | None, full: bool
    ) -> Generator[SourceEvent, None, tuple[str, str]]:
        """The users round, then the groups round; their deltaLinks."""
        users_link = yield from self._stream_users(users_first)
        if groups_first is None:
            groups_first = self._first_round("groups", {"$select": ",".join(GROUP_SELECT)})
        groups_link = yield from self._stream_groups(groups_first, full)
        return users_link, groups_link

    def list_groups(self) -> Iterator[SourceGroup]:
        """Every group with its name, from `/groups` (one cheap list, no membership)."""
        url: str | None = f"{self._base}/groups"
        params: dict[str, str] | None = {"$select": "id,displayName,description,mail", "$top": "999"}
        guard = PageGuard("Microsoft Graph /groups", self.settings.graph_url)
        while url:
            body, _ = self._graph_get(url, params)
            for item in _values(body):
                if isinstance(item, dict) and item.get("id"):
                    yield _source_group(str(item["id"]), item)
            url, params = body.get("@odata.nextLink"), None
            if url:
                guard.visit(url)

    def close(self) -> None:
        self._graph.close()
        self._login.close()

    # ------------------------------------------------------------ delta rounds

    @property
    def _base(self) -> str:
        return f"{self.settings.graph_url}/v1.0"

    def _cursor_problem(self, cursor: Mapping[str, Any] | None) -> str | None:
        """Why a cursor cannot continue (so the read is full), or None when it can."""
        if cursor is None:
            return NO_CURSOR_NOTE
        if cursor.get("version") != _CURSOR_VERSION or not cursor.get("users_delta") or not cursor.get("groups_delta"):
            return "the stored cursor is from another version; reading everything again (full round)"
        if (
            cursor.get("graph_url") != self.settings.graph_url
            or cursor.get("tenant_id") != self.settings.tenant_id
            or {origin_of(str(cursor["users_delta"])), origin_of(str(cursor["groups_delta"]))}
            != {origin_of(self.settings.graph_url)}
        ):
            return "the tenant or Graph endpoint changed since the last sync; reading everything again (full round)"
        if list(cursor.get("users_select") or []) != list(self.user_select):
            # Graph tracks only the properties a round selected: new fields need a new round.
            added = sorted(set(self.user_select) - set(cursor.get("users_select") or []))
            what = f"needs {', '.join(added)}" if added else "selects fewer fields"
            return f"the attribute mapping now {what}; reading everything again (full round)"
        return None

    def _first_round(self, kind: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            return self._delta_page(f"{self._base}/{kind}/delta", params)
        except _DeltaExpired as exc:
            raise SourceError(f"Microsoft Graph refused a first delta round for {kind}: {exc}") from None

    def _delta_page(self, url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        body, response = self._graph_get(url, params, accept=(400, 410))
        if response.status_code in (400, 410):
            code, message = _graph_code(response, self._graph)
            if response.status_code == 410 or code.lower() in ("syncstatenotfound", "resyncrequired"):
                detail = f"{response.status_code} {code or 'Gone'}"
                if response.headers.get("location"):
                    detail += " with a Location to start over from"
                raise _DeltaExpired(f"Microsoft Graph expired the delta state ({detail})")
            raise self._graph_error(response) or SourceError(f"Microsoft Graph answered 400 {code}: {message}")
        return body

    def _next_page(self, link: str, kind: str) -> dict[str, Any]:
        try:
            return self._delta_page(link)
        except _DeltaExpired as exc:
            # Events of this round are already out: they are void, and the read starts over.
            raise _RoundExpired(f"{exc} in the middle of reading {kind}") from None

    def _stream_users(self, page: dict[str, Any]) -> Generator[SourceEvent, None, str]:
        guard = PageGuard("Microsoft Graph users delta", self.settings.graph_url)
        # id -> digest of what was last yielded, so replayed entries are not sent twice.
        sent: dict[str, bytes] = {}
        while True:
            for item in _values(page):
                user_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(user_id, str) or not user_id:
                    yield RecordRejected("user", None, "Microsoft Graph sent a users delta entry without an id")
                    continue
                if "@removed" in item:
                    if sent.get(user_id) != b"removed":
                        sent[user_id] = b"removed"
                        yield UserRemoved(user_id)
                    continue
                record = {k: v for k, v in item.items() if "@" not in k}
                digest = hashlib.blake2b(
                    json.dumps(record, sort_keys=True, default=str).encode(), digest_size=12
                ).digest()
                if sent.get(user_id) == digest:
                    continue
                sent[user_id] = digest
                yield UserUpserted(
                    SourceUser(external_id=user_id, data=record, active=record.get("accountEnabled") is not False)
                )
            link = _follow(page, guard, "users")
            if link.delta:
                return link.url
            page = self._next_page(link.url, "users")

    def _stream_groups(self, page: dict[str, Any], full: bool) -> Generator[SourceEvent, None, str]:
        guard = PageGuard("Microsoft Graph groups delta", self.settings.graph_url)
        merged: dict[str, _GroupRound] = {}
        while True:
            for item in _values(page):
                group_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(group_id, str) or not group_id:
                    yield RecordRejected("group", None, "Microsoft Graph sent a groups delta entry without an id")
                    continue
                state = merged.setdefault(group_id, _GroupRound())
                if "@removed" in item:
                    state.removed = True
                    continue
                state.removed = False  # restored later in the same round
                state.props.update({k: v for k, v in item.items() if "@" not in k})
                entries = item.get("members@delta") or []
                if not isinstance(entries, list):
                    yield RecordRejected("group", group_id, "members@delta is not a list")
                    continue
                for entry in entries:
                    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                        continue
                    odata_type = str(entry.get("@odata.type", ""))
                    # Contacts, devices and service principals are not people to sync.
                    target = (
                        state.users
                        if odata_type.endswith(".user")
                        else state.groups
                        if odata_type.endswith(".group")
                        else None
                    )
                    if target is not None:
                        target[entry["id"]] = "@removed" not in entry
            link = _follow(page, guard, "groups")
            if link.delta:
                break
            page = self._next_page(link.url, "groups")
        for group_id, state in merged.items():
            if state.removed:
                yield GroupRemoved(group_id)
                continue
            if "displayName" not in state.props:
                # Only a membership slice came for this group: its attributes come from the group itself.
                try:
                    state.props.update(
                        self._graph_get(
                            f"{self._base}/groups/{group_id}", {"$select": "id,displayName,description,mail"}
                        )[0]
                    )
                except SourceError as exc:
                    yield RecordRejected("group", group_id, f"could not read the group's attributes: {exc}")
                    continue
            yield GroupUpserted(
                _source_group(group_id, state.props),
                added_users=frozenset(m for m, present in state.users.items() if present),
                removed_users=frozenset() if full else frozenset(m for m, p in state.users.items() if not p),
                added_groups=frozenset(m for m, present in state.groups.items() if present),
                removed_groups=frozenset() if full else frozenset(m for m, p in state.groups.items() if not p),
                replace_members=full,
            )
        return link.url

    # ------------------------------------------------------------ HTTP and tokens

    def _graph_get(
        self, url: str, params: Mapping[str, str] | None = None, *, accept: tuple[int, ...] = ()
    ) -> tuple[dict[str, Any], httpx.Response]:
        """GET from Graph with a bearer token; a 401 gets one fresh token and one more try."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._access_token(refresh=attempt == 2)}"}
            response = self._graph.request("GET", url, params=params, headers=headers, accept=(401, *accept))
            if response.status_code == 401 and attempt == 1:
                log.info("entra.token_refused", status=401)
                continue
            if response.status_code == 401:
                raise self._graph_error(response) or AuthenticationError("Microsoft Graph refused the access token")
            if response.status_code in accept:
                return {}, response
            return self._graph.json_object(response), response
        raise AssertionError("unreachable")

    def _access_token(self, refresh: bool = False) -> str:
        # MSAL's cache answers most calls and renews a token before it expires, so
        # a read longer than a token's lifetime keeps going.
        app = self._msal_app()
        if refresh:
            # MSAL serves a cached token until it expires; a token Graph refused must not come back.
            app.token_cache = msal.TokenCache()
        try:
            result = app.acquire_token_for_client(scopes=[f"{self._graph_resource}/.default"])
        except AccessIQError:
            raise
        except Exception as exc:  # MSAL raises plain ValueError/RuntimeError for odd answers
            raise AuthenticationError(f"Microsoft Entra sign-in failed: {exc}") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            raise self._sign_in_error(result if isinstance(result, dict) else {})
        self._token = str(token)
        return self._token

    @property
    def _graph_resource(self) -> str:
        # The token audience is the Graph host of the cloud (graph.microsoft.us, …).
        return self.settings.graph_url

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        credential: str | dict[str, str]
        if self.settings.certificate:
            key_pem, cert_pem = _load_certificate(self.settings.certificate)
            credential = {"private_key": key_pem, "public_certificate": cert_pem}
        else:
            credential = str(self.settings.client_secret)
        authority = f"{self._msal_http.msal_origin}/{self.settings.tenant_id}"
        try:
            self._app = msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=credential,
                authority=authority,
                # Sovereign clouds and sandboxes are not in MSAL's list of known hosts;
                # the tenant's OpenID configuration is fetched from the authority itself.
                instance_discovery=False,
                http_client=self._msal_http,
                token_cache=msal.TokenCache(),
            )
        except AccessIQError:
            raise
        except Exception as exc:  # the OpenID metadata lookup failed: usually an unknown tenant
            last = self._msal_http.last_error or {}
            if last:
                raise self._sign_in_error(last) from None
            # MSAL's message quotes the endpoint's answer, which only a trusted endpoint may show.
            detail = str(exc) if self._login.show_bodies else self._login.withheld
            raise AuthenticationError(
                f"Microsoft Entra sign-in at {self.settings.authority_url} could not be set up: {detail}",
                hint="check connection.tenant_id and connection.authority_url",
            ) from None
        return self._app

    def _sign_in_error(self, result: Mapping[str, Any]) -> AccessIQError:
        """Turn an AADSTS answer into the error an admin can act on."""
        codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
        code = codes[0] if codes else 0
        description = str(result.get("error_description") or result.get("error") or "no error description")
        summary = description.split(" Trace ID:")[0].strip()
        tenant, client = self.settings.tenant_id, self.settings.client_id
        where = f"Microsoft Entra sign-in failed (AADSTS{code})" if code else "Microsoft Entra sign-in failed"
        if code in (90002, 900023, 90013):
            return AuthenticationError(
                f"tenant {tenant!r} was not found at {self.settings.authority_url} (AADSTS{code})",
                hint="check connection.tenant_id (the Directory (tenant) ID or a verified domain) and, "
                "for national clouds, connection.authority_url",
            )
        if code in (700016, 900144, 700038):
            return AuthenticationError(
                f"no application with client id {client!r} in tenant {tenant!r} (AADSTS{code})",
                hint="check connection.client_id: the Application (client) ID of the app registration in this tenant",
            )
        if code == 7000215:
            return AuthenticationError(
                f"the client secret is not valid for application {client!r} (AADSTS{code})",
                hint="set connection.client_secret to the secret's Value (not its Secret ID) from "
                "App registrations > Certificates & secrets",
            )
        if code == 7000222:
            return AuthenticationError(
                f"the client secret of application {client!r} has expired (AADSTS{code})",
                hint="create a new client secret and update connection.client_secret",
            )
        if code in (700027, 700024, 700021, 700212, 50027):
            return AuthenticationError(
                f"the certificate credential was refused for application {client!r}: {summary}",
                hint="upload the certificate (public part) to App registrations > Certificates & secrets and "
                "check connection.certificate",
            )
        if code in (1002012, 70011, 500011):
            return ConfigurationError(
                f"Microsoft Entra does not issue tokens for {self._graph_resource} ({summary})",
                field="connection.graph_url",
            )
        if code in (65001, 7000112):
            return PermissionDeniedError(
                f"{where}: {summary}",
                hint=f"grant admin consent for {USER_PERMISSION} and {GROUP_PERMISSION} in "
                "App registrations > "
                "API permissions",
            )
        if code in (90033, 50196) or str(result.get("error")) == "temporarily_unavailable":
            return TransientError(f"{where}: {summary}", hint="Microsoft Entra is busy; the next run retries")
        return AuthenticationError(f"{where}: {summary}")

    def _graph_error(self, response: httpx.Response) -> AccessIQError | None:
        """Turn a Graph error envelope into the error an admin can act on."""
        status = response.status_code
        code, message = _graph_code(response, self._graph)
        path = urlsplit(str(response.url)).path
        if status == 401:
            return AuthenticationError(
                f"Microsoft Graph refused the access token ({code}: {message})",
                hint="check that connection.graph_url belongs to the same cloud as connection.authority_url",
            )
        if status == 403:
            return self._permission_error(path, code, message)
        if status == 501:
            return ConfigurationError(
                f"Microsoft Graph cannot return some selected user field in a list ({message}); remove "
                f"{', '.join(sorted(NON_COLLECTION_USER_FIELDS & set(self.user_select))) or 'it'} "
                "from the attribute mapping",
                field="settings.attribute_mapping",
            )
        if status == 400 and "Could not find a property named" in message:
            return ConfigurationError(
                f"Microsoft Graph has no such user field: {message}", field="settings.attribute_mapping"
            )
        if status in self._options.retry.statuses:
            return TransientError(
                f"Microsoft Graph kept answering {status} {code} to {path} after "
                f"{self._options.retry.attempts} attempts",
                hint="Graph is throttling or unavailable; the next run retries",
            )
        return None

    def _permission_error(self, path: str, code: str, message: str) -> PermissionDeniedError:
        wanted, equivalents = (
            (USER_PERMISSION, _USER_EQUIVALENTS) if "/users" in path else (GROUP_PERMISSION, _GROUP_EQUIVALENTS)
        )
        roles = _token_roles(self._token) if self._token else None
        client = self.settings.client_id
        if roles is not None and not roles:
            return PermissionDeniedError(
                f"application {client} has no admin-consented Microsoft Graph application permissions, so it "
                f"lacks {wanted} ({code}: {message})",
                hint="in App registrations > API permissions add Application permissions "
                f"{USER_PERMISSION} and "
                f"{GROUP_PERMISSION}, then Grant admin consent",
            )
        held = f"; it holds {', '.join(sorted(roles))}" if roles and not roles & equivalents else ""
        return PermissionDeniedError(
            f"application {client} lacks the Microsoft Graph application permission {wanted} "
            f"(needed for {path}; {code}: {message}){held}",
            hint=f"in App registrations > API permissions add Microsoft Graph > Application permissions > "
            f"{wanted}, then Grant admin consent",
        )


# ---------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Link:
    url: str
    delta: bool


def _follow(page: Mapping[str, Any], guard: PageGuard, kind: str) -> _Link:
    """The page's nextLink or deltaLink; Graph sends exactly one of them."""
    next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
    if bool(next_link) == bool(delta_link):
        raise SourceError(
            f"Microsoft Graph sent a {kind} delta page with "
            f"{'both' if next_link else 'neither'} @odata.nextLink and @odata.deltaLink"
        )
    if delta_link:
        # Checked now, not when the next run follows it: a cursor never stores a foreign link.
        guard.stays(str(delta_link))
        return _Link(str(delta_link), True)
    guard.visit(str(next_link))
    return _Link(str(next_link), False)


def _values(page: Mapping[str, Any]) -> list[Any]:
    value = page.get("value")
    if not isinstance(value, list):
        raise SourceError("Microsoft Graph sent a page without a 'value' list")
    return value


def _source_group(group_id: str, props: Mapping[str, Any]) -> SourceGroup:
    return SourceGroup(
        external_id=group_id,
        name=str(props.get("displayName") or props.get("mail") or group_id),
        description=props.get("description"),
        email=props.get("mail"),
    )


def _graph_code(response: httpx.Response, http: HttpClient) -> tuple[str, str]:
    """(`error.code`, `error.message`) of a Graph error envelope; the body's start when it is not one."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", http.snippet(response, 200)
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def _token_roles(token: str | None) -> set[str] | None:
    """Application permissions in an access token's `roles` claim; None when the token is opaque."""
    if not token or token.count(".") != 2:
        return None
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return {str(r) for r in roles} if isinstance(roles, list) else set()


def _names_in(source: str) -> set[str]:
    """Top-level names a default mapping value reads (a path, or the identifiers of a template)."""
    if "{{" not in source:
        return {source.split(".")[0]}
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source.replace("| lower", "")))
    return words - {"or", "and", "not", "lower", "if", "else"}


def _load_certificate(pem: str) -> tuple[str, str]:
    """(private key PEM, certificate PEM) from one PEM bundle, or a ConfigurationError."""
    data = pem.encode()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"no unencrypted PEM private key found ({exc})", field="connection.certificate"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigurationError(
            "no PEM certificate found next to the private key; include both blocks",
            field="connection.certificate",
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


class _MsalResponse:
    """The response shape MSAL's pluggable HTTP client returns."""

    def __init__(self, response: httpx.Response, rewrite: tuple[str, str] | None) -> None:
        self.status_code = response.status_code
        self.headers = dict(response.headers)
        text = response.text
        if rewrite:
            text = text.replace(rewrite[0], rewrite[1])
        self.text = text

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise TransientError(f"Microsoft Entra sign-in answered {self.status_code}", hint="the next run retries")


class _MsalHttp:
    """MSAL's HTTP calls through the shared core: same timeouts, retries and unreachable errors.

    MSAL accepts only https:// authorities. For a loopback sandbox on plain http
    (the only http the settings allow) MSAL is given the https spelling and this
    adapter maps it back on the wire, and maps URLs in answers the other way.
    """

    def __init__(self, http: HttpClient, authority_url: str) -> None:
        self._http = http
        self.msal_origin = authority_url
        self._rewrite: tuple[str, str] | None = None
        if authority_url.startswith("http://"):
            self.msal_origin = "https://" + authority_url[len("http://") :]
            self._rewrite = (authority_url, self.msal_origin)
        self.last_error: dict[str, Any] | None = None

    def _wire(self, url: str) -> str:
        if self._rewrite and url.startswith(self._rewrite[1]):
            return self._rewrite[0] + url[len(self._rewrite[1]) :]
        return url

    def _done(self, response: httpx.Response) -> _MsalResponse:
        self.last_error = None
        if response.status_code >= 400:
            try:
                body = response.json()
                self.last_error = body if isinstance(body, dict) else None
            except ValueError:
                self.last_error = None
        return _MsalResponse(response, self._rewrite)

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> _MsalResponse:
        return self._done(
            self._http.request("GET", self._wire(url), params=params, headers=_clean(headers), raise_for_status=False)
        )

    def post(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> _MsalResponse:
        if isinstance(data, Mapping):
            # MSAL hands the client assertion over as bytes (requests encodes those;
            # httpx would send their repr), so form values are decoded here.
            data = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in data.items() if v is not None}
        return self._done(
            self._http.request(
                "POST",
                self._wire(url),
                params=params,
                data=data,
                headers=_clean(headers),
                raise_for_status=False,
            )
        )

    def close(self) -> None:
        """The shared client is closed by the connector."""


def _clean(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in (headers or {}).items() if v is not None}
