"""A Microsoft Entra ID emulator: the v2.0 token endpoint and the Microsoft Graph directory API.

Faithful to `reference/provider-apis.md` §1: client-credentials tokens with
AADSTS errors, `/users` and `/groups` lists with `$select`/`$top`/`$filter`,
`/users/delta` and `/groups/delta` with opaque tokens that encode the query,
server-chosen page sizes (empty pages with a nextLink included), `@removed`
from the first round on, `members@delta` split over consecutive pages with
replays, the three delta-expiry answers, the Graph error envelope, 429 with
`Retry-After`, and 403 `Authorization_RequestDenied` for a missing permission.

`EntraSandbox` holds the directory and the behaviour knobs (usable in-process
by tests); `create_app` serves it, with `/_admin` endpoints to change the
directory and inject faults while a sync client runs against it.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from accessiq.sandbox.people import PeopleFactory, Person, Population, generate_population
from accessiq.sandbox.wire_faults import WIRE_FAULTS, asked_wait, body_fault, buffered

GRAPH_RESOURCE = "https://graph.microsoft.com"

# fmt: off
USER_DEFAULT_PROPERTIES = (
    "businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName",
)
# Properties Graph can return for one user but not in a collection: selecting one on a list is a 501.
NON_COLLECTION_USER_PROPERTIES = frozenset({
    "aboutMe", "birthday", "hireDate", "interests", "mySite", "pastProjects", "preferredName",
    "responsibilities", "schools", "skills", "mailboxSettings",
})
USER_PROPERTIES = frozenset(USER_DEFAULT_PROPERTIES) | NON_COLLECTION_USER_PROPERTIES | frozenset({
    "accountEnabled", "ageGroup", "assignedLicenses", "city", "companyName", "country", "createdDateTime",
    "creationType", "deletedDateTime", "department", "employeeHireDate", "employeeId",
    "employeeLeaveDateTime", "employeeOrgData", "employeeType", "externalUserState", "faxNumber",
    "identities", "imAddresses", "isResourceAccount", "lastPasswordChangeDateTime",
    "legalAgeGroupClassification", "mailNickname", "onPremisesDistinguishedName", "onPremisesDomainName",
    "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName", "otherMails", "passwordPolicies", "postalCode", "preferredDataLocation",
    "proxyAddresses", "securityIdentifier", "showInAddressList", "signInSessionsValidFromDateTime", "state",
    "streetAddress", "usageLocation", "userType",
})
GROUP_DEFAULT_PROPERTIES = (
    "id", "deletedDateTime", "classification", "createdDateTime", "description", "displayName",
    "expirationDateTime", "groupTypes", "isAssignableToRole", "mail", "mailEnabled", "mailNickname",
    "membershipRule", "onPremisesSyncEnabled", "preferredDataLocation", "proxyAddresses", "renewedDateTime",
    "securityEnabled", "securityIdentifier", "visibility",
)
GROUP_PROPERTIES = frozenset(GROUP_DEFAULT_PROPERTIES) | frozenset({
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesLastSyncDateTime",
    "onPremisesDomainName", "onPremisesNetBiosName", "theme", "uniqueName",
})
GROUP_RELATIONSHIPS = frozenset({"members", "owners"})

# Application permissions that grant each kind of read (any one suffices).
USER_READ_ROLES = frozenset({
    "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
})
GROUP_READ_ROLES = frozenset({
    "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
    "Directory.Read.All", "Directory.ReadWrite.All",
})
DEFAULT_ROLES = ("User.Read.All", "GroupMember.Read.All")
# fmt: on

MAX_FILTER_IDS = 50
EXPIRY_MODES = ("syncStateNotFound", "resyncRequired", "location")


class GraphError(Exception):
    """An error Graph answers with its envelope: `{"error": {"code", "message", "innerError"}}`."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class AADError(Exception):
    """An error the token endpoint answers with, in the OAuth/AADSTS shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


@dataclass
class GraphBehaviour:
    """Knobs for how the emulator pages and what it includes; all can change at run time."""

    # Objects per users-delta page: the server chooses, and it varies page to page.
    page_min: int = 40
    page_max: int = 200
    # Groups per groups-delta page, and `members@delta` entries a page may carry.
    group_page_max: int = 40
    member_budget_min: int = 60
    member_budget_max: int = 400
    # Share of pages that come back empty with a nextLink, and that replay earlier entries.
    empty_page_rate: float = 0.05
    replay_rate: float = 0.1
    list_page_size: int = 100
    # Soft-deleted objects show as `@removed: changed` in a first round too.
    initial_removed: bool = True
    delta_token_lifetime: float = 7 * 86400
    access_token_lifetime: int = 3599
    # Resource units per 10 s per app+tenant; None: no throttling beyond injected faults.
    ru_limit_per_10s: int | None = None
    # An origin written into Graph's paging and delta links instead of the server's own:
    # a misbehaving or compromised server sending clients elsewhere. None: links point here.
    link_base: str | None = None


@dataclass
class Fault:
    """An injected failure for the next `count` matching requests."""

    # throttle | error | delay | forbidden (the app's permission revoked) | expire (every delta and
    # skip token issued so far expires, as `expiry`) | cut | truncate | malformed | loop (wire_faults)
    kind: str = "throttle"
    count: int = 1
    status: int = 429
    retry_after: int | None = 1
    code: str = "TooManyRequests"
    delay: float = 0.0
    target: str = "graph"  # graph | token | any
    path_contains: str | None = None
    # Matching requests let through before the fault starts: "a later page".
    after: int = 0
    expiry: str = "syncStateNotFound"


@dataclass
class AppRegistration:
    """A confidential client: its secrets, certificates and admin-consented application permissions."""

    client_id: str
    display_name: str
    secrets: list[str] = field(default_factory=list)
    # base64url thumbprint (x5t or x5t#S256) -> certificate
    certificates: dict[str, x509.Certificate] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)
    service_principal_id: str = ""

    def add_certificate(self, cert: x509.Certificate) -> None:
        self.certificates[_b64(cert.fingerprint(hashes.SHA1()))] = cert
        self.certificates[_b64(cert.fingerprint(hashes.SHA256()))] = cert


@dataclass
class _Object:
    id: str
    kind: str  # user | group
    props: dict[str, Any]
    created: int = 0
    prop_seq: dict[str, int] = field(default_factory=dict)
    state: str = "active"  # active | soft (restorable) | gone
    removed: int = 0
    restored: int = 0
    members: dict[str, str] = field(default_factory=dict)  # member id -> "user" | "group"
    member_seq: dict[str, int] = field(default_factory=dict)  # member id -> seq of its last change
    member_type: dict[str, str] = field(default_factory=dict)
    parked: list[str] = field(default_factory=list)  # a soft-deleted user's groups, rejoined on restore


@dataclass(frozen=True)
class _Round:
    """What a delta token or skip token stands for: the query and where the round is."""

    kind: str
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    initial: bool
    since: int
    upto: int
    epoch: int
    issued: float
    after: str = ""
    moff: int = 0
    page: int = 0

    @property
    def tracked(self) -> frozenset[str]:
        if self.select is None:
            defaults = USER_DEFAULT_PROPERTIES if self.kind == "users" else GROUP_DEFAULT_PROPERTIES
            return frozenset(defaults)
        return frozenset(self.select) - GROUP_RELATIONSHIPS

    @property
    def members(self) -> bool:
        return self.kind == "groups" and (self.select is None or "members" in self.select)


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    status: int = 0
    # When it arrived (time.monotonic()): the gap after a 429 shows whether Retry-After was honoured.
    at: float = field(default_factory=time.monotonic)
    # Seconds the answer asked the client to wait (`Retry-After`, or Okta's `X-Rate-Limit-Reset`).
    waits: float | None = None


class EntraSandbox:
    """One emulated tenant: directory objects, app registrations, change log, faults and statistics."""

    def __init__(
        self,
        users: int = 100,
        groups: int = 20,
        *,
        seed: int = 0,
        population: Population | None = None,
        departed: int | None = None,
        behaviour: GraphBehaviour | None = None,
    ) -> None:
        self.seed = seed
        self.behaviour = behaviour or GraphBehaviour()
        self._lock = threading.RLock()
        self._key = hashlib.sha256(f"accessiq-entra-sandbox:{seed}".encode()).digest()
        # A new process is a new sync-state generation: tokens from an earlier run are expired, not forged.
        self._instance = secrets.token_hex(4)
        self._sizes = (users, groups, departed, population)
        self._seed_state()

    # ----------------------------------------------------------------- seeding

    def _seed_state(self) -> None:
        users, groups, departed, population = self._sizes
        rng_ids = PeopleFactory(self.seed + 7919)
        self.tenant_id = rng_ids.new_id()
        self.client_id = rng_ids.new_id()
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.client_secret = (
            "".join(rng_ids.rng.choice(alphabet) for _ in range(3))
            + "8Q~"
            + "".join(rng_ids.rng.choice(alphabet + "_-.") for _ in range(34))
        )
        if departed is None:
            # At least one, so a first round shows `@removed` even on a small sandbox.
            departed = max(1, users // 100) if users >= 10 else 0
        if population is None:
            population = generate_population(users + departed, groups, seed=self.seed)
        self.population = population
        self.domain = population.domain
        self.tenant_name = self.domain.split(".")[0].capitalize()
        self.tenant_domain = f"{self.domain.split('.')[0]}.onmicrosoft.com"
        self.apps: dict[str, AppRegistration] = {}
        self.register_app(
            self.client_id,
            secret=self.client_secret,
            roles=DEFAULT_ROLES,
            display_name="AccessIQ Directory Sync",
        )
        self._factory = PeopleFactory(self.seed + 104729, self.domain)
        self._factory.reserve(self.population.people)
        self._seq = 0
        self._entries: tuple[tuple[str, bool, int, int], list[dict[str, Any]]] | None = None
        self._log_seqs: list[int] = []
        self._log: list[tuple[str, str]] = []
        self._objects: dict[str, _Object] = {}
        self._order: dict[str, list[str]] = {"users": [], "groups": []}
        self._epoch = 0
        self._expired_modes: dict[int, tuple[str, int, str]] = {}
        self._token_generation: dict[str, int] = {}
        self.clock_offset = 0.0
        self.faults: list[Fault] = []
        self.faults_served = 0
        self._ru_window: deque[tuple[float, int]] = deque()
        self.reset_stats()
        for person in population.people:
            self._insert(_Object(person.id, "user", _user_props(person)), seq=0)
        for spec in population.groups:
            self._insert(
                _Object(
                    spec.id,
                    "group",
                    {
                        "id": spec.id,
                        "createdDateTime": "2019-01-01T00:00:00Z",
                        "description": spec.description,
                        "displayName": spec.name,
                        "groupTypes": ["Unified"] if spec.email and spec.kind == "project" else [],
                        "mail": spec.email,
                        "mailEnabled": spec.email is not None,
                        "mailNickname": spec.mail_nickname,
                        "securityEnabled": True,
                        "visibility": "Private" if spec.kind == "project" else "Public",
                        "proxyAddresses": [f"SMTP:{spec.email}"] if spec.email else [],
                        "isAssignableToRole": False,
                    },
                ),
                seq=0,
            )
        # The last `departed` people left before the sandbox started: soft-deleted, memberships gone.
        departed_ids = {p.id for p in population.people[len(population.people) - departed :]}
        for spec in population.groups:
            group = self._objects[spec.id]
            for uid in spec.member_users:
                if uid in departed_ids:
                    # Left before the sandbox started: not a member now, rejoins on restore.
                    self._objects[uid].parked.append(spec.id)
                    continue
                group.members[uid] = "user"
                group.member_type[uid] = "user"
            for gid in spec.member_groups:
                group.members[gid] = "group"
                group.member_type[gid] = "group"
        for order in self._order.values():
            order.sort()
        for uid in departed_ids:
            user = self._objects[uid]
            user.state = "soft"
            user.props["deletedDateTime"] = "2024-01-01T00:00:00Z"

    def reset(self) -> None:
        """Back to the freshly seeded directory; tokens issued before become expired delta state."""
        with self._lock:
            self._seed_state()
            self._instance = secrets.token_hex(4)

    def register_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_pem: str | bytes | None = None,
        roles: Iterable[str] = DEFAULT_ROLES,
        display_name: str = "Sandbox app",
    ) -> AppRegistration:
        """Register (or extend) a confidential client with a secret and/or a certificate."""
        with self._lock:
            app = self.apps.get(client_id) or AppRegistration(
                client_id, display_name, service_principal_id=str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))
            )
            if secret:
                app.secrets.append(secret)
            if certificate_pem:
                raw = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
                app.add_certificate(x509.load_pem_x509_certificate(raw))
            app.roles = set(roles)
            self.apps[client_id] = app
            return app

    # ------------------------------------------------------------ directory writes

    def _insert(self, obj: _Object, seq: int | None = None) -> None:
        kind = obj.kind + "s"
        obj.created = self._touch(kind, obj.id) if seq is None else seq
        obj.prop_seq = dict.fromkeys(obj.props, obj.created)
        self._objects[obj.id] = obj
        if seq is None:
            bisect.insort(self._order[kind], obj.id)
        else:
            self._order[kind].append(obj.id)  # seeding: sorted once at the end

    def _touch(self, kind: str, obj_id: str) -> int:
        self._seq += 1
        self._log_seqs.append(self._seq)
        self._log.append((kind, obj_id))
        return self._seq

    def _get(self, kind: str, ref: str, *, include_deleted: bool = False) -> _Object:
        obj = self._objects.get(ref)
        if obj is None and kind == "user":
            lowered = ref.lower()
            obj = next(
                (
                    o
                    for o in self._objects.values()
                    if o.kind == "user"
                    and (
                        str(o.props.get("userPrincipalName", "")).lower() == lowered
                        or str(o.props.get("mail") or "").lower() == lowered
                    )
                ),
                None,
            )
        if obj is None and kind == "group":
            lowered = ref.lower()
            obj = next(
                (
                    o
                    for o in self._objects.values()
                    if o.kind == "group" and str(o.props.get("displayName", "")).lower() == lowered
                ),
                None,
            )
        if obj is None or obj.kind != kind or (obj.state != "active" and not include_deleted) or obj.state == "gone":
            raise KeyError(f"no {kind} {ref!r}")
        return obj

    def _groups_of(self, member_id: str) -> list[_Object]:
        return [o for o in self._objects.values() if o.kind == "group" and member_id in o.members]

    def add_user(self, props: Mapping[str, Any] | None = None, *, department: str | None = None) -> dict[str, Any]:
        """Create a user from generated attributes overlaid with `props` (Graph property names)."""
        with self._lock:
            props = dict(props or {})
            person = self._factory.person(
                department=department or props.get("department"),
                active=True,
                given_name=props.get("givenName"),
                surname=props.get("surname"),
            )
            data = _user_props(person)
            data.update({k: v for k, v in (props or {}).items() if k != "id"})
            _check_props(data, USER_PROPERTIES, "user")
            self._insert(_Object(person.id, "user", data))
            return dict(data)

    def update_user(self, ref: str, props: Mapping[str, Any]) -> dict[str, Any]:
        """Change user properties; only those whose value differs count as changes."""
        with self._lock:
            user = self._get("user", ref)
            _check_props(props, USER_PROPERTIES, "user")
            self._change(user, props)
            return dict(user.props)

    def disable_user(self, ref: str) -> dict[str, Any]:
        return self.update_user(ref, {"accountEnabled": False})

    def enable_user(self, ref: str) -> dict[str, Any]:
        return self.update_user(ref, {"accountEnabled": True})

    def _change(self, obj: _Object, props: Mapping[str, Any]) -> None:
        changed = [k for k, v in props.items() if k != "id" and (k not in obj.props or obj.props[k] != v)]
        if not changed:
            return
        seq = self._touch(obj.kind + "s", obj.id)
        for key in changed:
            obj.props[key] = props[key]
            obj.prop_seq[key] = seq

    def delete_user(self, ref: str, *, permanent: bool = False) -> str:
        """Soft-delete (restorable, `@removed: changed`) or permanently delete (`deleted`) a user."""
        with self._lock:
            user = self._get("user", ref, include_deleted=permanent)
            self._remove(user, permanent)
            return user.id

    def restore_user(self, ref: str) -> dict[str, Any]:
        """Bring a soft-deleted user back with its group memberships, as Entra's restore does."""
        with self._lock:
            user = self._get("user", ref, include_deleted=True)
            if user.state != "soft":
                raise KeyError(f"user {ref!r} is not in deleted items")
            user.state = "active"
            user.props.pop("deletedDateTime", None)
            user.restored = self._touch("users", user.id)
            for gid in user.parked:
                group = self._objects.get(gid)
                if group is not None and group.state == "active":
                    self._set_member(group, user.id, "user", True)
            user.parked = []
            return dict(user.props)

    def _remove(self, obj: _Object, permanent: bool) -> None:
        if obj.state == "active":
            for group in self._groups_of(obj.id):
                if obj.kind == "user" and not permanent:
                    obj.parked.append(group.id)
                self._set_member(group, obj.id, obj.kind, False)
        obj.state = "gone" if permanent else "soft"
        obj.removed = self._touch(obj.kind + "s", obj.id)
        if not permanent:
            obj.props["deletedDateTime"] = _iso(self.now())

    def add_group(
        self, display_name: str, *, description: str | None = None, mail: str | None = None
    ) -> dict[str, Any]:
        """Create a security group (mail-enabled when `mail` is given)."""
        with self._lock:
            gid = self._factory.new_id()
            nickname = re.sub(r"[^a-z0-9-]", "-", display_name.lower())
            props = {
                "id": gid,
                "createdDateTime": _iso(self.now()),
                "description": description,
                "displayName": display_name,
                "groupTypes": [],
                "mail": mail,
                "mailEnabled": mail is not None,
                "mailNickname": nickname,
                "securityEnabled": True,
                "visibility": "Public",
                "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
                "isAssignableToRole": False,
            }
            self._insert(_Object(gid, "group", props))
            return dict(props)

    def update_group(self, ref: str, props: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            group = self._get("group", ref)
            _check_props(props, GROUP_PROPERTIES, "group")
            self._change(group, props)
            return dict(group.props)

    def delete_group(self, ref: str, *, permanent: bool = True) -> str:
        """Delete a group; security groups are gone at once, Microsoft 365 groups go to deleted items."""
        with self._lock:
            group = self._get("group", ref, include_deleted=permanent)
            group.members.clear()
            self._remove(group, permanent)
            return group.id

    def change_members(self, group_ref: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> dict[str, Any]:
        """Add and remove direct members (users or groups, by id, UPN, mail or group name)."""
        with self._lock:
            group = self._get("group", group_ref)
            for ref, present in [(r, True) for r in add] + [(r, False) for r in remove]:
                member = self._member(ref)
                if member.id == group.id:
                    raise ValueError("a group cannot be a member of itself")
                self._set_member(group, member.id, member.kind, present)
            return {"id": group.id, "members": sorted(group.members)}

    def _member(self, ref: str) -> _Object:
        try:
            return self._get("user", ref)
        except KeyError:
            pass
        try:
            return self._get("group", ref)
        except KeyError:
            raise KeyError(f"no user or group {ref!r}") from None

    def _set_member(self, group: _Object, member_id: str, kind: str, present: bool) -> None:
        if (member_id in group.members) == present:
            return
        if present:
            group.members[member_id] = kind
        else:
            del group.members[member_id]
        group.member_type[member_id] = kind
        group.member_seq[member_id] = self._touch("groups", group.id)

    def snapshot(self) -> dict[str, Any]:
        """The directory as it is now, for tests to compare a sync's result with."""
        with self._lock:
            users = {o.id: dict(o.props) for o in self._objects.values() if o.kind == "user" and o.state == "active"}
            groups = {
                o.id: {
                    "displayName": o.props.get("displayName"),
                    "users": sorted(m for m, t in o.members.items() if t == "user"),
                    "groups": sorted(m for m, t in o.members.items() if t == "group"),
                }
                for o in self._objects.values()
                if o.kind == "group" and o.state == "active"
            }
            removed_users = sorted(o.id for o in self._objects.values() if o.kind == "user" and o.state != "active")
            return {"users": users, "groups": groups, "removed_users": removed_users}

    # ---------------------------------------------------------- faults and clock

    def now(self) -> float:
        return time.time() + self.clock_offset

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def expire_delta_tokens(
        self, mode: str = "syncStateNotFound", *, status: int | None = None, code_case: str = "camel"
    ) -> None:
        """Make every delta and skip token issued so far answer with `mode` (see EXPIRY_MODES)."""
        if mode not in EXPIRY_MODES:
            raise ValueError(f"mode must be one of {', '.join(EXPIRY_MODES)}")
        if status is None:
            status = 400 if mode == "syncStateNotFound" else 410
        if mode == "location":
            status = 410
        with self._lock:
            self._expired_modes[self._epoch] = (mode, status, code_case)
            self._epoch += 1

    def set_permissions(self, client_id: str, roles: Iterable[str]) -> AppRegistration:
        """Set an app's admin-consented application permissions (new tokens carry them)."""
        with self._lock:
            app = self.apps[client_id]
            app.roles = set(roles)
            return app

    def revoke_tokens(self, client_id: str | None = None) -> None:
        """Invalidate access tokens issued so far, as if they had expired."""
        with self._lock:
            for cid in [client_id] if client_id else list(self.apps):
                self._token_generation[cid] = self._token_generation.get(cid, 0) + 1

    def _take_fault(self, target: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count <= 0 or fault.target not in (target, "any"):
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                self.faults_served += 1
                return fault
        return None

    # --------------------------------------------------------------- statistics

    def reset_stats(self) -> None:
        self.requests: list[RequestRecord] = []
        self.served: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and records served: how much a sync downloaded."""
        with self._lock:
            by_endpoint = Counter(f"{r.method} {_endpoint(r.path)}" for r in self.requests)
            return {
                "requests": len(self.requests),
                "by_endpoint": dict(by_endpoint),
                "served": dict(self.served),
            }

    # --------------------------------------------------------------- tokens (opaque)

    def _seal(self, payload: dict[str, Any]) -> str:
        raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:10]
        return base64.urlsafe_b64encode(mac + raw).rstrip(b"=").decode()

    def _unseal(self, token: str) -> dict[str, Any] | None:
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, raw = blob[:10], blob[10:]
            if not hmac.compare_digest(mac, hmac.new(self._key, raw, hashlib.sha256).digest()[:10]):
                return None
            payload = json.loads(zlib.decompress(raw))
        except (ValueError, zlib.error):
            return None
        return payload if isinstance(payload, dict) else None

    def _round_token(self, rnd: _Round) -> str:
        return self._seal({"x": self._instance, **asdict(rnd)})

    def _open_round(self, token: str, kind: str, what: str, base: str) -> _Round:
        location = f"{base}/v1.0/{kind}/delta?$deltatoken="
        payload = self._unseal(token)
        if payload is None or payload.get("kind") != kind:
            raise GraphError(400, "Request_BadRequest", f"Invalid {what} token.")
        if payload.pop("x") != self._instance:
            raise _expired("syncStateNotFound", 400, "camel")
        rnd = _Round(**{**payload, "select": _tuple(payload["select"]), "ids": _tuple(payload["ids"])})
        if rnd.epoch < self._epoch:
            mode, status, case = self._expired_modes.get(rnd.epoch, ("syncStateNotFound", 400, "camel"))
            raise _expired(mode, status, case, location)
        if self.now() - rnd.issued > self.behaviour.delta_token_lifetime:
            raise _expired("syncStateNotFound", 400, "camel")
        return rnd

    # ------------------------------------------------------------------ delta

    def delta(self, kind: str, params: Mapping[str, str], base: str) -> dict[str, Any]:
        """One page of `/users/delta` or `/groups/delta`."""
        with self._lock:
            if params.get("$skiptoken"):
                rnd = self._open_round(params["$skiptoken"], kind, "skip", base)
            elif params.get("$deltatoken") and params["$deltatoken"] != "latest":
                prev = self._open_round(params["$deltatoken"], kind, "delta", base)
                rnd = replace(prev, initial=False, upto=self._seq, issued=self.now(), after="", moff=0, page=0)
            else:
                select, ids = _delta_options(kind, params)
                rnd = _Round(
                    kind,
                    select,
                    ids,
                    initial=True,
                    since=0,
                    upto=self._seq,
                    epoch=self._epoch,
                    issued=self.now(),
                )
                if params.get("$deltatoken") == "latest":
                    # "Sync from now": no data, just a deltaLink from the current state.
                    done = replace(rnd, initial=False, since=self._seq)
                    return {
                        "@odata.context": _context(base, kind, select),
                        "@odata.deltaLink": f"{base}/v1.0/{kind}/delta?$deltatoken={self._round_token(done)}",
                        "value": [],
                    }
            if kind == "users":
                value, nxt = self._user_page(rnd)
            else:
                value, nxt = self._group_page(rnd)
            body: dict[str, Any] = {"@odata.context": _context(base, kind, rnd.select)}
            if nxt is not None:
                body["@odata.nextLink"] = f"{base}/v1.0/{kind}/delta?$skiptoken={self._round_token(nxt)}"
            else:
                done = replace(rnd, initial=False, since=rnd.upto, after="", moff=0, page=0, issued=self.now())
                body["@odata.deltaLink"] = f"{base}/v1.0/{kind}/delta?$deltatoken={self._round_token(done)}"
            body["value"] = value
            self.served[kind] += sum(1 for item in value if "@removed" not in item)
            self.served[f"{kind}_removed"] += sum(1 for item in value if "@removed" in item)
            self.served["member_entries"] += sum(len(item.get("members@delta", ())) for item in value)
            return body

    def _roll(self, rnd: _Round, salt: str) -> float:
        digest = hashlib.sha256(
            f"{self.seed}:{salt}:{rnd.kind}:{rnd.since}:{rnd.after}:{rnd.moff}:{rnd.page}".encode()
        ).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def _between(self, rnd: _Round, salt: str, low: int, high: int) -> int:
        low = max(1, low)
        return low + int(self._roll(rnd, salt) * (max(low, high) - low + 1))

    def _candidates(self, rnd: _Round) -> list[str]:
        if rnd.ids is not None:
            return sorted(set(rnd.ids))
        if rnd.initial:
            return self._order[rnd.kind]
        lo = bisect.bisect_right(self._log_seqs, rnd.since)
        hi = bisect.bisect_right(self._log_seqs, rnd.upto)
        return sorted({oid for kind, oid in self._log[lo:hi] if kind == rnd.kind})

    def _qualifies(self, obj: _Object | None, rnd: _Round) -> str | None:
        if obj is None or obj.kind + "s" != rnd.kind:
            return None
        if rnd.initial:
            if obj.created > rnd.upto:
                return None  # created during the round: the next round has it
            if obj.state == "active":
                return "item"
            return "removed" if obj.state == "soft" and self.behaviour.initial_removed else None
        since = rnd.since
        if obj.state != "active":
            # Created and deleted between two rounds: the client never knew it, so it never appears.
            return "removed" if obj.removed > since and obj.created <= since else None
        if obj.created > since or obj.restored > since:
            return "item"
        if any(obj.prop_seq.get(p, -1) > since for p in rnd.tracked):
            return "item"
        if rnd.members and any(seq > since for seq in obj.member_seq.values()):
            return "item"
        return None

    def _render(self, obj: _Object, select: tuple[str, ...] | None, *, delta: bool) -> dict[str, Any]:
        names = (
            select
            if select is not None
            else (USER_DEFAULT_PROPERTIES if obj.kind == "user" else GROUP_DEFAULT_PROPERTIES)
        )
        item: dict[str, Any] = {"id": obj.id}
        for name in names:
            if name == "id" or name in GROUP_RELATIONSHIPS:
                continue
            if name in obj.props:
                item[name] = obj.props[name]
            elif not delta:
                # Lists return unset selected properties as null; delta leaves them out.
                item[name] = None
        return item

    def _start(self, rnd: _Round, cands: list[str]) -> int:
        return bisect.bisect_right(cands, rnd.after) if rnd.after else 0

    def _user_page(self, rnd: _Round) -> tuple[list[dict[str, Any]], _Round | None]:
        cands = self._candidates(rnd)
        start = self._start(rnd, cands)
        nxt = replace(rnd, page=rnd.page + 1)
        if start < len(cands) and self._roll(rnd, "empty") < self.behaviour.empty_page_rate:
            return [], nxt
        if rnd.after and self._roll(rnd, "replay") < self.behaviour.replay_rate:
            start = max(0, start - 1)  # the last object of the previous page again
        size = self._between(rnd, "size", self.behaviour.page_min, self.behaviour.page_max)
        chunk = cands[start : start + size]
        value = []
        for oid in chunk:
            obj = self._objects.get(oid)
            verdict = self._qualifies(obj, rnd)
            if verdict == "item" and obj is not None:
                value.append(self._render(obj, rnd.select, delta=True))
            elif verdict == "removed":
                value.append(_removed_item(oid, obj))
        if start + size >= len(cands):
            return value, None
        return value, replace(nxt, after=chunk[-1])

    def _member_entries(self, group: _Object, rnd: _Round) -> list[dict[str, Any]]:
        """The group's member entries of this round; a big group's pages share one list (every
        write moves `_seq`, so a list is never served after a change it does not show)."""
        key = (group.id, rnd.initial, rnd.since, self._seq)
        cached = self._entries
        if cached is None or cached[0] != key:
            cached = self._entries = (key, self._make_member_entries(group, rnd))
        return cached[1]

    def _make_member_entries(self, group: _Object, rnd: _Round) -> list[dict[str, Any]]:
        if rnd.initial:
            return [{"@odata.type": f"#microsoft.graph.{t}", "id": m} for m, t in sorted(group.members.items())]
        entries = []
        for member_id in sorted(group.member_seq):
            if group.member_seq[member_id] <= rnd.since:
                continue
            entry: dict[str, Any] = {
                "@odata.type": f"#microsoft.graph.{group.member_type[member_id]}",
                "id": member_id,
            }
            if member_id not in group.members:
                entry["@removed"] = {"reason": "deleted"}
            entries.append(entry)
        return entries

    def _group_page(self, rnd: _Round) -> tuple[list[dict[str, Any]], _Round | None]:
        behaviour = self.behaviour
        cands = self._candidates(rnd)
        nxt = replace(rnd, page=rnd.page + 1)
        if rnd.moff:
            index, first_member = bisect.bisect_left(cands, rnd.after), rnd.moff
        else:
            index, first_member = self._start(rnd, cands), 0
        if index < len(cands) and self._roll(rnd, "empty") < behaviour.empty_page_rate:
            return [], nxt
        if rnd.after and self._roll(rnd, "replay") < behaviour.replay_rate:
            if rnd.moff:
                # Replay the tail of the previous slice of this group's members.
                first_member = max(0, first_member - self._between(rnd, "replay-n", 1, 5))
            else:
                index = max(0, index - 1)
        budget = self._between(rnd, "budget", behaviour.member_budget_min, behaviour.member_budget_max)
        max_groups = self._between(rnd, "groups", 1, behaviour.group_page_max)
        value: list[dict[str, Any]] = []
        while index < len(cands) and len(value) < max_groups and budget > 0:
            gid = cands[index]
            obj = self._objects.get(gid)
            verdict = self._qualifies(obj, rnd)
            if verdict is None or obj is None:
                index, first_member = index + 1, 0
                continue
            if verdict == "removed":
                value.append(_removed_item(gid, obj))
                index, first_member, budget = index + 1, 0, budget - 1
                continue
            item: dict[str, Any] = self._render(obj, rnd.select, delta=True) if first_member == 0 else {"id": gid}
            if not rnd.members:
                value.append(item)
                index, budget = index + 1, budget - 1
                continue
            entries = self._member_entries(obj, rnd)
            taken = entries[first_member : first_member + budget]
            if taken or rnd.initial or first_member == 0:
                item["members@delta"] = taken
                value.append(item)
            budget -= max(1, len(taken))
            end = first_member + len(taken)
            if end < len(entries):
                # The rest of this group's members continue on the next page.
                return value, replace(nxt, after=gid, moff=end)
            index, first_member = index + 1, 0
        if index >= len(cands):
            return value, None
        return value, replace(nxt, after=cands[index - 1] if index else "", moff=0)

    # ------------------------------------------------------------------ lists

    def list_objects(
        self,
        kind: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        base: str,
        raw_query: str,
        path: str,
        source: list[_Object] | None = None,
        cast: str | None = None,
    ) -> dict[str, Any]:
        """One page of `/users`, `/groups`, or a group's members: `$select`, `$top`, `$filter`, `$count`."""
        with self._lock:
            listing_members = source is not None
            object_type = "user" if kind == "users" else "group"
            allowed = USER_PROPERTIES if kind == "users" else GROUP_PROPERTIES
            if listing_members and cast is None:
                # A member list mixes users and groups: either's properties may be selected.
                allowed = USER_PROPERTIES | GROUP_PROPERTIES
            select = _parse_select(params.get("$select"), allowed, object_type, kind == "users")
            top = _parse_top(params.get("$top"), self.behaviour.list_page_size)
            for unsupported in ("$expand", "$skip"):
                if unsupported in params:
                    raise GraphError(
                        400,
                        "Request_BadRequest",
                        f"Query option '{unsupported}' is not supported on this resource.",
                    )
            eventual = headers.get("consistencylevel", "").lower() == "eventual"
            advanced = "$search" in params or params.get("$count") == "true" or cast is not None or "$orderby" in params
            if advanced and not eventual:
                if "$search" in params:
                    raise GraphError(
                        400,
                        "Request_UnsupportedQuery",
                        "Request with $search query parameter only works through MSGraph with a "
                        "special request header: 'ConsistencyLevel: eventual'",
                    )
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Advanced query requires the header 'ConsistencyLevel: eventual' and $count=true.",
                )
            if source is None:
                source = [self._objects[i] for i in self._order[kind]]
            objects = [o for o in source if o.state == "active" and (cast is None or o.kind == cast)]
            if "$filter" in params:
                predicate = _parse_filter(params["$filter"])
                objects = [o for o in objects if predicate(o)]
            if "$search" in params:
                objects = _search(objects, params["$search"])
            if "$orderby" in params:
                key = params["$orderby"].split()[0]
                objects.sort(
                    key=lambda o: str(o.props.get(key) or ""),
                    reverse=params["$orderby"].lower().endswith(" desc"),
                )
            options = _options_digest(raw_query)
            offset = 0
            if params.get("$skiptoken"):
                payload = self._unseal(params["$skiptoken"])
                if payload is None or payload.get("q") != options or payload.get("p") != path:
                    raise GraphError(
                        400,
                        "Request_BadRequest",
                        "The skip token is not valid for this request; use @odata.nextLink unchanged.",
                    )
                offset = int(payload["o"])
            page = objects[offset : offset + top]
            value = []
            for obj in page:
                item = self._render(obj, select, delta=False)
                if listing_members:
                    item = {"@odata.type": f"#microsoft.graph.{obj.kind}", **item}
                value.append(item)
            body: dict[str, Any] = {"@odata.context": _context(base, kind, select)}
            if params.get("$count") == "true" and offset == 0:
                body["@odata.count"] = len(objects)
            if offset + top < len(objects):
                kept = "&".join(
                    part
                    for part in raw_query.split("&")
                    if part and not part.lower().startswith(("$skiptoken=", "%24skiptoken="))
                )
                token = self._seal({"q": options, "p": path, "o": offset + top})
                body["@odata.nextLink"] = f"{base}{path}?{kept}{'&' if kept else ''}$skiptoken={token}"
            body["value"] = value
            self.served[kind] += len(value)
            return body

    def members_source(self, group_ref: str, transitive: bool) -> list[_Object]:
        with self._lock:
            try:
                group = self._get("group", group_ref)
            except KeyError:
                raise _not_found(group_ref) from None
            if not transitive:
                return [self._objects[m] for m in sorted(group.members)]
            seen: dict[str, _Object] = {}
            stack = [group]
            visited = {group.id}
            while stack:
                current = stack.pop()
                for member_id in current.members:
                    member = self._objects[member_id]
                    seen[member_id] = member
                    if member.kind == "group" and member_id not in visited:
                        visited.add(member_id)
                        stack.append(member)
            return [seen[k] for k in sorted(seen)]

    def get_object(self, kind: str, ref: str, params: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            allowed = USER_PROPERTIES if kind == "users" else GROUP_PROPERTIES
            select = _parse_select(params.get("$select"), allowed, kind[:-1], False)
            try:
                obj = self._get(kind[:-1], ref)
            except KeyError:
                raise _not_found(ref) from None
            return self._render(obj, select, delta=False)

    # ------------------------------------------------------------------ auth

    def tenant_matches(self, tenant: str) -> bool:
        return tenant.lower() in {
            self.tenant_id,
            self.tenant_domain.lower(),
            self.domain.lower(),
            "organizations",
        }

    def issue_token(self, tenant: str, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        """The client-credentials grant: validate like Entra, in the order Entra reports problems."""
        with self._lock:
            if not self.tenant_matches(tenant):
                raise AADError(
                    400,
                    "invalid_request",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                    "are signing into the correct cloud. Check with your subscription administrator, "
                    "this may happen if there are no active subscriptions for the tenant.",
                )
            if form.get("grant_type") != "client_credentials":
                raise AADError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    "The app requested an unsupported grant type "
                    f"'{form.get('grant_type', '')}'. This sandbox issues client-credentials tokens only.",
                )
            client_id = form.get("client_id", "")
            if not client_id:
                raise AADError(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            app = self.apps.get(client_id)
            if app is None:
                raise AADError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{self.tenant_name}'. This can happen if the application has not been installed by "
                    "the administrator of the tenant or consented to by any user in the tenant. You may "
                    "have sent your authentication request to the wrong tenant.",
                )
            scope = form.get("scope", "")
            resource = scope[: -len("/.default")] if scope.endswith("/.default") else None
            if resource is None:
                raise AADError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must "
                    "have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
            own = f"{urlsplit(token_url).scheme}://{urlsplit(token_url).netloc}"
            if resource.rstrip("/") not in {
                GRAPH_RESOURCE,
                "00000003-0000-0000-c000-000000000000",
                own,
                own.replace("http://", "https://"),
            }:
                raise AADError(
                    400,
                    "invalid_resource",
                    500011,
                    f"The resource principal named {resource} was not found in the tenant named "
                    f"{self.tenant_name}. This can happen if the application has not been installed by "
                    "the administrator of the tenant or consented to by any user in the tenant.",
                )
            self._authenticate_client(app, form, token_url)
            now = self.now()
            claims: dict[str, Any] = {
                "aud": GRAPH_RESOURCE,
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "iat": int(now),
                "nbf": int(now),
                "exp": int(now) + self.behaviour.access_token_lifetime,
                "app_displayname": app.display_name,
                "appid": app.client_id,
                "idtyp": "app",
                "oid": app.service_principal_id,
                "sub": app.service_principal_id,
                "tid": self.tenant_id,
                "uti": secrets.token_urlsafe(16),
                "ver": "1.0",
                "xms_gen": self._token_generation.get(app.client_id, 0),
            }
            if app.roles:
                # Entra leaves `roles` out entirely when nothing has admin consent.
                claims["roles"] = sorted(app.roles)
            return {
                "token_type": "Bearer",
                "expires_in": self.behaviour.access_token_lifetime,
                "ext_expires_in": self.behaviour.access_token_lifetime,
                "access_token": self._jwt(claims),
            }

    def _authenticate_client(self, app: AppRegistration, form: Mapping[str, str], token_url: str) -> None:
        if form.get("client_secret"):
            if not any(hmac.compare_digest(form["client_secret"], s) for s in app.secrets):
                raise AADError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                )
            return
        assertion = form.get("client_assertion")
        if not assertion:
            raise AADError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise AADError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(sig_b64)
        except ValueError:
            raise AADError(401, "invalid_client", 50027, "Client assertion is not a well-formed JWT.") from None
        thumbprint = str(header.get("x5t#S256") or header.get("x5t") or "")
        # Clients differ on padding and alphabet; the digest is what counts.
        cert = app.certificates.get(thumbprint.rstrip("=").replace("+", "-").replace("/", "_"))
        if cert is None:
            raise AADError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered "
                f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
                f"to see configured keys for app Id '{app.client_id}'.]",
            )
        key = cert.public_key()
        signed = f"{head_b64}.{claims_b64}".encode()
        alg = header.get("alg")
        try:
            if not isinstance(key, rsa.RSAPublicKey) or alg not in ("RS256", "PS256"):
                raise InvalidSignature
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg == "RS256"
                else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            )
            key.verify(signature, signed, pad, hashes.SHA256())
        except InvalidSignature:
            raise AADError(401, "invalid_client", 700027, "Client assertion contains an invalid signature.") from None
        audience = urlsplit(str(claims.get("aud", "")))
        expected = urlsplit(token_url)
        if (audience.netloc, audience.path) != (expected.netloc, expected.path):
            raise AADError(
                401,
                "invalid_client",
                700212,
                f"The audience '{claims.get('aud')}' of the client assertion is not the token endpoint.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise AADError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        if float(claims.get("exp", 0)) < self.now():
            raise AADError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")

    def _jwt(self, claims: dict[str, Any]) -> str:
        head = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "sandbox"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The claims of a valid bearer token, or the 401 Graph gives for a bad one."""
        if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = authorization[7:].strip()
        try:
            head, body, sig = token.split(".")
            expected = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, expected):
                raise ValueError("signature")
            claims: dict[str, Any] = json.loads(_unb64(body))
        except ValueError:
            raise GraphError(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.)."
            ) from None
        with self._lock:
            if claims.get("tid") != self.tenant_id or claims.get("appid") not in self.apps:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
            if claims.get("exp", 0) < self.now() or claims.get("xms_gen", 0) < self._token_generation.get(
                claims["appid"], 0
            ):
                raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        return claims

    def charge(self, claims: Mapping[str, Any], cost: int) -> None:
        """Spend resource units; past the bucket, a 429 like Graph's identity throttling."""
        limit = self.behaviour.ru_limit_per_10s
        if limit is None:
            return
        with self._lock:
            now = time.monotonic()
            while self._ru_window and now - self._ru_window[0][0] > 10:
                self._ru_window.popleft()
            used = sum(c for _, c in self._ru_window)
            if used + cost > limit:
                wait = max(1, int(10 - (now - self._ru_window[0][0])) + 1) if self._ru_window else 1
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests.",
                    {
                        "Retry-After": str(wait),
                        "x-ms-throttle-scope": (f"Tenant_Application/Read/{claims.get('appid')}/{self.tenant_id}"),
                        "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                    },
                )
            self._ru_window.append((now, cost))


# ---------------------------------------------------------------------- helpers


def _user_props(person: Person) -> dict[str, Any]:
    login = person.login
    props: dict[str, Any] = {
        "id": person.id,
        "accountEnabled": person.active,
        "businessPhones": [person.business_phone],
        "city": person.city,
        "companyName": person.domain.split(".")[0].capitalize(),
        "country": person.country,
        "createdDateTime": person.created,
        "department": person.department,
        "displayName": person.display_name,
        "employeeHireDate": f"{person.hire_date}T00:00:00Z",
        "employeeId": person.employee_id,
        "employeeType": "Employee",
        "givenName": person.given_name,
        "identities": [{"signInType": "userPrincipalName", "issuer": person.domain, "issuerAssignedId": login}],
        "jobTitle": person.job_title,
        "mail": person.email,
        "mailNickname": person.username,
        "mobilePhone": person.mobile_phone,
        "officeLocation": person.office,
        "onPremisesExtensionAttributes": {f"extensionAttribute{i}": None for i in range(1, 16)}
        | {"extensionAttribute1": person.team},
        "otherMails": [],
        "preferredLanguage": person.preferred_language,
        "proxyAddresses": [f"SMTP:{person.email}"] if person.email else [],
        "surname": person.surname,
        "usageLocation": person.country,
        "userPrincipalName": login,
        "userType": "Member",
    }
    if person.email is None:
        # Never set, rather than null: delta leaves it out.
        del props["mail"]
    return props


def _check_props(props: Mapping[str, Any], allowed: frozenset[str], object_type: str) -> None:
    for name in props:
        if name not in allowed and not name.startswith("extension_"):
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{object_type}'.",
            )


def _parse_select(
    raw: str | None,
    allowed: frozenset[str],
    object_type: str,
    collection: bool,
    relationships: frozenset[str] = frozenset(),
) -> tuple[str, ...] | None:
    if raw is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        if name in relationships:
            continue
        if name not in allowed and not name.startswith("extension_"):
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{object_type}'.",
            )
        if collection and name in NON_COLLECTION_USER_PROPERTIES:
            raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
    return names


def _parse_top(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        top = -1
    if not 1 <= top <= 999:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
        )
    return top


_ID_EQ = re.compile(r"^\s*id\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _delta_options(kind: str, params: Mapping[str, str]) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    for option in ("$top", "$orderby", "$expand", "$search", "$count"):
        if option in params:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The query option '{option}' is not supported with delta query.",
            )
    if kind == "users":
        select = _parse_select(params.get("$select"), USER_PROPERTIES, "user", True)
    else:
        select = _parse_select(params.get("$select"), GROUP_PROPERTIES, "group", True, GROUP_RELATIONSHIPS)
    ids = None
    if "$filter" in params:
        clauses = re.split(r"\s+or\s+", params["$filter"].strip(), flags=re.IGNORECASE)
        matches = [_ID_EQ.match(c) for c in clauses]
        if not all(matches):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Delta query supports only $filter=id eq '…' clauses joined with 'or'.",
            )
        if len(clauses) > MAX_FILTER_IDS:
            raise GraphError(
                400, "Request_UnsupportedQuery", f"Delta query $filter accepts at most {MAX_FILTER_IDS} ids."
            )
        ids = tuple(m.group(1) for m in matches if m)
    return select, ids


_CLAUSE = re.compile(
    r"^\s*(?:(?P<prop>[A-Za-z_]+)\s+eq\s+(?P<value>'(?:[^']|'')*'|true|false|null)"
    r"|startswith\(\s*(?P<sprop>[A-Za-z_]+)\s*,\s*'(?P<prefix>(?:[^']|'')*)'\s*\))\s*$",
    re.IGNORECASE,
)


def _parse_filter(expression: str) -> Any:
    """A small OData `$filter`: `prop eq 'v'`, `prop eq true`, `startswith(prop,'v')` joined by and/or."""
    tests = []
    for disjunct in re.split(r"\s+or\s+", expression.strip()):
        conjuncts = []
        for clause in re.split(r"\s+and\s+", disjunct):
            match = _CLAUSE.match(clause)
            if not match:
                raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
            conjuncts.append(_clause_test(match))
        tests.append(conjuncts)
    return lambda obj: any(all(t(obj) for t in conj) for conj in tests)


def _clause_test(match: re.Match[str]) -> Any:
    if match.group("prop"):
        prop, raw = match.group("prop"), match.group("value")
        literal: Any = {"true": True, "false": False, "null": None}.get(raw.lower())
        if raw.startswith("'"):
            literal = raw[1:-1].replace("''", "'")
        if isinstance(literal, str):
            return lambda obj: (
                str(obj.props.get(prop) or "").lower() == literal.lower() if prop != "id" else obj.id == literal
            )
        return lambda obj: obj.props.get(prop) == literal
    prop, prefix = match.group("sprop"), match.group("prefix").replace("''", "'").lower()
    return lambda obj: str(obj.props.get(prop) or "").lower().startswith(prefix)


def _search(objects: list[_Object], expression: str) -> list[_Object]:
    match = re.fullmatch(r'\s*"(\w+):([^"]*)"\s*', expression)
    if not match:
        raise GraphError(400, "Request_UnsupportedQuery", 'Invalid $search; use "property:text".')
    prop, text = match.group(1), match.group(2).lower()
    return [o for o in objects if any(word.startswith(text) for word in str(o.props.get(prop) or "").lower().split())]


def _options_digest(raw_query: str) -> str:
    kept = sorted(p for p in raw_query.split("&") if p and not p.lower().startswith(("$skiptoken=", "%24skiptoken=")))
    return hashlib.sha256("&".join(kept).encode()).hexdigest()[:16]


def _removed_item(oid: str, obj: _Object | None) -> dict[str, Any]:
    reason = "changed" if obj is not None and obj.state == "soft" else "deleted"
    return {"id": oid, "@removed": {"reason": reason}}


def _expired(mode: str, status: int, code_case: str, location: str = "") -> GraphError:
    pascal = code_case == "pascal"
    if mode == "resyncRequired":
        return GraphError(
            status,
            "ResyncRequired" if pascal else "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
        )
    if mode == "location":
        # Location carries an empty $deltatoken: start over as a first round.
        return GraphError(
            410,
            "syncStateInvalid",
            "The sync state is invalid; resynchronize from the Location.",
            {"Location": location},
        )
    return GraphError(
        status,
        "SyncStateNotFound" if pascal else "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )


def _not_found(ref: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present.",
    )


def _context(base: str, kind: str, select: tuple[str, ...] | None) -> str:
    return f"{base}/v1.0/$metadata#{kind}" + (f"({','.join(select)})" if select else "")


def _endpoint(path: str) -> str:
    """`/v1.0/groups/<id>/members` -> `/v1.0/groups/{id}/members`, to count requests by endpoint."""
    parts = path.split("/")
    return "/".join("{id}" if re.fullmatch(r"[0-9a-f-]{36}", p) else p for p in parts)


def _tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ru_cost(path: str, params: Mapping[str, str]) -> int:
    if path.endswith("/transitiveMembers") or "/transitiveMembers/" in path:
        cost = 5
    elif path.endswith("/members") or "/members/" in path:
        cost = 3
    elif path.rstrip("/") in ("/v1.0/users", "/v1.0/users/delta"):
        cost = 2
    else:
        cost = 1
    if "$select" in params:
        cost -= 1
    if "$expand" in params:
        cost += 1
    if params.get("$top", "").isdigit() and int(params["$top"]) < 20:
        cost -= 1
    return max(1, cost)


# ---------------------------------------------------------------------- the app


def graph_error_response(error: GraphError, request: Request) -> JSONResponse:
    """The Graph error envelope, with the `innerError` Graph always adds."""
    request_id = str(uuid.uuid4())
    inner = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": request.headers.get("client-request-id", request_id),
    }
    headers = {"request-id": request_id, "client-request-id": inner["client-request-id"], **error.headers}
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message, "innerError": inner}},
        status_code=error.status,
        headers=headers,
    )


def aad_error_response(error: AADError) -> JSONResponse:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC)
    return JSONResponse(
        {
            "error": error.error,
            "error_description": f"AADSTS{error.code}: {error.description} Trace ID: {trace} Correlation ID: "
            f"{correlation} Timestamp: {stamp.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [error.code],
            "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
        },
        status_code=error.status,
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _params(request: Request) -> dict[str, str]:
    # Graph accepts system query options with or without the `$`.
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        name = key if key.startswith("$") else f"${key}"
        if name[1:] in {
            "select",
            "top",
            "filter",
            "count",
            "search",
            "orderby",
            "expand",
            "skip",
            "skiptoken",
            "deltatoken",
        }:
            params[name] = value
        else:
            params[key] = value
    return params


def create_app(sandbox: EntraSandbox) -> FastAPI:
    """The ASGI app: token endpoint, Graph `/v1.0`, and `/_admin` to mutate and inject faults."""
    app = FastAPI(
        title="AccessIQ Entra ID sandbox",
        docs_url="/_admin/docs",
        openapi_url="/_admin/openapi.json",
        redoc_url=None,
    )

    @app.middleware("http")
    async def record_and_inject(request: Request, call_next: Any) -> Response:
        path = request.url.path
        record = RequestRecord(request.method, path, request.url.query)
        if not path.startswith("/_admin"):
            with sandbox._lock:
                sandbox.requests.append(record)
            target = "graph" if path.startswith("/v1.0") else "token"
            fault = sandbox._take_fault(target, path)
            if fault is not None:
                response = await _fault_response(fault, request, target, call_next)
                record.status = response.status_code
                record.waits = asked_wait(response.headers)
                return response
        response = await call_next(request)
        record.status = response.status_code
        record.waits = asked_wait(response.headers)
        return response

    async def _fault_response(fault: Fault, request: Request, target: str, call_next: Any) -> Response:
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay)
            response: Response = await call_next(request)
            return response
        if fault.kind == "expire":
            # Expired while the client pages: this very request finds its token expired.
            sandbox.expire_delta_tokens(fault.expiry)
            expired: Response = await call_next(request)
            return expired
        if fault.kind == "forbidden":
            return graph_error_response(
                GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
                request,
            )
        if fault.kind in WIRE_FAULTS:
            status, headers, body = await buffered(await call_next(request))
            if fault.kind != "loop":
                return body_fault(fault.kind, status, headers, body)
            page = json.loads(body)
            if isinstance(page, dict) and "@odata.nextLink" in page:
                # The next page is the one just served: a client that follows it goes round forever.
                page["@odata.nextLink"] = str(request.url)
            return JSONResponse(page, status_code=status, headers=headers)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if target == "token":
            error = AADError(
                fault.status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
            response = aad_error_response(error)
            response.headers.update(headers)
            return response
        if fault.status == 429:
            headers |= {
                "x-ms-throttle-scope": f"Tenant_Application/Read/sandbox/{sandbox.tenant_id}",
                "x-ms-throttle-information": "ResourceUnitLimitExceeded",
            }
        message = "Too many requests." if fault.status == 429 else "The service is temporarily unavailable."
        return graph_error_response(GraphError(fault.status, fault.code, message, headers), request)

    # ------------------------------------------------------------- sign-in

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration", include_in_schema=False)
    async def openid_configuration(tenant: str, request: Request) -> Response:
        if not sandbox.tenant_matches(tenant):
            return aad_error_response(
                AADError(
                    400,
                    "invalid_tenant",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the "
                    "correct tenant ID and are signing into the correct cloud.",
                )
            )
        root = f"{_base(request)}/{sandbox.tenant_id}"
        return JSONResponse(
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{root}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{_base(request)}/oidc/userinfo",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": "graph.microsoft.com",
            }
        )

    @app.get("/{tenant}/discovery/v2.0/keys", include_in_schema=False)
    async def keys(tenant: str) -> JSONResponse:
        return JSONResponse({"keys": []})

    @app.post("/{tenant}/oauth2/v2.0/token", include_in_schema=False)
    async def token(tenant: str, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            # client_secret_basic: the same credentials in the Authorization header.
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                client_id, secret = "", ""
            form.setdefault("client_id", unquote(client_id))
            form.setdefault("client_secret", unquote(secret))
        try:
            return JSONResponse(sandbox.issue_token(tenant, form, str(request.url.replace(query=""))))
        except AADError as error:
            return aad_error_response(error)

    # ------------------------------------------------------------- Graph

    @app.api_route("/v1.0/{resource:path}", methods=["GET"], include_in_schema=False)
    async def graph(resource: str, request: Request) -> Response:
        params = _params(request)
        try:
            claims = sandbox.authorize(request.headers.get("authorization"))
            sandbox.charge(claims, _ru_cost(request.url.path, params))
            body = _dispatch(resource, request, params, set(claims.get("roles", [])))
        except GraphError as error:
            return graph_error_response(error, request)
        request_id = str(uuid.uuid4())
        headers = {
            "request-id": request_id,
            "client-request-id": request.headers.get("client-request-id", request_id),
            "x-ms-resource-unit": str(_ru_cost(request.url.path, params)),
        }
        if isinstance(body, int):
            return PlainTextResponse(str(body), headers=headers)
        return JSONResponse(
            body, headers=headers, media_type="application/json;odata.metadata=minimal;odata.streaming=true"
        )

    def _dispatch(resource: str, request: Request, params: dict[str, str], roles: set[str]) -> Any:
        parts = [p for p in resource.split("/") if p]
        base = sandbox.behaviour.link_base or _base(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not parts or parts[0] not in ("users", "groups"):
            segment = parts[0] if parts else ""
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        kind = parts[0]
        needed = USER_READ_ROLES if kind == "users" else GROUP_READ_ROLES
        if not roles & needed:
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        if len(parts) == 1:
            return sandbox.list_objects(kind, params, headers, base, request.url.query, request.url.path)
        if parts[1] == "delta" and len(parts) == 2:
            return sandbox.delta(kind, params, base)
        if parts[1] == "$count" and len(parts) == 2:
            if headers.get("consistencylevel", "").lower() != "eventual":
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "$count is not currently supported without the header 'ConsistencyLevel: eventual'.",
                )
            return sum(1 for i in sandbox._order[kind] if sandbox._objects[i].state == "active")
        if len(parts) == 2:
            return sandbox.get_object(kind, parts[1], params)
        if kind == "groups" and parts[2] in ("members", "transitiveMembers") and len(parts) <= 4:
            cast = None
            if len(parts) == 4:
                if parts[3] not in ("microsoft.graph.user", "microsoft.graph.group"):
                    raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported cast '{parts[3]}'.")
                cast = parts[3].rsplit(".", 1)[1]
                if params.get("$count") != "true" or headers.get("consistencylevel", "").lower() != "eventual":
                    raise GraphError(
                        400,
                        "Request_UnsupportedQuery",
                        "OData casts require the header 'ConsistencyLevel: eventual' and $count=true.",
                    )
            source = sandbox.members_source(parts[1], transitive=parts[2] == "transitiveMembers")
            member_kind = "users" if cast == "user" else "groups" if cast == "group" else "users"
            return sandbox.list_objects(
                member_kind,
                params,
                headers,
                base,
                request.url.query,
                request.url.path,
                source=source,
                cast=cast,
            )
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[-1]}'.")

    _admin_routes(app, sandbox)
    return app


def _admin_routes(app: FastAPI, sandbox: EntraSandbox) -> None:
    """`/_admin`: change the directory and inject faults while a client syncs against the sandbox."""

    def fail(exc: Exception) -> JSONResponse:
        status = 404 if isinstance(exc, KeyError) else 400
        detail = exc.message if isinstance(exc, GraphError) else str(exc).strip("'\"")
        return JSONResponse({"detail": detail}, status_code=status)

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    @app.get("/_admin/info")
    async def info(request: Request) -> JSONResponse:
        """Tenant, credentials and sizes: what a directory document needs to point at this sandbox."""
        base = _base(request)
        snapshot = sandbox.snapshot()
        return JSONResponse(
            {
                "tenant_id": sandbox.tenant_id,
                "tenant_domain": sandbox.tenant_domain,
                "authority_url": base,
                "graph_url": base,
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "users": len(snapshot["users"]),
                "groups": len(snapshot["groups"]),
                "deleted_users": len(snapshot["removed_users"]),
                "seed": sandbox.seed,
                "apps": {cid: sorted(a.roles) for cid, a in sandbox.apps.items()},
                "behaviour": asdict(sandbox.behaviour),
            }
        )

    @app.post("/_admin/users")
    async def add_user(request: Request) -> JSONResponse:
        """Create a user; any Graph user properties in the body override the generated ones."""
        try:
            body = await body_of(request)
            return JSONResponse(
                sandbox.add_user(body.get("properties", body), department=body.get("department")),
                status_code=201,
            )
        except (KeyError, ValueError, GraphError) as exc:
            return fail(exc)

    @app.patch("/_admin/users/{ref}")
    async def update_user(ref: str, request: Request) -> JSONResponse:
        try:
            return JSONResponse(sandbox.update_user(ref, await body_of(request)))
        except (KeyError, ValueError, GraphError) as exc:
            return fail(exc)

    @app.post("/_admin/users/{ref}/{action}")
    async def user_action(ref: str, action: str) -> JSONResponse:
        """`disable`, `enable` or `restore` a user (by id, UPN or mail)."""
        try:
            if action == "disable":
                return JSONResponse(sandbox.disable_user(ref))
            if action == "enable":
                return JSONResponse(sandbox.enable_user(ref))
            if action == "restore":
                return JSONResponse(sandbox.restore_user(ref))
            return JSONResponse({"detail": f"unknown action {action!r}"}, status_code=404)
        except (KeyError, ValueError) as exc:
            return fail(exc)

    @app.delete("/_admin/users/{ref}")
    async def delete_user(ref: str, permanent: bool = False) -> JSONResponse:
        try:
            return JSONResponse({"id": sandbox.delete_user(ref, permanent=permanent), "permanent": permanent})
        except KeyError as exc:
            return fail(exc)

    @app.post("/_admin/groups")
    async def add_group(request: Request) -> JSONResponse:
        try:
            body = await body_of(request)
            return JSONResponse(
                sandbox.add_group(str(body["displayName"]), description=body.get("description"), mail=body.get("mail")),
                status_code=201,
            )
        except (KeyError, ValueError) as exc:
            return fail(exc)

    @app.patch("/_admin/groups/{ref}")
    async def update_group(ref: str, request: Request) -> JSONResponse:
        try:
            return JSONResponse(sandbox.update_group(ref, await body_of(request)))
        except (KeyError, ValueError, GraphError) as exc:
            return fail(exc)

    @app.delete("/_admin/groups/{ref}")
    async def delete_group(ref: str, permanent: bool = True) -> JSONResponse:
        try:
            return JSONResponse({"id": sandbox.delete_group(ref, permanent=permanent), "permanent": permanent})
        except KeyError as exc:
            return fail(exc)

    @app.post("/_admin/groups/{ref}/members")
    async def members(ref: str, request: Request) -> JSONResponse:
        """Body `{"add": [...], "remove": [...]}`: user ids/UPNs/mails or group ids/names."""
        try:
            body = await body_of(request)
            return JSONResponse(sandbox.change_members(ref, body.get("add", []), body.get("remove", [])))
        except (KeyError, ValueError) as exc:
            return fail(exc)

    @app.get("/_admin/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse([asdict(f) for f in sandbox.faults])

    @app.post("/_admin/faults")
    async def add_fault(request: Request) -> JSONResponse:
        """Queue a fault: `{"kind": "throttle"|"error"|"delay", "count", "status", "retry_after", ...}`."""
        try:
            body = await body_of(request)
            known = {f.name for f in fields(Fault)}
            unknown = set(body) - known
            if unknown:
                raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
            fault = Fault(**body)
            if fault.kind == "error" and "status" not in body:
                fault.status, fault.code = 503, "serviceNotAvailable"
            sandbox.inject(fault)
            return JSONResponse(asdict(fault), status_code=201)
        except (TypeError, ValueError) as exc:
            return fail(exc)

    @app.delete("/_admin/faults")
    async def clear_faults() -> JSONResponse:
        with sandbox._lock:
            sandbox.faults.clear()
        return JSONResponse({"faults": 0})

    @app.post("/_admin/delta/expire")
    async def expire(request: Request) -> JSONResponse:
        """Expire every delta and skip token so far.

        Body: `{"mode": "syncStateNotFound" | "resyncRequired" | "location", "status": 400 | 410}`.
        """
        try:
            body = await body_of(request)
            sandbox.expire_delta_tokens(
                body.get("mode", "syncStateNotFound"),
                status=body.get("status"),
                code_case=body.get("code_case", "camel"),
            )
            return JSONResponse({"expired": True, **body})
        except ValueError as exc:
            return fail(exc)

    @app.post("/_admin/clock")
    async def clock(request: Request) -> JSONResponse:
        """Move the sandbox's clock forward (`{"advance": seconds}`), e.g. past the 7-day token lifetime."""
        body = await body_of(request)
        sandbox.clock_offset += float(body.get("advance", 0))
        return JSONResponse({"clock_offset": sandbox.clock_offset})

    @app.put("/_admin/apps/{client_id}/permissions")
    async def permissions(client_id: str, request: Request) -> JSONResponse:
        """Set the consented application permissions (`{"roles": [...]}`); `revoke` ends current tokens."""
        try:
            body = await body_of(request)
            app_reg = sandbox.set_permissions(client_id, body.get("roles", []))
            if body.get("revoke", True):
                sandbox.revoke_tokens(client_id)
            return JSONResponse({"client_id": client_id, "roles": sorted(app_reg.roles)})
        except KeyError:
            return JSONResponse({"detail": f"no app {client_id}"}, status_code=404)

    @app.post("/_admin/tokens/revoke")
    async def revoke() -> JSONResponse:
        sandbox.revoke_tokens()
        return JSONResponse({"revoked": True})

    @app.patch("/_admin/behaviour")
    async def behaviour(request: Request) -> JSONResponse:
        try:
            body = await body_of(request)
            with sandbox._lock:
                sandbox.behaviour = replace(sandbox.behaviour, **body)
            return JSONResponse(asdict(sandbox.behaviour))
        except (TypeError, ValueError) as exc:
            return fail(exc)

    @app.get("/_admin/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sandbox.stats())

    @app.post("/_admin/stats/reset")
    async def reset_stats() -> JSONResponse:
        with sandbox._lock:
            sandbox.reset_stats()
        return JSONResponse({"reset": True})

    @app.post("/_admin/reset")
    async def reset() -> JSONResponse:
        """Back to the seeded directory: all changes, faults and delta state forgotten."""
        sandbox.reset()
        return JSONResponse({"reset": True})

    @app.get("/_admin/users/{ref}")
    async def find_user(ref: str) -> JSONResponse:
        try:
            with sandbox._lock:
                return JSONResponse(dict(sandbox._get("user", ref, include_deleted=True).props))
        except KeyError as exc:
            return fail(exc)


def make_certificate(common_name: str = "AccessIQ sandbox app", *, key_size: int = 2048) -> str:
    """A self-signed certificate and its private key as one PEM bundle, as `connection.certificate` takes."""
    from datetime import timedelta

    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem + cert.public_bytes(serialization.Encoding.PEM).decode()


def quote_ref(ref: str) -> str:
    """A user/group reference (id, UPN, name) made safe for an admin URL path."""
    return quote(ref, safe="")
