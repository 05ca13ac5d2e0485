"""The `google` provider: Google Workspace over the Admin SDK Directory API, read-only.

A service account with domain-wide delegation acts as an administrator (`admin_email`);
google-auth signs its JWT assertion, the shared HTTP core carries it to the token endpoint.
Google has no change feed for users, so every read is full: users (pushed down to the
user filter's org units, one `orgUnitPath` query each), groups, and each group's members,
read concurrently in a bounded pool. Wire facts are in `reference/provider-apis.md` §3.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import structlog
from google.auth import crypt, exceptions, transport
from google.oauth2 import service_account
from pydantic import Field, field_validator

from accessiq.connectors.base import (
    CheckResult,
    ConnectionSettings,
    Connector,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceGroup,
    SourceUser,
    UserFields,
    UserUpserted,
)
from accessiq.connectors.http import HttpClient, HttpOptions, PageGuard, RetryPolicy
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

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
USER_SCOPE = SCOPE_PREFIX + "admin.directory.user.readonly"
GROUP_SCOPE = SCOPE_PREFIX + "admin.directory.group.readonly"
SCOPES = (USER_SCOPE, GROUP_SCOPE)
# Google's quota answers (§3.4): a 403 or 429 that a later try will pass.
QUOTA_REASONS = frozenset({"userRateLimitExceeded", "quotaExceeded", "rateLimitExceeded"})
USERS_PAGE, GROUPS_PAGE, MEMBERS_PAGE = "500", "200", "200"
MEMBER_WORKERS = 8
# Google's documented backoff: 1 s, 2 s, 4 s, ... with random milliseconds, up to 32 s.
GOOGLE_RETRY = RetryPolicy(attempts=7, backoff_base=1.0, backoff_max=32.0)
# Multi-valued user fields whose primary entry a mapping names as `organizations[primary].department`.
PRIMARY_LISTS = ("organizations", "emails", "phones", "addresses", "relations", "externalIds", "locations", "ims")
# The Directory API user resource, plus `NAME[primary]` for each list above (see _user_record).
# Custom schemas are the customer's own, so `customSchemas.` is open.
USER_FIELDS = UserFields(
    frozenset(
        {
            "kind", "id", "etag", "primaryEmail", "name.givenName", "name.familyName", "name.fullName",
            "name.displayName", "isAdmin", "isDelegatedAdmin", "lastLoginTime", "creationTime", "agreedToTerms",
            "suspended", "suspensionReason", "archived", "changePasswordAtNextLogin", "ipWhitelisted", "emails",
            "externalIds", "relations", "addresses", "organizations", "phones", "languages", "aliases",
            "nonEditableAliases", "customerId", "orgUnitPath", "isMailboxSetup", "isEnrolledIn2Sv",
            "isEnforcedIn2Sv", "includeInGlobalAddressList", "thumbnailPhotoUrl", "thumbnailPhotoEtag",
            "customSchemas", "locations", "keywords", "gender", "posixAccounts", "sshPublicKeys", "notes",
            "websites", "ims", "recoveryEmail", "recoveryPhone", "deletionTime",
        }
        | {f"{name}[primary]" for name in PRIMARY_LISTS}
    ),
    open_prefixes=("customSchemas.",),
)
FULL_READ_NOTE = "Google has no change feed for users: every run reads all users and groups (full read)"
_KEY_FIELD = "connection.service_account"
_KEY_HELP = "paste the whole JSON key file (IAM & Admin > Service accounts > Keys > Add key > Create new key > JSON)"


def load_service_account_key(text: str) -> dict[str, Any]:
    """The parsed JSON key of a service account, or a ConfigurationError saying what is wrong with it."""
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"the service account key is not JSON; {_KEY_HELP}", field=_KEY_FIELD) from None
    if not isinstance(info, dict):
        raise ConfigurationError(f"the service account key is not a JSON object; {_KEY_HELP}", field=_KEY_FIELD)
    kind = info.get("type")
    if kind != "service_account":
        what = f"a {kind!r} credential" if isinstance(kind, str) and kind else "not a Google credential"
        raise ConfigurationError(
            f"this JSON is {what}, not a service account key (its type must be 'service_account'); {_KEY_HELP}",
            field=_KEY_FIELD,
        )
    missing = [name for name in ("client_email", "client_id", "private_key") if not info.get(name)]
    if missing:
        raise ConfigurationError(f"the service account key lacks {', '.join(missing)}; {_KEY_HELP}", field=_KEY_FIELD)
    try:
        crypt.RSASigner.from_service_account_info(info)
    except Exception:  # google-auth and cryptography raise several types for a bad PEM
        raise ConfigurationError(
            "the key's private_key is not a readable PEM RSA private key (was the file edited?); "
            "create a new JSON key for the service account",
            field=_KEY_FIELD,
        ) from None
    return info


def _endpoint(value: str, name: str, *, path: bool) -> str:
    """An http(s) URL, https unless loopback; with `path` False only the origin is kept."""
    field_name = f"connection.{name}"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{value!r} is not an http(s) URL", field=field_name)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"plain http:// is refused for {parts.hostname}: use https:// (plain http only for loopback sandboxes)",
            field=field_name,
        )
    if parts.query or parts.fragment or (not path and parts.path.strip("/")):
        example = "https://oauth2.googleapis.com/token" if path else "https://admin.googleapis.com"
        raise ConfigurationError(f"give the URL alone, like {example}", field=field_name)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/') if path else ''}"


class GoogleConnection(ConnectionSettings):
    """Connection block of a `google` directory: the service account, who it acts as, and the endpoints."""

    secret_fields: ClassVar[tuple[str, ...]] = ("service_account",)
    public_endpoints: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "api_url": ("https://admin.googleapis.com",),
        "token_url": ("https://oauth2.googleapis.com",),
    }

    service_account: str = Field(
        repr=False,
        title="Service account key (JSON)",
        description="The JSON key file of a service account whose client ID has domain-wide delegation for "
        f"{USER_SCOPE} and {GROUP_SCOPE} (Admin console > Security > API controls).",
        json_schema_extra={"kind": "multiline_secret"},
    )
    admin_email: str = Field(
        title="Administrator email",
        description="A Workspace administrator the service account acts as; it needs read access to users "
        "and groups (a super admin, or a role with Users and Groups read privileges).",
    )
    customer: str = Field(
        default="my_customer",
        title="Customer ID",
        description="my_customer for the administrator's own account, or a customer ID like C03az79cb "
        "(Admin console > Account > Account settings).",
    )
    api_url: str = Field(
        default="https://admin.googleapis.com",
        title="Directory API URL",
        description="Base URL of the Admin SDK; change it only for a sandbox or a proxy.",
        json_schema_extra={"kind": "url"},
    )
    token_url: str = Field(
        default="https://oauth2.googleapis.com/token",
        title="Token endpoint",
        description="OAuth 2.0 token endpoint the signed assertion goes to; change it only for a sandbox.",
        json_schema_extra={"kind": "url"},
    )

    @field_validator("service_account")
    @classmethod
    def _key(cls, value: str) -> str:
        load_service_account_key(value)
        return value

    @field_validator("admin_email")
    @classmethod
    def _admin(cls, value: str) -> str:
        value = value.strip()
        local, at, domain = value.partition("@")
        if not local or not at or "." not in domain or any(ch.isspace() for ch in value):
            raise ConfigurationError(
                f"{value!r} is not an email address: give an administrator's primary email",
                field="connection.admin_email",
            )
        return value

    @field_validator("customer")
    @classmethod
    def _customer(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value or any(ch.isspace() for ch in value):
            raise ConfigurationError(
                "give my_customer or the account's customer ID (like C03az79cb)", field="connection.customer"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _api(cls, value: str) -> str:
        return _endpoint(value, "api_url", path=False)

    @field_validator("token_url")
    @classmethod
    def _token(cls, value: str) -> str:
        return _endpoint(value, "token_url", path=True)


@dataclass
class _Members:
    """One group's direct members as members.list gives them."""

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    customer: bool = False
    gone: bool = False


class GoogleConnector(Connector):
    """Reads users, groups and direct memberships from the Directory API; every read is full."""

    provider = "google"
    title = "Google Workspace"
    description = "Google Workspace or Cloud Identity through the Admin SDK (service account with delegation)."
    sandbox = "accessiq.sandbox.google_commands:SANDBOX"
    settings_model = GoogleConnection
    incremental = False
    tenant_fields = ("customer", "api_url")
    ordinary_notes = (FULL_READ_NOTE,)
    org_unit_example = "/Sales"
    default_mapping = {
        "email": "{{ primaryEmail | lower }}",
        "username": "primaryEmail",
        "given_name": "name.givenName",
        "family_name": "name.familyName",
        "display_name": "name.fullName",
    }
    example_fields = ("orgUnitPath", "organizations[primary].department")
    user_fields = USER_FIELDS

    settings: GoogleConnection

    @classmethod
    def tenant(cls, connection: Mapping[str, Any]) -> dict[str, str]:
        values = super().tenant(connection)
        # `my_customer` is the admin's own account: the admin's domain names it.
        admin = str(connection.get("admin_email") or "")
        if values.get("customer") == "my_customer" and "@" in admin:
            values["customer"] = admin.rpartition("@")[2].casefold()
        return values

    def __init__(
        self,
        settings: GoogleConnection,
        *,
        fields: Collection[str] = (),
        http: HttpOptions | None = None,
        allowed_endpoints: EndpointAllowList | None = None,
        member_workers: int = MEMBER_WORKERS,
    ) -> None:
        super().__init__(settings, fields=fields, allowed_endpoints=allowed_endpoints)
        self._options = http or HttpOptions(retry=GOOGLE_RETRY)
        self.member_workers = max(1, member_workers)
        self._api = HttpClient(
            "Google Directory API",
            self._options,
            origin=settings.api_url,
            show_bodies=self.trusts(settings.api_url),
            describe_error=self._api_error,
            retry_also=is_quota_error,
        )
        # Pinned to the configured token endpoint: the signed assertion goes nowhere else.
        self._oauth = HttpClient(
            "Google OAuth token endpoint",
            self._options,
            origin=settings.token_url,
            show_bodies=self.trusts(settings.token_url),
        )
        self._key = load_service_account_key(settings.service_account)
        self._credentials: service_account.Credentials | None = None
        self._token_lock = threading.Lock()

    # ------------------------------------------------------------ public API

    @property
    def projection(self) -> str:
        """`full` only when the mapping reads custom schema fields (they cost a bigger answer)."""
        return "full" if "customSchemas" in self.fields else "basic"

    @property
    def query_units(self) -> list[str]:
        """The org units to query: each configured one not already inside another (sub-units come along)."""
        units = sorted({_unit(u) for u in self.org_units if u.strip()})
        return [u for u in units if not any(o != u and _under(u, o) for o in units)]

    def check(self) -> CheckResult:
        self._access_token()
        details = [
            f"service account {self._key['client_email']} signed in acting as {self.settings.admin_email} "
            "(domain-wide delegation, read-only scopes)"
        ]
        body = self._get("users", {**self._user_params(), "maxResults": "1"})
        details.append(f"users readable (projection {self.projection})")
        if not body.get("users"):
            details.append("the account returned no users")
        for unit in self.query_units:
            found = self._get("users", {**self._user_params(unit), "maxResults": "1"})
            details.append(f"org unit {unit}: " + ("has users" if found.get("users") else "exists, no users yet"))
        groups = self._get("groups", {"customer": self.settings.customer, "maxResults": "1"}).get("groups") or []
        if groups and isinstance(groups[0], dict) and groups[0].get("id"):
            self._get(f"groups/{quote(str(groups[0]['id']), safe='')}/members", {"maxResults": "1"})
            details.append("groups and group members readable")
        else:
            details.append("groups readable (the account has no group to test members with)")
        details.append(FULL_READ_NOTE)
        return CheckResult(ok=True, details=details)

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        units = self.query_units
        note = FULL_READ_NOTE
        if units:
            note += f"; users only from org units {', '.join(units)} and their sub-units"
        yield ReadStarted(full=True, note=note)
        known: set[str] = set()
        for event in self._users(units):
            if isinstance(event, UserUpserted):
                known.add(event.user.external_id)
            elif event.external_id:
                known.add(event.external_id)
            yield event
        yield from self._groups_with_members(known)
        yield ReadFinished(cursor=None)

    def list_groups(self) -> Iterator[SourceGroup]:
        """Every group from groups.list (no members)."""
        for item in self._pages("groups", {"customer": self.settings.customer, "maxResults": GROUPS_PAGE}, "groups"):
            if isinstance(item, dict) and item.get("id"):
                yield _source_group(item)

    def close(self) -> None:
        self._api.close()
        self._oauth.close()

    # ------------------------------------------------------------ users

    def _user_params(self, unit: str | None = None) -> dict[str, str]:
        params = {"customer": self.settings.customer, "projection": self.projection}
        if unit is not None:
            params["query"] = f"orgUnitPath={_quoted(unit)}"
        return params

    def _users(self, units: list[str]) -> Iterator[UserUpserted | RecordRejected]:
        seen: set[str] = set()
        queries: list[str | None] = list(units) or [None]
        for unit in queries:
            params = {**self._user_params(unit), "maxResults": USERS_PAGE}
            for item in self._pages("users", params, "users"):
                user_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(user_id, str) or not user_id:
                    yield RecordRejected("user", None, "the Directory API sent a user without an id")
                    continue
                org_unit = item.get("orgUnitPath")
                if unit is not None and not (isinstance(org_unit, str) and _under(org_unit, unit)):
                    # A sibling whose name merely starts the same (/Salesforce Admins for /Sales) is out.
                    continue
                if user_id in seen:
                    continue  # in two configured units, or on two pages of a list that moved
                seen.add(user_id)
                yield UserUpserted(
                    SourceUser(
                        external_id=user_id,
                        data=_user_record(item),
                        active=not item.get("suspended") and not item.get("archived"),
                        org_unit=org_unit if isinstance(org_unit, str) else None,
                    )
                )

    # ------------------------------------------------------------ groups

    def _groups_with_members(self, known_users: set[str]) -> Iterator[SourceEvent]:
        groups = [
            g for g in self._pages("groups", {"customer": self.settings.customer, "maxResults": GROUPS_PAGE}, "groups")
        ]
        valid: list[dict[str, Any]] = []
        ids: set[str] = set()
        for item in groups:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                if item["id"] not in ids:  # a list read again from its start repeats groups
                    ids.add(item["id"])
                    valid.append(item)
            else:
                yield RecordRejected("group", None, "the Directory API sent a group without an id")
        # Member lists are independent round trips: a bounded pool keeps a few in flight at once.
        pool = ThreadPoolExecutor(
            max_workers=min(self.member_workers, max(1, len(valid))), thread_name_prefix="gmembers"
        )
        try:
            for item, members in zip(valid, pool.map(self._members, [g["id"] for g in valid]), strict=True):
                if members.gone:
                    continue  # deleted between groups.list and members.list: absent from this read
                users = set(known_users) if members.customer else members.users & known_users
                yield GroupUpserted(
                    _source_group(item),
                    added_users=frozenset(users),
                    added_groups=frozenset(members.groups),
                    replace_members=True,
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _members(self, group_id: str) -> _Members:
        members = _Members()
        path = f"groups/{quote(group_id, safe='')}/members"
        try:
            for item in self._pages(path, {"maxResults": MEMBERS_PAGE}, "members", accept_missing=True):
                if not isinstance(item, dict):
                    continue
                kind, member_id = item.get("type"), item.get("id")
                if kind == "CUSTOMER":
                    # "Everyone in the account": every user of this read is a member.
                    members.customer = True
                elif kind == "USER" and isinstance(member_id, str) and member_id:
                    members.users.add(member_id)
                elif kind == "GROUP" and isinstance(member_id, str) and member_id:
                    members.groups.add(member_id)
        except _GroupGone:
            members.gone = True
        return members

    # ------------------------------------------------------------ HTTP and tokens

    def _pages(self, path: str, params: Mapping[str, str], key: str, *, accept_missing: bool = False) -> Iterator[Any]:
        """Items of every page of a list; a page token that comes back twice is an error, not a loop."""
        tokens: set[str] = set()
        guard = PageGuard(f"the Directory API {path}", self.settings.api_url)
        page_params = dict(params)
        started_over = False
        while True:
            try:
                body = self._get(path, page_params, accept_missing=accept_missing)
            except _PageTokenRefused:
                if started_over:
                    raise
                # Read the list again from its start, once: its items come again, and readers keep
                # the first of each id.
                log.info("google.page_token_refused", path=path)
                started_over = True
                tokens.clear()
                guard = PageGuard(f"the Directory API {path}", self.settings.api_url)
                page_params = dict(params)
                continue
            items = body.get(key, [])
            if not isinstance(items, list):
                raise SourceError(f"the Directory API sent {path} with '{key}' that is not a list")
            guard.served(str(item["id"]) for item in items if isinstance(item, dict) and item.get("id"))
            yield from items
            token = body.get("nextPageToken")
            if not token:
                return
            token = str(token)
            if token in tokens:
                raise SourceError(
                    f"the Directory API sent the same pageToken twice for {path}; stopping instead of looping"
                )
            tokens.add(token)
            page_params["pageToken"] = token

    def _get(self, path: str, params: Mapping[str, str], *, accept_missing: bool = False) -> dict[str, Any]:
        """GET a Directory API resource with a bearer token; a 401 gets one fresh token and one more try."""
        url = f"{self.settings.api_url}/admin/directory/v1/{path}"
        accept = (401, 404) if accept_missing else (401,)
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._access_token(refresh=attempt == 2)}"}
            response = self._api.request("GET", url, params=params, headers=headers, accept=accept)
            if response.status_code == 404:
                raise _GroupGone(path)
            if response.status_code == 401 and attempt == 1:
                log.info("google.token_refused", status=401)
                continue
            if response.status_code == 401:
                raise self._api_error(response) or AuthenticationError("the Directory API refused the access token")
            return self._api.json_object(response)
        raise AssertionError("unreachable")

    def _access_token(self, refresh: bool = False) -> str:
        # One token for every thread of the member pool; google-auth says when it nears expiry.
        with self._token_lock:
            credentials = self._credentials or self._credentials_for(SCOPES)
            self._credentials = credentials
            if refresh or not credentials.valid:
                try:
                    credentials.refresh(_AuthRequest(self._oauth))
                except exceptions.RefreshError as exc:
                    raise self._token_error(exc) from None
            return str(credentials.token)

    def _credentials_for(self, scopes: Collection[str]) -> service_account.Credentials:
        info = {**self._key, "token_uri": self.settings.token_url}
        credentials: service_account.Credentials = service_account.Credentials.from_service_account_info(
            info, scopes=list(scopes), subject=self.settings.admin_email
        )
        return credentials

    def _granted(self, scope: str) -> bool:
        """True when the token endpoint issues a token for `scope` alone (diagnosis of unauthorized_client)."""
        try:
            self._credentials_for([scope]).refresh(_AuthRequest(self._oauth))
        except (exceptions.RefreshError, AccessIQError):
            return False
        return True

    def _token_error(self, exc: exceptions.RefreshError) -> AccessIQError:
        """Turn the token endpoint's OAuth error into the error an admin can act on."""
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error, description = str(data.get("error") or ""), str(data.get("error_description") or "")
        client_id, account, admin = self._key["client_id"], self._key["client_email"], self.settings.admin_email
        said = f"({error}: {description})" if self._oauth.show_bodies and error else f"({error or 'refused'})"
        delegation = (
            f"in the Admin console > Security > Access and data control > API controls > Domain-wide delegation, "
            f"add client ID {client_id} with the scopes {USER_SCOPE},{GROUP_SCOPE}"
        )
        if error == "unauthorized_client":
            granted = [scope for scope in SCOPES if self._granted(scope)]
            if granted:
                missing = [scope for scope in SCOPES if scope not in granted]
                return PermissionDeniedError(
                    f"domain-wide delegation for client ID {client_id} does not authorise the scope "
                    f"{', '.join(missing)} {said}",
                    hint=f"{delegation} (it has {', '.join(granted)} only)",
                )
            return PermissionDeniedError(
                f"service account {account} (client ID {client_id}) has no domain-wide delegation for the "
                f"read-only directory scopes {said}",
                hint=delegation,
            )
        if error == "invalid_grant" and "email" in description.lower():
            return AuthenticationError(
                f"Google knows no user {admin!r} to act as {said}",
                hint="set connection.admin_email to the primary email of an administrator of the account",
            )
        if error == "invalid_grant" and "signature" in description.lower():
            return AuthenticationError(
                f"Google refused the signature of the key of {account} {said}: the key was deleted or disabled",
                hint="create a new JSON key for the service account and update connection.service_account",
            )
        if error == "invalid_grant" and ("short-lived" in description or "timeframe" in description):
            return AuthenticationError(
                f"Google refused the assertion's issue or expiry time {said}",
                hint="the server's clock is off: synchronise it (NTP)",
            )
        if error in ("invalid_client", "disabled_client") or "account not found" in description.lower():
            return AuthenticationError(
                f"Google does not accept service account {account} {said}",
                hint="the service account or its key was deleted or disabled; create a new key",
            )
        return AuthenticationError(
            f"Google refused the service account sign-in {said}",
            hint="check connection.service_account, connection.admin_email and connection.token_url",
        )

    def _api_error(self, response: httpx.Response) -> AccessIQError | None:
        """Turn a Directory API error envelope into the error an admin can act on."""
        status = response.status_code
        reason, message = _error_reason(response)
        said = message if self._api.show_bodies else self._api.withheld
        resource = "groups" if "/groups" in urlsplit(str(response.url)).path else "users"
        admin = self.settings.admin_email
        if status == 400 and "pageToken=" in str(response.url) and "pageToken" in message:
            # Google drops page tokens after 3 days, or when the list changes too much under a long read.
            return _PageTokenRefused(
                f"the Directory API refused the page token of a {resource} list it handed out itself ({said})",
                hint="the list was read again from its start, and refused a page token again",
            )
        if status == 400 and "INVALID_OU_ID" in message:
            query = parse_qs(urlsplit(str(response.url)).query).get("query", [""])[0]
            return ConfigurationError(
                f"Google knows no org unit {query.partition('=')[2] or '(unknown)'} ({message})",
                field="settings.user_filter.org_units",
            )
        if status in (400, 404) and reason in ("badRequest", "notFound", "") and "/members" not in str(response.url):
            return ConfigurationError(
                f"the Directory API refused customer {self.settings.customer!r} ({status} {said})",
                field="connection.customer",
            )
        if status == 401:
            return AuthenticationError(
                f"the Directory API refused the access token ({said})",
                hint="check that connection.api_url and connection.token_url belong together",
            )
        if status == 403 and reason in QUOTA_REASONS:
            return TransientError(
                f"the Directory API kept answering 403 {reason} after {self._options.retry.attempts} attempts",
                hint="the Google Cloud project's Admin SDK quota is exhausted; the next run retries",
            )
        if status == 403 and reason in ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"):
            scope = GROUP_SCOPE if resource == "groups" else USER_SCOPE
            return PermissionDeniedError(
                f"the access token lacks the scope {scope} needed to read {resource} ({said})",
                hint=f"authorise {scope} for client ID {self._key['client_id']} under Domain-wide delegation",
            )
        if status == 403 and reason in ("accessNotConfigured", "SERVICE_DISABLED"):
            return PermissionDeniedError(
                f"the Admin SDK API is not enabled in the service account's Google Cloud project ({said})",
                hint=f"enable the Admin SDK API in Google Cloud project {self._key.get('project_id') or 'of the key'}",
            )
        if status == 403:
            return PermissionDeniedError(
                f"{admin} may not read {resource} through the Directory API ({said})",
                hint="set connection.admin_email to a super admin, or give that admin a role with "
                "Users > Read and Groups > Read privileges",
            )
        if status in self._options.retry.statuses:
            return TransientError(
                f"the Directory API kept answering {status} {reason} after {self._options.retry.attempts} attempts",
                hint="Google is throttling or unavailable; the next run retries",
            )
        return None


class _GroupGone(Exception):
    """A group vanished between groups.list and members.list."""


class _AuthResponse(transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return dict(self._response.headers)

    @property
    def data(self) -> bytes:
        return self._response.content


class _AuthRequest(transport.Request):
    """google-auth's HTTP calls through the shared core: same origin lock, timeouts and retries.

    The core has already retried a 429 or 5xx when it hands one back, so that answer is a
    transient error here instead of a response google-auth would retry once more on its own.
    """

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> transport.Response:
        data = body.decode() if isinstance(body, bytes) else body
        response = self._http.request(method, url, data=data, headers=headers, raise_for_status=False)
        if response.status_code in transport.DEFAULT_RETRYABLE_STATUS_CODES:
            raise TransientError(
                f"{self._http.service} kept answering {response.status_code}",
                hint="Google's sign-in is busy or unavailable; the next run retries",
            )
        return _AuthResponse(response)


# ---------------------------------------------------------------------- helpers


def is_quota_error(response: httpx.Response) -> bool:
    """A 403 that is Google's quota or rate limit, to retry with backoff like a 429."""
    return response.status_code == 403 and _error_reason(response)[0] in QUOTA_REASONS


class _PageTokenRefused(SourceError):
    """The Directory API no longer honours a page token it handed out (400 `Invalid Input: pageToken`)."""


def _error_reason(response: httpx.Response) -> tuple[str, str]:
    """(first `errors[].reason`, `error.message`) of Google's error envelope; empty strings when absent."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    errors = error.get("errors") or []
    reason = errors[0].get("reason") if errors and isinstance(errors[0], dict) else None
    return str(reason or error.get("status") or ""), str(error.get("message") or "")


def _unit(path: str) -> str:
    """An org unit path as Google spells it: a leading slash, no trailing one (`/` is the root)."""
    return "/" + path.strip().strip("/")


def _under(path: str, unit: str) -> bool:
    """True when org unit `path` is `unit` or beneath it; `/Salesforce Admins` is not under `/Sales`."""
    base = unit.rstrip("/")
    return path == unit or path.startswith(base + "/")


def _quoted(unit: str) -> str:
    """An org unit path as a query value: single quotes, with `\\` and `'` escaped."""
    return "'" + unit.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _user_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """The user as Google sends it, plus `field[primary]` for the primary entry of multi-valued fields."""
    record = dict(item)
    for name in PRIMARY_LISTS:
        entries = item.get(name)
        if isinstance(entries, list) and entries:
            flagged = [e for e in entries if isinstance(e, dict) and e.get("primary")]
            record[f"{name}[primary]"] = flagged[0] if flagged else entries[0]
    return record


def _source_group(item: Mapping[str, Any]) -> SourceGroup:
    return SourceGroup(
        external_id=str(item["id"]),
        name=str(item.get("name") or item.get("email") or item["id"]),
        description=item.get("description") or None,
        email=item.get("email") or None,
    )
