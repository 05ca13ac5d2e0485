"""The `ldap` provider: OpenLDAP and Active Directory over LDAP, LDAPS or StartTLS.

Built on python-ldap (the C bindings; an extra, `accessiq[ldap]`), imported only
when a directory is read, so this module and the provider's description load
without it. Users are keyed on `entryUUID` (OpenLDAP) or `objectGUID` (AD), never
on a DN, so renames and moves are updates. Every search is paged (RFC 2696).
Incremental reads use syncrepl refreshOnly (RFC 4533) where the server offers it,
else `modifyTimestamp` (deletes then wait for the periodic full reconciliation);
on AD, `uSNChanged` against the same DC with tombstones for deletes. AD specifics
live in `connectors.active_directory`. Wire facts: reference/provider-apis.md §4.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog

from accessiq.connectors import active_directory as ad
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
    UserRemoved,
    UserUpserted,
)
from accessiq.connectors.ldap_entries import (
    SyncAnswer,
    and_filters,
    entry_digest,
    first_rdn,
    first_text,
    get_values,
    is_stale,
    normalize_dn,
    openldap_disabled,
    or_filters,
    rdn_value,
    text0,
    texts,
    timestamp_position,
)
from accessiq.connectors.ldap_settings import LdapConnection
from accessiq.connectors.ldap_tls import diagnose_tls, tls_problem
from accessiq.endpoints import EndpointAllowList
from accessiq.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    PermissionDeniedError,
    SourceError,
    TransientError,
    UnreachableError,
)

INSTALL_HINT = (
    "pip install 'accessiq[ldap]' (python-ldap; building it needs the system packages libldap2-dev libsasl2-dev)"
)
SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
SYNC_REFRESH_REQUIRED = 4096
GROUP_ATTRIBUTES = ("cn", "description", "mail", "objectClass", "member", "uniqueMember", "memberUid")
# Never copied into a user's record, whoever may read them.
SECRET_ATTRIBUTES = frozenset(
    a.lower()
    for a in (
        "userPassword",
        "unicodePwd",
        "dBCSPwd",
        "ntPwdHistory",
        "lmPwdHistory",
        "supplementalCredentials",
        "sambaNTPassword",
        "sambaLMPassword",
        "krbPrincipalKey",
        "authPassword",
    )
)
# Operational attributes the connector reads for itself; in a user's record only when the mapping asks.
log = structlog.get_logger(__name__)
_OWN_OPERATIONAL = frozenset(("entryuuid", "modifytimestamp", "entrycsn", "usnchanged", "objectguid"))
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_CURSOR_VERSION = 1
# Members of changed groups looked up by name in an incremental read; more read every user's id.
_NAMED_MEMBERS = 10_000
_SYNC_SIZE_LIMIT = 1_000_000  # entries a syncrepl refresh may name; the server's hard limit still holds
_UUID_BATCH = 200
# A search the server or the connection broke off is tried this many times, waiting base * 2**n seconds between.
_RETRY_ATTEMPTS = 4
_RETRY_BASE = 0.5
_RETRY_MAX = 8.0


class _Interrupted(Exception):
    """A paged search the server or the connection broke off; `cause` is python-ldap's error."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


Entry = tuple[str, dict[str, list[bytes]]]


def _ldap() -> Any:
    """python-ldap, imported on first use; missing, it is a configuration error naming the extra."""
    try:
        import ldap
        import ldap.controls
        import ldap.dn
        import ldap.filter
        import ldap.syncrepl
    except ImportError:
        raise ConfigurationError(
            "the ldap provider needs python-ldap, which is not installed", field="provider", hint=INSTALL_HINT
        ) from None
    return ldap


@dataclass
class _Identities:
    """DN (normalized) and login -> (kind, external id), to turn member values into ids."""

    by_dn: dict[str, tuple[str, str]] = field(default_factory=dict)
    by_uid: dict[str, str] = field(default_factory=dict)
    group_by_rid: dict[int, str] = field(default_factory=dict)
    primary: dict[str, str] = field(default_factory=dict)  # AD user id -> primaryGroupID


def _member_values(entry: Mapping[str, list[bytes]]) -> Iterator[str]:
    """The DNs a group's member and uniqueMember values name."""
    for attribute in ("member", "uniqueMember"):
        for raw in get_values(entry, attribute):
            value = raw.decode("utf-8", "replace")
            yield re.sub(r"#'[01]*'B$", "", value) if attribute == "uniqueMember" else value  # nameAndOptionalUID


class _FullReloadNeeded(Exception):
    """The server cannot give the changes since the cursor; read everything instead."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class LdapConnector(Connector):
    """Reads users, groups and direct memberships from an LDAP directory or Active Directory."""

    provider = "ldap"
    title = "LDAP / Active Directory"
    description = (
        "OpenLDAP or Active Directory over LDAP, LDAPS or StartTLS, with syncrepl or uSNChanged change tracking."
    )
    sandbox = "accessiq.sandbox.ldap_commands:SANDBOX"
    requires = ("ldap",)
    install_hint = INSTALL_HINT
    settings_model = LdapConnection
    incremental = True
    tenant_fields = ("url", "base_dn")
    org_unit_example = "ou=Staff,dc=example,dc=com"
    default_mapping = {
        "email": "{{ (mail or userPrincipalName) | lower }}",
        "username": "{{ uid or sAMAccountName }}",
        "given_name": "givenName",
        "family_name": "sn",
        "display_name": "{{ displayName or cn }}",
    }
    example_fields = ("title", "departmentNumber")

    settings: LdapConnection

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        fields: Collection[str] = (),
        allowed_endpoints: EndpointAllowList | None = None,
    ) -> None:
        super().__init__(
            settings, fields=[f for f in fields if _ATTRIBUTE_NAME.fullmatch(f)], allowed_endpoints=allowed_endpoints
        )
        self._conn: Any = None

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Any:
        ldap = _ldap()
        s = self.settings
        conn = ldap.initialize(s.url, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, s.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, s.timeout)
        if s.url.startswith("ldaps://") or s.start_tls:
            conn.set_option(
                ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND if s.tls_verify else ldap.OPT_X_TLS_NEVER
            )
            if s.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, s.ca_file)
            # Applies the TLS options above to this connection: must come last.
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if s.start_tls:
                conn.start_tls_s()
            conn.simple_bind_s(s.bind_dn, s.bind_password or "")
        except ldap.LDAPError as exc:
            raise self._error(exc, "bind") from None
        return conn

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            # The server may have dropped the connection already.
            with contextlib.suppress(Exception):
                self._conn.unbind_s()
            self._conn = None

    def _error(self, exc: Exception, during: str, *, attempts: int = 1) -> ConnectorError | ConfigurationError:
        """One python-ldap exception as an error of the taxonomy, with a message an admin can act on."""
        ldap = _ldap()
        s = self.settings
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        detail = str(info.get("info") or "")
        where = urlsplit(s.url).netloc
        tls = s.url.startswith("ldaps://") or s.start_tls
        tries = f"; gave up after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, ldap.SERVER_DOWN) and during != "bind" and attempts > 1:
            # It was reachable: the connection dropped in the middle of the read, again and again.
            return UnreachableError(
                f"the connection to {where} dropped while trying to {during}{tries}",
                hint="nothing was applied; the next sync reads again",
            )
        if isinstance(exc, ldap.SERVER_DOWN | ldap.CONNECT_ERROR | ldap.TIMEOUT):
            problem = tls_problem(detail) if tls else None
            if tls and s.tls_verify and problem is None:
                problem = diagnose_tls(s.url, start_tls=s.start_tls, ca_file=s.ca_file, timeout=s.timeout)
            if problem:
                return UnreachableError(
                    f"TLS with {where} failed: {problem}",
                    hint="give the CA that signed the server's certificate in connection.ca_file, or check the "
                    "host name in connection.url matches the certificate",
                )
            if isinstance(exc, ldap.TIMEOUT):
                return UnreachableError(f"{where} did not answer within {s.timeout:g} s ({during}){tries}")
            return UnreachableError(
                f"cannot reach the LDAP server at {where}: {info.get('desc') or exc}"
                + (f" ({detail})" if detail and tls else ""),
                hint="check connection.url (host and port) and that the server accepts connections from here",
            )
        if isinstance(exc, ldap.INVALID_CREDENTIALS):
            return AuthenticationError(
                f"{where} refused the bind DN {s.bind_dn or '(anonymous)'} with this password (invalid credentials)",
                hint="check connection.bind_dn and connection.bind_password",
            )
        if isinstance(exc, ldap.STRONG_AUTH_REQUIRED | ldap.CONFIDENTIALITY_REQUIRED):
            return PermissionDeniedError(
                f"{where} requires an encrypted connection or a stronger bind ({during})",
                hint="use ldaps:// or turn on connection.start_tls",
            )
        if isinstance(exc, ldap.INAPPROPRIATE_AUTH | ldap.UNWILLING_TO_PERFORM) and during == "bind":
            return AuthenticationError(
                f"{where} refused a simple bind as {s.bind_dn or '(anonymous)'}: {info.get('desc') or exc}",
                hint="check connection.bind_dn and connection.bind_password",
            )
        if isinstance(exc, ldap.INSUFFICIENT_ACCESS):
            return PermissionDeniedError(
                f"{s.bind_dn or 'the anonymous bind'} may not {during} (insufficient access)",
                hint="grant the bind DN read access to the users and groups",
            )
        if isinstance(exc, ldap.FILTER_ERROR):
            return ConfigurationError(f"the server rejected a search filter ({during})", field="connection.user_filter")
        if isinstance(exc, ldap.BUSY | ldap.UNAVAILABLE | ldap.ADMINLIMIT_EXCEEDED):
            return TransientError(f"{where} is busy or unavailable ({during}): {info.get('desc') or exc}{tries}")
        shown = f": {detail}" if detail and self.trusts(s.url) else ""
        return SourceError(f"{where} answered {info.get('desc') or type(exc).__name__} while trying to {during}{shown}")

    # ------------------------------------------------------------------ searching

    def _search(self, base: str, filterstr: str, attributes: Sequence[str], *, during: str) -> Iterator[Entry]:
        """A paged subtree search (RFC 2696): a server size limit never truncates it.

        A dropped connection, a stalled server or a busy or unavailable answer is retried with backoff,
        on a fresh connection and from the search's start (a paged search cannot resume elsewhere);
        entries already yielded are not yielded again.
        """
        yielded: set[str] = set()
        attempt = 0
        while True:
            attempt += 1
            try:
                for dn, entry in self._paged(base, filterstr, attributes, during=during):
                    key = normalize_dn(dn)
                    if key not in yielded:
                        yielded.add(key)
                        yield dn, entry
                return
            except _Interrupted as exc:
                if attempt >= _RETRY_ATTEMPTS:
                    raise self._error(exc.cause, during, attempts=attempt) from None
                delay = min(_RETRY_MAX, _RETRY_BASE * 2 ** (attempt - 1))
                log.info("ldap.retry", during=during, error=type(exc.cause).__name__, attempt=attempt, delay=delay)
                self.close()
                time.sleep(delay)

    def _paged(self, base: str, filterstr: str, attributes: Sequence[str], *, during: str) -> Iterator[Entry]:
        """One paged search from its first page; `_Interrupted` when the server or the connection failed."""
        ldap = _ldap()
        from ldap.controls import SimplePagedResultsControl

        control = SimplePagedResultsControl(True, size=self.settings.page_size, cookie="")
        # Pages of one search never overlap. A cookie may repeat (AD's stays the same from page to
        # page), so a loop shows as a page of entries that were all sent before.
        seen: set[str] = set()
        while True:
            try:
                msgid = self.conn.search_ext(
                    base, ldap.SCOPE_SUBTREE, filterstr, list(attributes), serverctrls=[control]
                )
                _, data, _, controls = self.conn.result3(msgid)
            except ldap.NO_SUCH_OBJECT:
                raise self._missing_base(base) from None
            except ldap.LDAPError as exc:
                # A dropped connection, a stall, a busy server: a later try may not meet them.
                if isinstance(exc, ldap.SERVER_DOWN | ldap.TIMEOUT | ldap.BUSY | ldap.UNAVAILABLE | ldap.CONNECT_ERROR):
                    raise _Interrupted(exc) from None
                raise self._error(exc, during) from None
            # Search references carry no entry.
            page = [(dn, entry) for dn, entry in data if dn is not None and isinstance(entry, dict)]
            names = {normalize_dn(dn) for dn, _ in page}
            if names and names <= seen:
                raise SourceError(
                    f"{urlsplit(self.settings.url).netloc} sent a page of entries it had already sent while trying "
                    f"to {during} (a paged-results cookie that leads back); stopping instead of looping "
                    "(nothing was applied)"
                )
            seen |= names
            yield from page
            cookie = next((c.cookie for c in controls if c.controlType == PAGED_RESULTS_OID), b"")
            if not cookie:
                return
            control.cookie = cookie

    def _missing_base(self, base: str) -> ConfigurationError:
        s = self.settings
        field = (
            "connection.base_dn"
            if base == s.base_dn
            else "connection.user_base_dns"
            if base in s.user_base_dns
            else "connection.group_base_dns"
        )
        return ConfigurationError(
            f"{base} does not exist on the server, or {self.settings.bind_dn or 'an anonymous bind'} may not see it",
            field=field,
            hint="check the DN (the namingContexts of the server's root DSE list its trees)",
        )

    def _range(self, dn: str, attribute: str) -> Mapping[str, list[bytes]]:
        ldap = _ldap()
        try:
            found = self.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attribute])
        except ldap.LDAPError as exc:
            raise self._error(exc, f"read {attribute} of {dn}") from None
        return found[0][1] if found else {}

    def _complete(self, dn: str, entry: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
        if any(";range=" in key.lower() for key in entry):
            return ad.complete_ranges(dn, entry, self._range)
        return entry

    def _user_attributes(self) -> list[str]:
        s = self.settings
        own = [s.id_attribute, "modifyTimestamp"] + (list(ad.USER_ATTRIBUTES) if s.flavor == "active_directory" else [])
        return ["*", *own, *sorted(self.fields - {a.lower() for a in own} - {"dn"})]

    def _group_attributes(self) -> list[str]:
        s = self.settings
        if s.flavor == "active_directory":
            return [*(a for a in GROUP_ATTRIBUTES if a != "member"), *ad.GROUP_ATTRIBUTES]
        return [*GROUP_ATTRIBUTES, s.id_attribute, "modifyTimestamp"]

    def _external_id(self, entry: Mapping[str, list[bytes]]) -> str | None:
        values = get_values(entry, self.settings.id_attribute)
        if not values:
            return None
        if self.settings.flavor == "active_directory":
            return ad.guid_string(values[0]) if len(values[0]) == 16 else None
        return values[0].decode("ascii", "replace").lower()

    def _users(self, extra_filter: str = "") -> Iterator[Entry]:
        for base in self.settings.user_bases:
            yield from self._search(
                base,
                and_filters(self.settings.users_filter, extra_filter),
                self._user_attributes(),
                during=f"search users in {base}",
            )

    def _groups(self, extra_filter: str = "") -> Iterator[Entry]:
        for base in self.settings.group_bases:
            yield from self._search(
                base,
                and_filters(self.settings.groups_filter, extra_filter),
                self._group_attributes(),
                during=f"search groups in {base}",
            )

    # ------------------------------------------------------------------ records

    def _user(self, dn: str, entry: dict[str, list[bytes]]) -> SourceUser | RecordRejected:
        external_id = self._external_id(entry)
        if external_id is None:
            return RecordRejected(
                "user", None, f"{dn} has no readable {self.settings.id_attribute}: the bind DN may not read it"
            )
        data: dict[str, Any] = {"dn": dn}
        wanted = {f.lower() for f in self.fields}
        for name, values in self._complete(dn, entry).items():
            lower = name.lower()
            if lower in SECRET_ATTRIBUTES or (lower in _OWN_OPERATIONAL and lower not in wanted):
                continue
            decoded = texts(values)
            if decoded is not None:
                data[name] = decoded[0] if len(decoded) == 1 else decoded
        return SourceUser(external_id=external_id, data=data, active=not self._disabled(entry), org_unit=dn)

    def _disabled(self, entry: Mapping[str, list[bytes]]) -> bool:
        if self.settings.flavor == "active_directory":
            values = get_values(entry, "userAccountControl")
            return ad.is_disabled(values[0] if values else None)
        return openldap_disabled(entry)

    def _identities(self, users: Iterator[Entry] | None = None) -> _Identities:
        """Who every DN and login is: from the users just read, or from a light search of all of them."""
        known = _Identities()
        source = users if users is not None else self._users_light()
        for dn, entry in source:
            self._remember_user(known, dn, entry)
        return known

    def _member_identities(self, groups: list[tuple[str, str, dict[str, list[bytes]]]]) -> _Identities:
        """Who the members of these changed groups are: up to `_NAMED_MEMBERS` of them looked up, 200
        a search, by the first RDN of their DN, their uid or their primary group (attributes every
        directory indexes); more by the light search of every user."""
        from ldap.filter import escape_filter_chars

        conditions: set[str] = set()
        for _, _, entry in groups:
            for value in _member_values(entry):
                rdn = first_rdn(value)
                if rdn is not None:
                    conditions.add(f"({rdn[0]}={escape_filter_chars(rdn[1])})")
            for raw in get_values(entry, "memberUid"):
                conditions.add(f"(uid={escape_filter_chars(raw.decode('utf-8', 'replace'))})")
            sid = get_values(entry, "objectSid")
            rid = ad.sid_rid(sid[0]) if sid else None
            if rid is not None:
                conditions.add(f"(primaryGroupID={rid})")
        if len(conditions) > _NAMED_MEMBERS:
            return self._identities()
        known = _Identities()
        attributes = [self.settings.id_attribute, "uid", "primaryGroupID"]
        ordered = sorted(conditions)
        for base in self.settings.user_bases:
            for start in range(0, len(ordered), _UUID_BATCH):
                wanted = and_filters(self.settings.users_filter, or_filters(*ordered[start : start + _UUID_BATCH]))
                for dn, entry in self._search(base, wanted, attributes, during=f"search group members in {base}"):
                    self._remember_user(known, dn, entry)
        return known

    def _users_light(self) -> Iterator[Entry]:
        attributes = [self.settings.id_attribute, "uid", "primaryGroupID"]
        for base in self.settings.user_bases:
            yield from self._search(base, self.settings.users_filter, attributes, during=f"search users in {base}")

    def _remember_user(self, known: _Identities, dn: str, entry: Mapping[str, list[bytes]]) -> None:
        external_id = self._external_id(entry)
        if external_id is None:
            return
        known.by_dn[normalize_dn(dn)] = ("user", external_id)
        for uid in get_values(entry, "uid"):
            known.by_uid.setdefault(uid.decode("utf-8", "replace").lower(), external_id)
        primary = get_values(entry, "primaryGroupID")
        if primary:
            known.primary[external_id] = primary[0].decode("ascii", "replace")

    def _remember_groups(self, known: _Identities, groups: list[Entry]) -> None:
        for dn, entry in groups:
            external_id = self._external_id(entry)
            if external_id is None:
                continue
            known.by_dn[normalize_dn(dn)] = ("group", external_id)
            sid = get_values(entry, "objectSid")
            rid = ad.sid_rid(sid[0]) if sid else None
            if rid is not None:
                known.group_by_rid[rid] = external_id

    def _group(self, dn: str, entry: dict[str, list[bytes]], known: _Identities) -> GroupUpserted | RecordRejected:
        external_id = self._external_id(entry)
        if external_id is None:
            return RecordRejected("group", None, f"{dn} has no readable {self.settings.id_attribute}")
        entry = self._complete(dn, entry)
        users: set[str] = set()
        groups: set[str] = set()
        for value in _member_values(entry):
            kind_id = known.by_dn.get(normalize_dn(value))
            if kind_id is not None:
                (users if kind_id[0] == "user" else groups).add(kind_id[1])
        for raw in get_values(entry, "memberUid"):
            user_id = known.by_uid.get(raw.decode("utf-8", "replace").lower())
            if user_id is not None:
                users.add(user_id)
        sid = get_values(entry, "objectSid")
        rid = ad.sid_rid(sid[0]) if sid else None
        if rid is not None:
            users |= {user for user, primary in known.primary.items() if primary == str(rid)}
        groups.discard(external_id)
        name = first_text(entry, "cn") or rdn_value(dn)
        return GroupUpserted(
            SourceGroup(
                external_id=external_id,
                name=name,
                description=first_text(entry, "description"),
                email=first_text(entry, "mail"),
                dn=dn,
            ),
            added_users=frozenset(users),
            added_groups=frozenset(groups),
            replace_members=True,
        )

    # ------------------------------------------------------------------ check

    def check(self) -> CheckResult:
        ldap = _ldap()
        s = self.settings
        try:
            conn = self.conn
            details = [
                f"bound to {urlsplit(s.url).netloc} as {s.bind_dn or 'anonymous'}"
                + (" over StartTLS" if s.start_tls else " over TLS" if s.url.startswith("ldaps") else "")
            ]
            for base in dict.fromkeys([s.base_dn, *s.user_bases, *s.group_bases]):
                try:
                    conn.search_s(base, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
                except ldap.NO_SUCH_OBJECT:
                    raise self._missing_base(base) from None
                except ldap.LDAPError as exc:
                    raise self._error(exc, f"read {base}") from None
            problems: list[str] = []
            users = list(self._users_light())
            if not users:
                if not self._anything_visible(s.user_bases):
                    raise PermissionDeniedError(
                        f"{s.bind_dn or 'the anonymous bind'} can read nothing below {', '.join(s.user_bases)}: "
                        "it lacks read permission on the user entries",
                        hint="grant the bind DN read access to the users (an ACL or delegated permission)",
                    )
                problems.append(f"no entry under {', '.join(s.user_bases)} matches the user filter {s.users_filter}")
            elif all(self._external_id(entry) is None for _, entry in users):
                raise PermissionDeniedError(
                    f"{s.bind_dn or 'the anonymous bind'} sees the users but not their {s.id_attribute}",
                    hint=f"grant the bind DN read access to {s.id_attribute}",
                )
            groups = list(self._search_groups_light())
            if not groups and not self._anything_visible(s.group_bases, ignore=_with_ancestors(dn for dn, _ in users)):
                raise PermissionDeniedError(
                    f"{s.bind_dn or 'the anonymous bind'} can read no groups below {', '.join(s.group_bases)}: "
                    "it lacks read permission on the group entries",
                    hint="grant the bind DN read access to the groups",
                )
            details.append(f"{len(users)} users and {len(groups)} groups readable under {s.base_dn}")
            details.append(f"change tracking: {self._tracking_label()}")
            return CheckResult(ok=not problems, details=details, problems=problems)
        finally:
            self.close()

    def _search_groups_light(self) -> Iterator[Entry]:
        for base in self.settings.group_bases:
            yield from self._search(
                base,
                self.settings.groups_filter,
                [self.settings.id_attribute, "objectSid"],
                during=f"search groups in {base}",
            )

    def _anything_visible(self, bases: Sequence[str], ignore: Collection[str] = ()) -> bool:
        """True when the bind DN sees some entry below `bases` besides its own branch and `ignore`."""
        own = normalize_dn(self.settings.bind_dn) if self.settings.bind_dn else ""
        skip = set(ignore) | {normalize_dn(b) for b in bases}
        for dn, _ in self._search_some(bases):
            norm = normalize_dn(dn)
            if norm in skip or (own and (own == norm or own.endswith("," + norm))):
                continue
            return True
        return False

    def _search_some(self, bases: Sequence[str]) -> Iterator[Entry]:
        try:
            for base in bases:
                yield from self._search(base, "(objectClass=*)", ["1.1"], during=f"search {base}")
        except (ConfigurationError, ConnectorError):
            return

    def _tracking_label(self) -> str:
        if self.settings.flavor == "active_directory":
            return "uSNChanged polling on one domain controller, tombstones for deletes"
        if self._offers_syncrepl():
            return "syncrepl refreshOnly (RFC 4533)"
        return "modifyTimestamp polling; deletes found by the periodic full reconciliation"

    def _root_dse(self, *attributes: str) -> dict[str, list[bytes]]:
        ldap = _ldap()
        try:
            found = self.conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", list(attributes))
        except ldap.LDAPError:
            return {}
        return found[0][1] if found else {}

    def _offers_syncrepl(self) -> bool:
        return self._syncrepl_cookie() is not None

    def _syncrepl_cookie(self) -> str | None:
        """A syncrepl cookie for the current state of the tree, or None when the server offers no syncrepl.

        The root DSE lists the control whenever the module is loaded; only a search shows
        whether the database under the base DN has the syncprov overlay.
        """
        controls = get_values(self._root_dse("supportedControl"), "supportedControl")
        if SYNC_REQUEST_OID.encode() not in controls:
            return None
        try:
            return self._syncrepl(None, "(objectClass=accessiqNoSuchClass)").cookie
        except (ConnectorError, _FullReloadNeeded):
            return None

    # ------------------------------------------------------------------ read

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        try:
            yield from self._read(cursor)
        finally:
            self.close()

    def _read(self, cursor: dict[str, Any] | None) -> Iterator[SourceEvent]:
        note = None
        if cursor is not None:
            if cursor.get("v") != _CURSOR_VERSION or cursor.get("scope") != self.settings.scope_fingerprint():
                note = "the connection settings changed since the last sync: read everything again"
            else:
                try:
                    changes = self._changes(cursor)
                except _FullReloadNeeded as reload:
                    note = reload.note
                else:
                    yield from changes
                    return
        yield from self._read_all(note)

    def _start_cursor(self) -> dict[str, Any]:
        """The change-tracking position to hand out with a full read, taken before it starts.

        Taken first, changes made during the read are reported again by the next
        incremental run: re-applying them is harmless, missing them would not be.
        """
        base = {"v": _CURSOR_VERSION, "scope": self.settings.scope_fingerprint()}
        if self.settings.flavor == "active_directory":
            return {**base, "mode": "usn", **self._usn_position()}
        cookie = self._syncrepl_cookie()
        if cookie:
            return {**base, "mode": "syncrepl", "cookie": cookie}
        return {**base, "mode": "timestamp", "since": None, "seen": {}}

    def _read_all(self, note: str | None) -> Iterator[SourceEvent]:
        cursor = self._start_cursor()
        yield ReadStarted(full=True, note=note)
        known = _Identities()
        newest: list[tuple[str, str, str]] = []
        for dn, entry in self._users():
            self._remember_user(known, dn, entry)
            user = self._user(dn, entry)
            if isinstance(user, SourceUser):
                newest.append((text0(entry, "modifyTimestamp"), user.external_id, entry_digest(entry)))
                yield UserUpserted(user)
            else:
                yield user
        groups = list(self._groups())
        self._remember_groups(known, groups)
        for dn, entry in groups:
            newest.append((text0(entry, "modifyTimestamp"), self._external_id(entry) or "", entry_digest(entry)))
            yield self._group(dn, entry, known)
        if cursor["mode"] == "timestamp":
            cursor.update(timestamp_position(newest))
        yield ReadFinished(cursor=cursor)

    # ------------------------------------------------------------------ incremental

    def _changes(self, cursor: dict[str, Any]) -> Iterator[SourceEvent]:
        """Check the cursor can be served and collect what changed, before the first event goes out."""
        mode = cursor.get("mode")
        if mode == "syncrepl":
            answer = self._syncrepl(
                str(cursor.get("cookie") or ""), or_filters(self.settings.users_filter, self.settings.groups_filter)
            )
            changed, deleted = answer.changed, answer.deleted
            new_cursor = {**cursor, "cookie": answer.cookie or cursor["cookie"]}
            users = self._by_ids(changed, groups=False)
            groups = self._by_ids(changed - {i for i, _, _ in users}, groups=True)
            gone = changed - {i for i, _, _ in users} - {i for i, _, _ in groups}
            return self._change_events(users, groups, deleted | gone, new_cursor)
        if mode == "timestamp":
            since = cursor.get("since")
            if not since:
                raise _FullReloadNeeded("the last full read saw no timestamps: read everything again")
            condition = f"(modifyTimestamp>={_ldap().filter.escape_filter_chars(str(since))})"
            seen: dict[str, str] = cursor["seen"] if isinstance(cursor.get("seen"), dict) else {}
            users = [
                (i, dn, e)
                for dn, e in self._users(condition)
                if (i := self._external_id(e)) and not is_stale(e, since, i, seen)
            ]
            groups = [
                (i, dn, e)
                for dn, e in self._groups(condition)
                if (i := self._external_id(e)) and not is_stale(e, since, i, seen)
            ]
            new_cursor = {
                **cursor,
                **timestamp_position(
                    [(text0(e, "modifyTimestamp"), i, entry_digest(e)) for i, _, e in users + groups],
                    since=str(since),
                    seen=seen,
                ),
            }
            return self._change_events(
                users,
                groups,
                set(),
                new_cursor,
                note=("modifyTimestamp polling: deleted entries are found by the next full reconciliation"),
            )
        if mode == "usn":
            return self._usn_changes(cursor)
        raise _FullReloadNeeded("the stored cursor is not one this connector wrote: read everything again")

    def _change_events(
        self,
        users: list[tuple[str, str, dict[str, list[bytes]]]],
        groups: list[tuple[str, str, dict[str, list[bytes]]]],
        removed: set[str],
        cursor: dict[str, Any],
        note: str | None = None,
    ) -> Iterator[SourceEvent]:
        groups = [(i, dn, self._complete(dn, entry)) for i, dn, entry in groups]
        known = self._member_identities(groups) if groups else _Identities()
        if groups:
            self._remember_groups(known, list(self._search_groups_light()))
        events: list[SourceEvent] = [ReadStarted(full=False, note=note)]
        for _, dn, entry in users:
            user = self._user(dn, entry)
            events.append(UserUpserted(user) if isinstance(user, SourceUser) else user)
        for _, dn, entry in groups:
            events.append(self._group(dn, entry, known))
        # A deleted or out-of-scope id is a user or a group we cannot tell apart any more; the
        # engine ignores a removal of an id it does not hold.
        for external_id in sorted(removed):
            events += [UserRemoved(external_id), GroupRemoved(external_id)]
        events.append(ReadFinished(cursor=cursor))
        return iter(events)

    def _by_ids(self, ids: Collection[str], *, groups: bool) -> list[tuple[str, str, dict[str, list[bytes]]]]:
        """Entries among `ids` that match the user (or group) filter in its org units, read in full."""
        from ldap.filter import escape_filter_chars

        found = []
        ordered = sorted(ids)
        for start in range(0, len(ordered), _UUID_BATCH):
            chunk = ordered[start : start + _UUID_BATCH]
            if self.settings.flavor == "active_directory":
                condition = "(|" + "".join(f"(objectGUID={ad.guid_filter_value(i)})" for i in chunk) + ")"
            else:
                condition = "(|" + "".join(f"(entryUUID={escape_filter_chars(i)})" for i in chunk) + ")"
            search = self._groups(condition) if groups else self._users(condition)
            found += [(i, dn, e) for dn, e in search if (i := self._external_id(e))]
        return found

    def _syncrepl(self, cookie: str | None, filterstr: str) -> SyncAnswer:
        """One syncrepl refreshOnly search (RFC 4533) for entry ids only: what changed since `cookie`."""
        ldap = _ldap()
        from ldap.syncrepl import SyncDoneControl, SyncInfoMessage, SyncRequestControl, SyncStateControl

        answer = SyncAnswer()
        try:
            msgid = self.conn.search_ext(
                self.settings.base_dn,
                ldap.SCOPE_SUBTREE,
                filterstr,
                ["1.1"],
                serverctrls=[SyncRequestControl(cookie=cookie or None, mode="refreshOnly")],
                # Ids only, and syncrepl cannot page: ask past the soft size limit (500 on many
                # servers), up to the hard one, so that a busy day's changes stay incremental.
                sizelimit=_SYNC_SIZE_LIMIT,
            )
            while True:
                kind, messages, _, controls, _, _ = self.conn.result4(msgid, all=0, add_intermediates=1, add_ctrls=1)
                if kind == ldap.RES_SEARCH_ENTRY:
                    for _dn, _attrs, entry_controls in messages:
                        for control in entry_controls:
                            if isinstance(control, SyncStateControl):
                                answer.entry(control.state, str(control.entryUUID))
                                answer.cookie = control.cookie or answer.cookie
                elif kind == ldap.RES_INTERMEDIATE:
                    for name, value, _ in messages:
                        if name == SyncInfoMessage.responseName:
                            answer.info(SyncInfoMessage(value))
                elif kind == ldap.RES_SEARCH_RESULT:
                    for control in controls:
                        if isinstance(control, SyncDoneControl):
                            answer.cookie = control.cookie or answer.cookie
                            answer.refresh_deletes = bool(control.refreshDeletes)
                    break
        except ldap.SIZELIMIT_EXCEEDED:
            raise _FullReloadNeeded(
                "more entries changed than the server returns at once: read everything again"
            ) from None
        except ldap.LDAPError as exc:
            result = exc.args[0].get("result") if exc.args and isinstance(exc.args[0], dict) else None
            if result == SYNC_REFRESH_REQUIRED:
                raise _FullReloadNeeded(
                    "the server no longer has the changes since the last sync (e-syncRefreshRequired): "
                    "read everything again"
                ) from None
            if isinstance(exc, ldap.UNAVAILABLE_CRITICAL_EXTENSION) and cookie is not None:
                raise _FullReloadNeeded("the server stopped offering syncrepl: read everything again") from None
            raise self._error(exc, "read changes (syncrepl)") from None
        if cookie and answer.present_phase and not answer.refresh_deletes:
            # A present phase names what still exists, not what went: only a full read tells deletes.
            raise _FullReloadNeeded(
                "the server answered with a present phase instead of deletes: read everything again"
            )
        return answer

    # ------------------------------------------------------------------ Active Directory

    def _usn_position(self) -> dict[str, Any]:
        ldap = _ldap()
        dse = self._root_dse("highestCommittedUSN", "dnsHostName", "dsServiceName")
        usn, service = text0(dse, "highestCommittedUSN"), text0(dse, "dsServiceName")
        if not usn:
            raise SourceError(
                f"{urlsplit(self.settings.url).netloc} does not publish highestCommittedUSN: "
                "is it an Active Directory domain controller?"
            )
        invocation = ""
        if service:
            try:
                found = self.conn.search_s(service, ldap.SCOPE_BASE, "(objectClass=*)", ["invocationId"])
                raw = get_values(found[0][1], "invocationId") if found else []
                invocation = ad.guid_string(raw[0]) if raw and len(raw[0]) == 16 else ""
            except ldap.LDAPError:
                invocation = ""
        return {"usn": int(usn), "server": text0(dse, "dnsHostName"), "invocation_id": invocation}

    def _usn_changes(self, cursor: dict[str, Any]) -> Iterator[SourceEvent]:
        """Changes since a uSNChanged position of the same DC; a restored or other DC means a full read."""
        from ldap.controls import LDAPControl
        from ldap.filter import escape_filter_chars

        position = self._usn_position()
        if position["server"] != cursor.get("server") or position["invocation_id"] != cursor.get("invocation_id"):
            raise _FullReloadNeeded(
                "the domain controller changed or was restored (another invocationId): read everything again"
            )
        condition = f"(uSNChanged>={escape_filter_chars(str(int(cursor['usn']) + 1))})"
        users = [(i, dn, e) for dn, e in self._users(condition) if (i := self._external_id(e))]
        groups = [(i, dn, e) for dn, e in self._groups(condition) if (i := self._external_id(e))]
        if users:
            # A user's primary group lists no members; re-read it so its membership follows.
            rids = {
                int(r)
                for _, _, entry in users
                for r in texts(get_values(entry, "primaryGroupID")) or []
                if r.isascii() and r.isdigit() and len(r) <= 10
            }
            known = _Identities()
            self._remember_groups(known, list(self._search_groups_light()))
            have = {i for i, _, _ in groups}
            groups += self._by_ids({known.group_by_rid[r] for r in rids if r in known.group_by_rid} - have, groups=True)
        deleted: set[str] = set()
        ldap = _ldap()
        try:
            msgid = self.conn.search_ext(
                f"CN=Deleted Objects,{self._naming_context()}",
                ldap.SCOPE_SUBTREE,
                f"(&(isDeleted=TRUE){condition})",
                ["objectGUID"],
                serverctrls=[LDAPControl(ad.SHOW_DELETED_OID, True, None)],
            )
            _, data, _, _ = self.conn.result3(msgid)
            deleted = {ad.guid_string(e["objectGUID"][0]) for dn, e in data if dn and e.get("objectGUID")}
        except ldap.NO_SUCH_OBJECT:
            deleted = set()
        except ldap.LDAPError as exc:
            raise self._error(exc, "read deleted objects") from None
        new_cursor = {**cursor, "usn": position["usn"]}
        # Entries that moved out of the org units changed too but match no search: the full
        # reconciliation (full_sync_interval) finds them.
        return self._change_events(users, groups, deleted, new_cursor)

    def _naming_context(self) -> str:
        """The naming context that holds the base DN: its Deleted Objects container keeps the tombstones."""
        base = normalize_dn(self.settings.base_dn)
        contexts = [c.decode() for c in get_values(self._root_dse("namingContexts"), "namingContexts")]
        holding = [c for c in contexts if base == normalize_dn(c) or base.endswith("," + normalize_dn(c))]
        return max(holding, key=len, default=self.settings.base_dn)


def _with_ancestors(dns: Iterable[str]) -> set[str]:
    """Normalized DNs and every entry above them: the users and the OUs that hold them."""
    found: set[str] = set()
    for dn in dns:
        parts = normalize_dn(dn).split(",")
        found.update(",".join(parts[i:]) for i in range(len(parts)))
    return found
