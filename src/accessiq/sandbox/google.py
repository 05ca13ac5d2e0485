"""A Google Workspace emulator: the Admin SDK Directory API's users, groups and members, and Google's token endpoint.

Faithful to `reference/provider-apis.md` §3: the token endpoint verifies the service
account's signed JWT assertion (signature against the key it issued, `iss`, `sub`, `scope`,
`aud`, `exp`) and domain-wide delegation per scope; users.list pages up to 500, groups and
members up to 200, with opaque page tokens; `query=orgUnitPath='…'` matches the unit and
every unit beneath it (and fails with INVALID_OU_ID for an unknown one); `customSchemas`
come only with `projection=full`; members have roles and types `USER`, `GROUP` and
`CUSTOMER`; errors use Google's envelope, and quota errors come on demand.

`GoogleSandbox` holds the account and the knobs (usable in-process by tests);
`accessiq.sandbox.google_app.create_app` serves it with `/_admin` endpoints.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from accessiq.sandbox import OAuthError
from accessiq.sandbox.people import PeopleFactory, Person, Population, generate_population

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
USER_READ = SCOPE_PREFIX + "admin.directory.user.readonly"
GROUP_READ = SCOPE_PREFIX + "admin.directory.group.readonly"
MEMBER_READ = SCOPE_PREFIX + "admin.directory.group.member.readonly"
# The scopes that let a token read each resource (the read-write ones include the read-only ones).
RESOURCE_SCOPES = {
    "users": {USER_READ, SCOPE_PREFIX + "admin.directory.user"},
    "groups": {GROUP_READ, SCOPE_PREFIX + "admin.directory.group"},
    "members": {
        GROUP_READ,
        MEMBER_READ,
        SCOPE_PREFIX + "admin.directory.group",
        SCOPE_PREFIX + "admin.directory.group.member",
    },
}
ALL_SCOPES = (USER_READ, GROUP_READ, MEMBER_READ)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The audience Google requires of every assertion, wherever its token endpoint is reached (§3.1).
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the "
    "scopes requested."
)
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and "
    "exp values in the JWT claim."
)
NOT_AUTHORIZED = "Not Authorized to access this resource/api"
# Quota reasons and the status Google answers them with (§3.4).
QUOTA_STATUS = {"userRateLimitExceeded": 403, "quotaExceeded": 403, "rateLimitExceeded": 429}
_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class DirectoryError(Exception):
    """An error the Directory API answers with its envelope (`error.code`, `errors[].reason`, ...)."""

    def __init__(self, status: int, reason: str, message: str, *, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": _GRPC_STATUS.get(self.status, "UNKNOWN"),
            }
        }


@dataclass
class GoogleBehaviour:
    """Page caps and misbehaviour; all can change at run time."""

    users_max: int = 500
    groups_max: int = 200
    members_max: int = 200
    # Every page hands out the same next token: a misbehaving server a client must not loop on.
    repeat_token: bool = False
    # orgUnitPath matched as a text prefix (`/Sales` also finds `/Salesforce Admins`): a proxy or index
    # that is looser than Google, which a client must not trust blindly.
    ou_prefix_match: bool = False


@dataclass
class Fault:
    """An injected failure for the next `count` matching requests."""

    # quota | error | delay | forbidden (403: the admin's rights revoked) | expire (every page token
    # handed out so far is forgotten, as when its 3 days run out) | cut | truncate | malformed | loop
    kind: str = "quota"
    reason: str = "userRateLimitExceeded"  # quota: userRateLimitExceeded | quotaExceeded | rateLimitExceeded
    count: int = 1
    status: int = 503  # error faults
    delay: float = 0.0
    target: str = "api"  # api | token | any
    path_contains: str | None = None
    # Matching requests let through before the fault starts: "a later page".
    after: int = 0


@dataclass
class AccessToken:
    client_email: str
    subject: str | None
    scopes: frozenset[str]
    expires: float


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    status: int = 0
    # When it arrived (time.monotonic()): the gap after a 429 shows whether the wait was honoured.
    at: float = field(default_factory=time.monotonic)
    # Seconds the answer asked the client to wait (`Retry-After`, or Okta's `X-Rate-Limit-Reset`).
    waits: float | None = None


@dataclass
class Member:
    """A direct member: a user, a group or the whole account (CUSTOMER)."""

    type: str  # USER | GROUP | CUSTOMER
    role: str = "MEMBER"  # OWNER | MANAGER | MEMBER


class GoogleSandbox:
    """One emulated Workspace account: org units, users, groups, members, the service account, faults, stats."""

    def __init__(
        self,
        users: int = 100,
        groups: int = 20,
        *,
        seed: int = 0,
        population: Population | None = None,
        behaviour: GoogleBehaviour | None = None,
    ) -> None:
        self.seed = seed
        self.behaviour = behaviour or GoogleBehaviour()
        self._lock = threading.RLock()
        self._sizes = (users, groups, population)
        # The service account's key outlives resets: a key file written once keeps working.
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = hashlib.sha1(der).hexdigest()
        rng = random.Random(seed + 4099)
        self.project_id = "accessiq-sandbox"
        self.client_email = f"directory-sync@{self.project_id}.iam.gserviceaccount.com"
        self.client_id = str(rng.randrange(10**20, 10**21))
        self._seed_state()

    # ----------------------------------------------------------------- seeding

    def _seed_state(self) -> None:
        users, groups, population = self._sizes
        rng = random.Random(self.seed + 7919)
        self.customer_id = "C0" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(7))
        # Delegation granted in the Admin console: client ID -> authorised scopes.
        self.delegation: dict[str, set[str]] = {self.client_id: set(ALL_SCOPES)}
        self.keys: dict[str, tuple[str, Any]] = {self.key_id: (self.client_email, self._private_key.public_key())}
        self.access_tokens: dict[str, AccessToken] = {}
        self.page_tokens: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.faults: list[Fault] = []
        self.faults_served = 0
        if population is None:
            population = generate_population(users, groups, seed=self.seed)
        self.population = population
        self.domain = population.domain
        self._factory = PeopleFactory(self.seed + 104729, self.domain)
        self._factory.reserve(population.people)
        self._rng = rng
        self.ids: dict[str, str] = {}  # population id -> Google id
        self.users: dict[str, dict[str, Any]] = {}
        self.deleted_users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Member]] = {}
        # Admins the service account may act as: email -> what their role may read.
        self.admins: dict[str, set[str]] = {}
        self.org_units: set[str] = {"/", "/Salesforce Admins", "/Contractors"}
        self.reset_stats()
        for department in {p.department for p in population.people}:
            self.org_units.add(f"/{department}")
        people = population.people
        for index, person in enumerate(people):
            unit = f"/{person.department}/{person.team}" if rng.random() < 0.85 else f"/{person.department}"
            if len(people) >= 10 and index in (1, 2):
                unit = "/Salesforce Admins"  # the sibling whose name starts like /Sales
            elif len(people) >= 10 and index == 3:
                unit = "/"
            self.org_units.add(unit)
            suspended = archived = False
            if not person.active:
                suspended, archived = (True, False) if rng.random() < 0.7 else (False, True)
            if len(people) >= 10 and index >= len(people) - 2:
                # Every account of some size has a suspended and an archived user.
                suspended, archived = index == len(people) - 2, index == len(people) - 1
            user = self._user_record(person, unit, suspended=suspended, archived=archived)
            self.ids[person.id] = user["id"]
        admin = self._factory.person(department="Operations", active=True, given_name="Sandbox", surname="Admin")
        record = self._user_record(admin, "/", suspended=False, archived=False, email=f"admin@{self.domain}")
        record.update(isAdmin=True)
        self.admin_email = record["primaryEmail"]
        self.admins[self.admin_email] = {"users", "groups"}
        for spec in population.groups:
            gid = self._group_record(spec.name, spec.description, spec.email or f"{spec.mail_nickname}@{self.domain}")
            self.ids[spec.id] = gid
        for spec in population.groups:
            members = self.members[self.ids[spec.id]]
            for position, pid in enumerate(spec.member_users):
                role = "OWNER" if position == 0 else "MANAGER" if position % 17 == 5 else "MEMBER"
                members[self.ids[pid]] = Member("USER", role)
            for child in spec.member_groups:
                members[self.ids[child]] = Member("GROUP")
        if population.groups:
            # "Everyone in the account" as Google has it: one CUSTOMER member.
            everyone = self._group_record("Everyone at Contoso", "Every user of the account", f"everyone@{self.domain}")
            self.members[everyone] = {self.customer_id: Member("CUSTOMER"), record["id"]: Member("USER", "OWNER")}
            self.everyone_id = everyone
        self._refresh_counts()

    def _new_user_id(self) -> str:
        while True:
            user_id = str(self._rng.randrange(10**20, 10**21))
            if user_id not in self.users and user_id not in self.deleted_users:
                return user_id

    def _user_record(
        self, person: Person, unit: str, *, suspended: bool, archived: bool, email: str | None = None
    ) -> dict[str, Any]:
        user_id = self._new_user_id()
        primary = (email or f"{person.username}@{self.domain}").lower()
        created = person.created.replace("Z", ".000Z")
        cost_center = f"CC-{zlib.crc32(person.department.encode()) % 900 + 100}"
        user = {
            "kind": "admin#directory#user",
            "id": user_id,
            "etag": _etag(user_id, 0),
            "primaryEmail": primary,
            "name": {"givenName": person.given_name, "familyName": person.surname, "fullName": person.display_name},
            "isAdmin": False,
            "isDelegatedAdmin": False,
            "lastLoginTime": "1970-01-01T00:00:00.000Z",
            "creationTime": created,
            "agreedToTerms": True,
            "suspended": suspended,
            **({"suspensionReason": "ADMIN"} if suspended else {}),
            "archived": archived,
            "changePasswordAtNextLogin": False,
            "ipWhitelisted": False,
            "emails": [{"address": primary, "primary": True}],
            "externalIds": [{"value": person.employee_id, "type": "organization"}],
            "organizations": [
                {
                    "title": person.job_title,
                    "primary": True,
                    "customType": "",
                    "department": person.department,
                    "description": person.team,
                    "costCenter": cost_center,
                }
            ],
            "phones": [
                {"value": person.business_phone, "type": "work"},
                {"value": person.mobile_phone, "type": "mobile"},
            ],
            "languages": [{"languageCode": person.preferred_language.split("-")[0], "preference": "preferred"}],
            "customerId": self.customer_id,
            "orgUnitPath": unit,
            "isMailboxSetup": True,
            "isEnrolledIn2Sv": False,
            "isEnforcedIn2Sv": False,
            "includeInGlobalAddressList": True,
            "customSchemas": {"EmploymentData": {"employeeNumber": person.employee_id, "costCenter": cost_center}},
        }
        self.users[user_id] = user
        return user

    def _group_record(self, name: str, description: str, email: str) -> str:
        gid = "0" + "".join(self._rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(14))
        self.groups[gid] = {
            "kind": "admin#directory#group",
            "id": gid,
            "etag": _etag(gid, 0),
            "email": email.lower(),
            "name": name,
            "directMembersCount": "0",
            "description": description,
            "adminCreated": True,
            "nonEditableAliases": [
                email.lower().replace(f"@{self.domain}", f"@{self.domain.split('.')[0]}.test-google-a.com")
            ],
        }
        self.members[gid] = {}
        return gid

    def _refresh_counts(self, *gids: str) -> None:
        for gid in gids or tuple(self.groups):
            self.groups[gid]["directMembersCount"] = str(len(self.members[gid]))

    def reset(self) -> None:
        """Back to the freshly seeded account: changes, faults, tokens and delegation changes forgotten."""
        with self._lock:
            self._seed_state()

    # ----------------------------------------------------------------- lookups

    def user(self, ref: str) -> dict[str, Any]:
        """A user by Google id, population id or email (KeyError naming it otherwise)."""
        ref = self.ids.get(ref, ref)
        if ref in self.users:
            return self.users[ref]
        lowered = ref.lower()
        for user in self.users.values():
            if lowered == user["primaryEmail"]:
                return user
        raise KeyError(f"no user {ref!r}")

    def group(self, ref: str) -> dict[str, Any]:
        """A group by Google id, population id, email, alias or name."""
        ref = self.ids.get(ref, ref)
        if ref in self.groups:
            return self.groups[ref]
        lowered = ref.lower()
        for group in self.groups.values():
            if lowered in (group["email"], group["name"].lower(), *group.get("aliases", ())):
                return group
        raise KeyError(f"no group {ref!r}")

    def group_by_key(self, key: str) -> dict[str, Any] | None:
        """members.list's groupKey: the group's id, email or an alias (not its name)."""
        if key in self.groups:
            return self.groups[key]
        lowered = key.lower()
        for group in self.groups.values():
            if lowered == group["email"] or lowered in group.get("aliases", ()):
                return group
        return None

    def snapshot(self) -> dict[str, Any]:
        """Users (active, org unit) and groups (direct user and group members) as the account holds them now.

        A CUSTOMER member counts every user of the account among a group's users.
        """
        with self._lock:
            return {
                "users": {
                    uid: {
                        "active": not u["suspended"] and not u["archived"],
                        "org_unit": u["orgUnitPath"],
                        "email": u["primaryEmail"],
                    }
                    for uid, u in self.users.items()
                },
                "groups": {
                    gid: {
                        "name": g["name"],
                        "email": g["email"],
                        "users": sorted(self.direct_users(gid)),
                        "groups": sorted(m for m, v in self.members[gid].items() if v.type == "GROUP"),
                        "customer": any(v.type == "CUSTOMER" for v in self.members[gid].values()),
                    }
                    for gid, g in self.groups.items()
                },
            }

    def direct_users(self, gid: str) -> set[str]:
        members = self.members[gid]
        if any(m.type == "CUSTOMER" for m in members.values()):
            return set(self.users)
        return {m for m, v in members.items() if v.type == "USER"}

    def in_unit(self, path: str, unit: str) -> bool:
        """orgUnitPath query semantics: the unit itself and every unit beneath it."""
        if self.behaviour.ou_prefix_match:
            return path.startswith(unit)
        return path == unit or unit == "/" or path.startswith(unit + "/")

    # ----------------------------------------------------------------- changes

    def add_org_unit(self, path: str) -> str:
        with self._lock:
            path = "/" + path.strip("/")
            parent = path.rsplit("/", 1)[0] or "/"
            if parent not in self.org_units:
                raise ValueError(f"no parent org unit {parent!r}")
            self.org_units.add(path)
            return path

    def add_user(
        self, fields: Mapping[str, Any] | None = None, *, org_unit: str | None = None, department: str | None = None
    ) -> dict[str, Any]:
        """Hire someone: an active user (generated, overridden by `fields`) in `org_unit` or their team's unit."""
        with self._lock:
            person = self._factory.person(department=department, active=True)
            unit = org_unit or f"/{person.department}"
            if unit not in self.org_units:
                raise ValueError(f"no org unit {unit!r}; add it first")
            user = self._user_record(person, unit, suspended=False, archived=False)
            _merge(user, fields or {})
            return user

    def update_user(self, ref: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change fields of a user; nested objects (`name`, `customSchemas`) merge."""
        with self._lock:
            user = self.user(ref)
            if "orgUnitPath" in fields and fields["orgUnitPath"] not in self.org_units:
                raise ValueError(f"no org unit {fields['orgUnitPath']!r}")
            _merge(user, fields)
            _bump(user)
            return user

    def move_user(self, ref: str, org_unit: str) -> dict[str, Any]:
        return self.update_user(ref, {"orgUnitPath": org_unit})

    def set_state(self, ref: str, *, suspended: bool | None = None, archived: bool | None = None) -> dict[str, Any]:
        with self._lock:
            user = self.user(ref)
            if suspended is not None:
                user["suspended"] = suspended
                if suspended:
                    user["suspensionReason"] = "ADMIN"
                else:
                    user.pop("suspensionReason", None)
            if archived is not None:
                user["archived"] = archived
            _bump(user)
            return user

    def delete_user(self, ref: str) -> dict[str, Any]:
        """Delete a user: gone from users.list (restorable for 20 days via showDeleted) and from every group."""
        with self._lock:
            user = self.users.pop(self.user(ref)["id"])
            user["deletionTime"] = _now()
            self.deleted_users[user["id"]] = user
            for gid, members in self.members.items():
                if members.pop(user["id"], None) is not None:
                    self._refresh_counts(gid)
            return {"id": user["id"], "deleted": True}

    def add_group(self, name: str, email: str | None = None, description: str | None = None) -> dict[str, Any]:
        with self._lock:
            address = email or f"{name.lower().replace(' ', '-')}@{self.domain}"
            if any(g["email"] == address.lower() for g in self.groups.values()):
                raise ValueError(f"a group with email {address} exists")
            return self.groups[self._group_record(name, description or "", address)]

    def update_group(self, ref: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            group = self.group(ref)
            group.update({k: v for k, v in fields.items() if k in ("name", "description", "email")})
            _bump(group)
            return group

    def delete_group(self, ref: str) -> dict[str, Any]:
        with self._lock:
            gid = self.group(ref)["id"]
            del self.groups[gid]
            del self.members[gid]
            for other, members in self.members.items():
                if members.pop(gid, None) is not None:
                    self._refresh_counts(other)
            return {"id": gid, "deleted": True}

    def change_members(
        self, ref: str, add: Iterable[str] = (), remove: Iterable[str] = (), *, role: str = "MEMBER"
    ) -> dict[str, Any]:
        """Add and remove direct members: user or group ids/emails, or `customer` for the whole account."""
        with self._lock:
            gid = self.group(ref)["id"]
            members = self.members[gid]
            for item in add:
                member_id, kind = self._member_ref(item)
                if kind == "GROUP" and (member_id == gid or gid in self._nested_in(member_id)):
                    raise ValueError("Membership cycles are not allowed")
                members[member_id] = Member(kind, role.upper())
            for item in remove:
                members.pop(self._member_ref(item)[0], None)
            self._refresh_counts(gid)
            return {"id": gid, "members": {m: v.type for m, v in sorted(members.items())}}

    def _member_ref(self, ref: str) -> tuple[str, str]:
        if ref.lower() in ("customer", self.customer_id.lower()):
            return self.customer_id, "CUSTOMER"
        try:
            return self.user(ref)["id"], "USER"
        except KeyError:
            return self.group(ref)["id"], "GROUP"

    def _nested_in(self, gid: str) -> set[str]:
        """Groups nested in `gid`, at any depth."""
        found: set[str] = set()
        pending = [gid]
        while pending:
            for member, value in self.members.get(pending.pop(), {}).items():
                if value.type == "GROUP" and member not in found:
                    found.add(member)
                    pending.append(member)
        return found

    def derived_users(self, gid: str) -> set[str]:
        """Users in a group or any group nested in it (includeDerivedMembership)."""
        users = set(self.direct_users(gid))
        for nested in self._nested_in(gid):
            users |= self.direct_users(nested)
        return users

    # ----------------------------------------------------------------- credentials

    def service_account_key(self, token_uri: str) -> dict[str, Any]:
        """The JSON key file of the sandbox's service account, as the Cloud console hands it out."""
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{self.client_email}",
            "universe_domain": "googleapis.com",
        }

    def set_delegation(self, scopes: Iterable[str] | None, client_id: str | None = None) -> dict[str, Any]:
        """Authorise these scopes for the client ID (None: remove its delegation); issued tokens end."""
        with self._lock:
            client = client_id or self.client_id
            if scopes is None:
                self.delegation.pop(client, None)
            else:
                self.delegation[client] = {s if s.startswith("https://") else SCOPE_PREFIX + s for s in scopes}
            self.access_tokens.clear()
            return {"client_id": client, "scopes": sorted(self.delegation.get(client, ())) or None}

    def set_admin(self, email: str, privileges: Iterable[str]) -> dict[str, Any]:
        """Make a user an admin whose role reads `privileges` (users, groups); none: not an admin."""
        with self._lock:
            user = self.user(email)
            granted = set(privileges)
            if granted - {"users", "groups"}:
                raise ValueError("privileges are users and groups")
            if granted:
                self.admins[user["primaryEmail"]] = granted
            else:
                self.admins.pop(user["primaryEmail"], None)
            user["isAdmin"] = granted == {"users", "groups"}
            user["isDelegatedAdmin"] = bool(granted) and not user["isAdmin"]
            self.access_tokens.clear()
            return {"email": user["primaryEmail"], "privileges": sorted(granted)}

    def revoke_key(self) -> None:
        """Delete the service account's key in the Cloud console: its signatures stop verifying."""
        with self._lock:
            self.keys.pop(self.key_id, None)

    def issue_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The JWT-bearer grant: verify the assertion and the delegation, or raise OAuthError."""
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise OAuthError(400, "invalid_request", "Invalid JWT: the assertion is not a JWT.") from None
        with self._lock:
            known = self.keys.get(str(header.get("kid")))
            if known is None or header.get("alg") != "RS256":
                raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
            account, public_key = known
            try:
                claims = jwt.decode(
                    assertion,
                    public_key,
                    algorithms=["RS256"],
                    audience=TOKEN_AUDIENCE,
                    options={"require": ["iss", "aud", "iat", "exp"]},
                    leeway=0,
                )
            except jwt.InvalidSignatureError:
                raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
            except jwt.InvalidAudienceError:
                raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check.") from None
            except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
                raise OAuthError(400, "invalid_grant", SHORT_LIVED) from None
            except jwt.InvalidTokenError as exc:
                raise OAuthError(400, "invalid_grant", f"Invalid JWT: {exc}") from None
            now = time.time()
            if float(claims["exp"]) - float(claims["iat"]) > 3600 or float(claims["iat"]) > now + 300:
                raise OAuthError(400, "invalid_grant", SHORT_LIVED)
            if claims["iss"] != account:
                raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
            requested = frozenset(str(claims.get("scope") or "").split())
            if not requested:
                raise OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
            subject = claims.get("sub")
            if subject is not None:
                try:
                    self.user(str(subject))
                except KeyError:
                    raise OAuthError(400, "invalid_grant", "Invalid email or User ID") from None
                # Domain-wide delegation: every requested scope must be authorised for the client ID.
                authorised = self.delegation.get(self.client_id)
                if authorised is None or not requested <= authorised:
                    raise OAuthError(401, "unauthorized_client", UNAUTHORIZED_CLIENT)
            token = "ya29." + secrets.token_urlsafe(48)
            self.access_tokens[token] = AccessToken(account, subject, requested, now + 3599)
            return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def authorize(self, header: str | None, resource: str) -> None:
        """Let a Directory API request through, or raise the DirectoryError Google answers."""
        scheme, _, value = (header or "").partition(" ")
        with self._lock:
            access = self.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
            if access is None or access.expires < time.time():
                raise DirectoryError(
                    401,
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                    "other valid authentication credential.",
                )
            if not access.scopes & RESOURCE_SCOPES[resource]:
                raise DirectoryError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
            needs = "users" if resource == "users" else "groups"
            subject = (access.subject or "").lower()
            if needs not in self.admins.get(subject, set()):
                raise DirectoryError(403, "forbidden", NOT_AUTHORIZED)

    # ----------------------------------------------------------------- paging, faults, stats

    def page_token(self, signature: str, last: tuple[str, ...]) -> str:
        """An opaque token that continues a list after `last` for the same parameters only."""
        with self._lock:
            if self.behaviour.repeat_token and self.page_tokens:
                return next(iter(self.page_tokens))
            token = secrets.token_urlsafe(24)
            self.page_tokens[token] = (signature, last)
            return token

    def resume(self, token: str | None, signature: str) -> tuple[str, ...] | None:
        if not token:
            return None
        with self._lock:
            found = self.page_tokens.get(token)
        if found is None or found[0] != signature:
            raise DirectoryError(400, "invalid", "Invalid Input: pageToken")
        return found[1]

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def take_fault(self, target: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.target in (target, "any"):
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

    def reset_stats(self) -> None:
        self.requests: list[RequestRecord] = []
        self.served: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0

    def enter(self) -> None:
        """A request started: counts how many a client keeps in flight at once."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            api = [r for r in self.requests if r.path.startswith("/admin/")]
            return {
                "requests": len(self.requests),
                "api_requests": len(api),
                "by_endpoint": dict(Counter(f"{r.method} {_endpoint_of(r.path)}" for r in self.requests)),
                "errors": dict(Counter(str(r.status) for r in self.requests if r.status >= 400)),
                "max_in_flight": self.max_in_flight,
                "served": dict(self.served),
            }


# ---------------------------------------------------------------------- helpers


def _endpoint_of(path: str) -> str:
    if path.startswith("/admin/directory/v1/groups/") and path.endswith("/members"):
        return "/admin/directory/v1/groups/{groupKey}/members"
    return path


def _merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _etag(object_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{object_id}:{version}".encode()).hexdigest()[:22]
    return f'"sandbox/{digest}"'


def _bump(record: dict[str, Any]) -> None:
    record["etag"] = _etag(record["id"], int(time.time() * 1000))


def _now() -> str:
    moment = time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", moment)
