"""An Okta org emulator: the Management API's users, groups and System Log, and the org authorization server.

Faithful to `reference/provider-apis.md` §2: `Link` paging with opaque `after`
cursors and the 200 cap, list-all without DEPROVISIONED users, the `filter` and
`search` subsets (E0000053 on anything else), `lastUpdated` and
`lastMembershipUpdated` that move on every change, Okta's delete semantics and the
System Log that remembers them, `X-Rate-Limit-*` headers and 429 E0000047, the
error envelope with `X-Okta-Request-Id`, SSWS tokens and a `/oauth2/v1/token`
endpoint that verifies `private_key_jwt` client assertions.

`OktaSandbox` holds the org and the behaviour knobs (usable in-process by tests);
`accessiq.sandbox.okta_app.create_app` serves it with `/_admin` endpoints.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from accessiq.sandbox import OAuthError
from accessiq.sandbox.people import PeopleFactory, Person, Population, generate_population

ALL_SCOPES = ("okta.users.read", "okta.groups.read", "okta.logs.read")
ALL_PERMISSIONS = ("users", "groups", "logs")
# Okta's own defaults per endpoint family (requests per minute) unless a knob overrides them.
DEFAULT_LIMITS = {"/api/v1/users": 600, "/api/v1/groups": 500, "/api/v1/logs": 120}
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class OktaError(Exception):
    """An error Okta answers with its envelope (`errorCode`, `errorSummary`, ...)."""

    def __init__(
        self, status: int, code: str, summary: str, *, headers: Mapping[str, str] | None = None, body: bool = True
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.code = code
        self.summary = summary
        self.headers = dict(headers or {})
        # Okta answers an insufficient scope with a bare 403 and a WWW-Authenticate challenge.
        self.body = body


@dataclass
class OktaBehaviour:
    """Knobs for paging, limits and misbehaviour; all can change at run time."""

    users_limit_max: int = 200
    groups_limit_max: int = 200
    members_limit_default: int = 1000
    members_limit_max: int = 1000
    # Requests per window per endpoint family; None: Okta's defaults (DEFAULT_LIMITS).
    rate_limit: int | None = None
    rate_window: float = 60.0
    # Paging links on another origin, or a next link that repeats: a misbehaving server.
    link_base: str | None = None
    repeat_link: bool = False
    # False: the org does not exist (404 for everything, as for an unknown subdomain).
    org_exists: bool = True


@dataclass
class Fault:
    """An injected failure for the next `count` matching requests."""

    # throttle (E0000047) | concurrency | error | delay | forbidden (E0000006: the admin role revoked) |
    # log_window (E0000053: the System Log refuses a `since` older than its window) | cut | truncate |
    # malformed | loop (wire_faults)
    kind: str = "throttle"
    count: int = 1
    status: int = 429
    delay: float = 0.0
    target: str = "api"  # api | token | any
    path_contains: str | None = None
    # Matching requests let through before the fault starts: "a later page".
    after: int = 0


@dataclass
class ServiceApp:
    """An API Services app: its public keys, granted scopes and the reads its admin role allows."""

    client_id: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> public key
    scopes: set[str] = field(default_factory=lambda: set(ALL_SCOPES))
    permissions: set[str] = field(default_factory=lambda: set(ALL_PERMISSIONS))


@dataclass
class ApiToken:
    """An SSWS token and what its administrator's role may read."""

    value: str
    permissions: set[str] = field(default_factory=lambda: set(ALL_PERMISSIONS))
    revoked: bool = False


@dataclass
class AccessToken:
    client_id: str
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


class OktaSandbox:
    """One emulated Okta org: users, groups, memberships, System Log, credentials, faults and statistics."""

    def __init__(
        self,
        users: int = 100,
        groups: int = 20,
        *,
        seed: int = 0,
        population: Population | None = None,
        behaviour: OktaBehaviour | None = None,
    ) -> None:
        self.seed = seed
        self.behaviour = behaviour or OktaBehaviour()
        self._lock = threading.RLock()
        self._sizes = (users, groups, population)
        self._seed_state()

    # ----------------------------------------------------------------- seeding

    def _seed_state(self) -> None:
        users, groups, population = self._sizes
        rng = random.Random(self.seed + 7817)
        self.org_name = "contoso"
        self.org_id = "00o" + _okta_id(rng)
        self.api_token = "00" + "".join(rng.choice(_ALPHABET + "-_") for _ in range(40))
        self.client_id = "0oa" + _okta_id(rng)
        self.api_tokens: dict[str, ApiToken] = {self.api_token: ApiToken(self.api_token)}
        self.apps: dict[str, ServiceApp] = {self.client_id: ServiceApp(self.client_id)}
        self.access_tokens: dict[str, AccessToken] = {}
        self.used_jtis: set[str] = set()
        if population is None:
            population = generate_population(users, groups, seed=self.seed)
        self.population = population
        self.domain = population.domain
        self._factory = PeopleFactory(self.seed + 104729, self.domain)
        self._factory.reserve(population.people)
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.log: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.faults_served = 0
        self._windows: dict[tuple[str, int], int] = {}
        self.ids: dict[str, str] = {}  # population id -> Okta id
        self.reset_stats()
        statuses = rng.choices(
            ("ACTIVE", "PROVISIONED", "STAGED", "LOCKED_OUT", "PASSWORD_EXPIRED", "RECOVERY"),
            weights=(90, 3, 2, 2, 2, 1),
            k=len(population.people),
        )
        people = population.people
        for index, (person, status) in enumerate(zip(people, statuses, strict=True)):
            if not person.active:
                status = "SUSPENDED" if rng.random() < 0.5 else "DEPROVISIONED"
            if len(people) >= 10 and index >= len(people) - 2:
                # Every org of some size has a suspended and a deactivated user.
                status = "SUSPENDED" if index == len(people) - 2 else "DEPROVISIONED"
            user = _user_record(person, "00u" + _okta_id(rng), status)
            self.ids[person.id] = user["id"]
            self.users[user["id"]] = user
        everyone = "00g" + _okta_id(rng)
        self.groups[everyone] = _group_record(everyone, "Everyone", "All users in your organization", "BUILT_IN")
        self.members[everyone] = {uid for uid, u in self.users.items()}
        self.everyone_id = everyone
        for spec in population.groups:
            # Okta groups do not nest: each keeps the people the population puts in it directly.
            gid = "00g" + _okta_id(rng)
            self.ids[spec.id] = gid
            # Office groups and distribution lists come from an app (Active Directory); so does the last group.
            imported = spec.kind == "office" or spec.name.startswith("DL ") or spec is population.groups[-1]
            kind = "APP_GROUP" if imported and len(population.groups) >= 3 else "OKTA_GROUP"
            self.groups[gid] = _group_record(gid, spec.name, spec.description, kind)
            if kind == "APP_GROUP":
                self.groups[gid]["source"] = {"id": "0oa" + _okta_id(rng)}
                self.groups[gid]["objectClass"] = ["okta:windows_security_principal"]
            self.members[gid] = {self.ids[p] for p in spec.member_users}

    def reset(self) -> None:
        """Back to the freshly seeded org: changes, faults, tokens and log forgotten."""
        with self._lock:
            self._seed_state()

    # ----------------------------------------------------------------- lookups

    def user(self, ref: str) -> dict[str, Any]:
        """A user by Okta id, population id, login or email (KeyError naming it otherwise)."""
        ref = self.ids.get(ref, ref)
        if ref in self.users:
            return self.users[ref]
        lowered = ref.lower()
        for user in self.users.values():
            if lowered in (user["profile"]["login"].lower(), str(user["profile"].get("email")).lower()):
                return user
        raise KeyError(f"no user {ref!r}")

    def group(self, ref: str) -> dict[str, Any]:
        """A group by Okta id, population id or name."""
        ref = self.ids.get(ref, ref)
        if ref in self.groups:
            return self.groups[ref]
        for group in self.groups.values():
            if group["profile"]["name"].lower() == ref.lower():
                return group
        raise KeyError(f"no group {ref!r}")

    def snapshot(self) -> dict[str, Any]:
        """Users (with status) and groups (with member ids) as the org holds them now."""
        with self._lock:
            return {
                "users": {uid: u["status"] for uid, u in self.users.items()},
                "groups": {
                    gid: {"name": g["profile"]["name"], "type": g["type"], "users": sorted(self.members[gid])}
                    for gid, g in self.groups.items()
                },
            }

    # ----------------------------------------------------------------- changes

    def add_user(self, profile: Mapping[str, Any] | None = None, *, department: str | None = None) -> dict[str, Any]:
        """Hire someone: a new ACTIVE user (generated profile, overridden by `profile`) in Everyone."""
        with self._lock:
            person = self._factory.person(department=department, active=True)
            user = _user_record(person, "00u" + _okta_id(random.Random(person.id)), "ACTIVE", created=_now())
            user["profile"].update(profile or {})
            self.users[user["id"]] = user
            self._touch_members(self.everyone_id, add=user["id"])
            self._event("user.lifecycle.create", user)
            return user

    def update_user(self, ref: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            user = self.user(ref)
            user["profile"].update(profile)
            user["lastUpdated"] = _now()
            self._event("user.account.update_profile", user)
            return user

    def set_status(self, ref: str, status: str) -> dict[str, Any]:
        """Suspend, unsuspend, deactivate, activate, unlock: the user's status becomes `status`."""
        with self._lock:
            user = self.user(ref)
            stamp = _now()
            user.update(status=status, statusChanged=stamp, lastUpdated=stamp)
            event = {"SUSPENDED": "suspend", "DEPROVISIONED": "deactivate", "ACTIVE": "activate"}.get(status, "update")
            self._event(f"user.lifecycle.{event}", user)
            return user

    def delete_user(self, ref: str, *, permanent: bool = False) -> dict[str, Any]:
        """Okta's DELETE: a user not yet DEPROVISIONED is only deactivated; a second one deletes for good."""
        with self._lock:
            user = self.user(ref)
            if user["status"] != "DEPROVISIONED":
                self.set_status(user["id"], "DEPROVISIONED")
                if not permanent:
                    return {"id": user["id"], "status": "DEPROVISIONED", "deleted": False}
            self._event("user.lifecycle.delete.initiated", user)
            del self.users[user["id"]]
            for gid, members in self.members.items():
                if user["id"] in members:
                    self._touch_members(gid, remove=user["id"])
            self._event("user.lifecycle.delete.completed", user)
            return {"id": user["id"], "status": "DELETED", "deleted": True}

    def add_group(self, name: str, description: str | None = None) -> dict[str, Any]:
        with self._lock:
            gid = "00g" + _okta_id(random.Random(f"{name}{time.time()}"))
            stamp = _now()
            group = _group_record(gid, name, description or "", "OKTA_GROUP", stamp=stamp)
            self.groups[gid] = group
            self.members[gid] = set()
            self._event("group.lifecycle.create", group, kind="UserGroup")
            return group

    def update_group(self, ref: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            group = self.group(ref)
            group["profile"].update(profile)
            group["lastUpdated"] = _now()
            return group

    def delete_group(self, ref: str) -> dict[str, Any]:
        with self._lock:
            group = self.group(ref)
            if group["type"] != "OKTA_GROUP":
                raise ValueError(f"only OKTA_GROUP groups can be deleted here, not {group['type']}")
            del self.groups[group["id"]]
            del self.members[group["id"]]
            self._event("group.lifecycle.delete", group, kind="UserGroup")
            return {"id": group["id"], "deleted": True}

    def change_members(self, ref: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> dict[str, Any]:
        """Add and remove members; only OKTA_GROUP memberships can change, as in Okta (§2.3)."""
        with self._lock:
            group = self.group(ref)
            if group["type"] != "OKTA_GROUP":
                raise ValueError(f"{group['profile']['name']} is an {group['type']}: its members cannot change")
            for member in add:
                self._touch_members(group["id"], add=self.user(member)["id"])
            for member in remove:
                self._touch_members(group["id"], remove=self.user(member)["id"])
            return {"id": group["id"], "members": sorted(self.members[group["id"]])}

    def _touch_members(self, gid: str, *, add: str | None = None, remove: str | None = None) -> None:
        members = self.members[gid]
        if add and add not in members:
            members.add(add)
            self.groups[gid]["lastMembershipUpdated"] = _now()
            self._event("group.user_membership.add", self.users[add], group=self.groups[gid])
        if remove and remove in members:
            members.discard(remove)
            self.groups[gid]["lastMembershipUpdated"] = _now()

    def _event(
        self, event_type: str, obj: Mapping[str, Any], *, kind: str = "User", group: Mapping[str, Any] | None = None
    ) -> None:
        name = obj["profile"].get("login") or obj["profile"].get("name")
        targets = [{"id": obj["id"], "type": kind, "alternateId": name, "displayName": name}]
        if group is not None:
            targets.append(
                {
                    "id": group["id"],
                    "type": "UserGroup",
                    "alternateId": "unknown",
                    "displayName": group["profile"]["name"],
                }
            )
        self.log.append(
            {
                "uuid": str(uuid.uuid4()),
                "published": _now(),
                "eventType": event_type,
                "version": "0",
                "severity": "INFO",
                "displayMessage": event_type.replace(".", " "),
                "actor": {"id": "00u_admin", "type": "User", "alternateId": f"admin@{self.domain}"},
                "target": targets,
                "outcome": {"result": "SUCCESS", "reason": None},
                "transaction": {"id": secrets.token_hex(8), "type": "WEB"},
            }
        )

    # ----------------------------------------------------------------- credentials

    def register_key(self, client_id: str, private_pem: str, kid: str | None = None) -> str:
        """Register the public half of a PEM private key with a service app; returns its kid."""
        with self._lock:
            key = serialization.load_pem_private_key(private_pem.encode(), password=None)
            public = key.public_key()
            der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            kid = kid or hashlib.sha256(der).hexdigest()[:16]
            self.apps.setdefault(client_id, ServiceApp(client_id)).keys[kid] = public
            return kid

    def set_permissions(
        self,
        *,
        client_id: str | None = None,
        scopes: Iterable[str] | None = None,
        permissions: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Change a service app's granted scopes and role, or (no client_id) the API token's role."""
        with self._lock:
            target: ServiceApp | ApiToken = self.apps[client_id] if client_id else self.api_tokens[self.api_token]
            if scopes is not None and isinstance(target, ServiceApp):
                target.scopes = set(scopes)
            if permissions is not None:
                target.permissions = set(permissions)
            self.access_tokens.clear()
            return {
                "scopes": sorted(target.scopes) if isinstance(target, ServiceApp) else None,
                "permissions": sorted(target.permissions),
            }

    def revoke_api_token(self) -> None:
        with self._lock:
            self.api_tokens[self.api_token].revoked = True

    def issue_token(self, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        """Client credentials with a private_key_jwt assertion: verify it all, or raise OAuthError."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise OAuthError(401, "invalid_client", "Client authentication failed: no client assertion.")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise OAuthError(401, "invalid_client", "The client_assertion is not a valid JWT.") from None
        client_id = str(claims.get("iss") or "")
        if claims.get("sub") != client_id:
            raise OAuthError(401, "invalid_client", "The client_assertion token's iss and sub claims must match.")
        with self._lock:
            app = self.apps.get(client_id)
            if app is None:
                raise OAuthError(401, "invalid_client", "The client_id is not valid.")
            keys = [app.keys[header["kid"]]] if header.get("kid") in app.keys else list(app.keys.values())
            if header.get("kid") and header["kid"] not in app.keys:
                keys = []
            if header.get("alg") not in ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"):
                raise OAuthError(401, "invalid_client", "The client_assertion is signed with an unsupported algorithm.")
            verified = None
            for key in keys:
                try:
                    verified = jwt.decode(
                        assertion,
                        key,
                        algorithms=[header["alg"]],
                        audience=token_url,
                        options={"require": ["exp", "iss", "sub", "aud"]},
                    )
                    break
                except jwt.InvalidAudienceError:
                    raise OAuthError(
                        401, "invalid_client", f"The audience claim must be the token endpoint {token_url}."
                    ) from None
                except jwt.ExpiredSignatureError:
                    raise OAuthError(401, "invalid_client", "The client_assertion token is expired.") from None
                except jwt.MissingRequiredClaimError as exc:
                    raise OAuthError(401, "invalid_client", f"The client_assertion lacks {exc.claim}.") from None
                except jwt.InvalidSignatureError:
                    continue
                except jwt.InvalidTokenError as exc:
                    raise OAuthError(401, "invalid_client", f"The client_assertion is invalid: {exc}") from None
            if verified is None:
                raise OAuthError(
                    401, "invalid_client", "The client_assertion signature is not valid for any key of the client."
                )
            if float(verified["exp"]) > time.time() + 3600 + 60:
                raise OAuthError(
                    401, "invalid_client", "The client_assertion token has an expiration too far in the future."
                )
            jti = verified.get("jti")
            if jti is not None:
                if jti in self.used_jtis:
                    raise OAuthError(401, "invalid_client", "The client_assertion token has already been used.")
                self.used_jtis.add(str(jti))
            requested = set(form.get("scope", "").split())
            if not requested:
                raise OAuthError(400, "invalid_scope", "The authorization server requires a scope.")
            refused = sorted(requested - app.scopes)
            if refused:
                raise OAuthError(400, "invalid_scope", f"The following scopes are not allowed: {refused}")
            token = secrets.token_urlsafe(32)
            self.access_tokens[token] = AccessToken(client_id, frozenset(requested), time.time() + 3600)
            return {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": token,
                "scope": " ".join(sorted(requested)),
            }

    def authorize(self, header: str | None, family: str) -> None:
        """Let a request through, or raise the OktaError Okta answers (401 E0000011 / 403)."""
        resource = family.rsplit("/", 1)[-1]
        scheme, _, value = (header or "").partition(" ")
        with self._lock:
            if scheme == "SSWS":
                token = self.api_tokens.get(value.strip())
                if token is None or token.revoked:
                    raise OktaError(401, "E0000011", "Invalid token provided")
                if resource not in token.permissions:
                    raise _forbidden()
                return
            access = self.access_tokens.get(value.strip()) if scheme == "Bearer" else None
            if access is None or access.expires < time.time():
                raise OktaError(401, "E0000011", "Invalid token provided")
            scope = f"okta.{resource}.read"
            if scope not in access.scopes:
                raise OktaError(
                    403,
                    "E0000006",
                    "You do not have permission to perform the requested action",
                    headers={
                        "WWW-Authenticate": f'Bearer authorization_uri="/oauth2/v1/authorize", realm="okta", '
                        f'scope="{scope}", error="insufficient_scope", error_description="The access token '
                        f'provided does not contain the required scopes.", resource="{family}"'
                    },
                    body=False,
                )
            if resource not in self.apps[access.client_id].permissions:
                raise _forbidden()

    # ----------------------------------------------------------------- faults, limits, stats

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

    def charge(self, family: str) -> tuple[dict[str, str], bool]:
        """Count a request against its family's window: (X-Rate-Limit-* headers, over the limit)."""
        behaviour = self.behaviour
        limit = behaviour.rate_limit or DEFAULT_LIMITS.get(family, 600)
        now = time.time()
        window = int(now // behaviour.rate_window)
        with self._lock:
            used = self._windows.get((family, window), 0) + 1
            self._windows = {k: v for k, v in self._windows.items() if k[1] >= window - 1}
            self._windows[(family, window)] = used
        reset = int((window + 1) * behaviour.rate_window)
        headers = {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(max(0, limit - used)),
            "X-Rate-Limit-Reset": str(reset),
        }
        return headers, used > limit

    def reset_stats(self) -> None:
        self.requests: list[RequestRecord] = []
        self.served: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self.requests),
                "by_endpoint": dict(Counter(f"{r.method} {_family_of(r.path)}" for r in self.requests)),
                "throttled": sum(1 for r in self.requests if r.status == 429),
                "served": dict(self.served),
            }


# ---------------------------------------------------------------------- records


def _user_record(person: Person, user_id: str, status: str, *, created: str | None = None) -> dict[str, Any]:
    created = created or person.created.replace("Z", ".000Z")
    return {
        "id": user_id,
        "status": status,
        "created": created,
        "activated": None if status == "STAGED" else created,
        "statusChanged": created,
        "lastLogin": None,
        "lastUpdated": created,
        "passwordChanged": created,
        "type": {"id": "oty1sandbox00000000"},
        "profile": {
            "firstName": person.given_name,
            "lastName": person.surname,
            "displayName": person.display_name,
            "login": person.login,
            "email": person.email or person.login,
            "title": person.job_title,
            "department": person.department,
            "division": person.team,
            "organization": "Contoso",
            "city": person.city,
            "countryCode": person.country,
            "preferredLanguage": person.preferred_language,
            "employeeNumber": person.employee_id,
            "mobilePhone": person.mobile_phone,
            "primaryPhone": person.business_phone,
            # A custom attribute, flat in the profile as Okta keeps them.
            "costCenter": f"CC-{zlib.crc32(person.department.encode()) % 900 + 100}",
        },
        "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
    }


def _group_record(gid: str, name: str, description: str, kind: str, *, stamp: str | None = None) -> dict[str, Any]:
    stamp = stamp or "2019-01-01T00:00:00.000Z"
    return {
        "id": gid,
        "created": stamp,
        "lastUpdated": stamp,
        "lastMembershipUpdated": stamp,
        "objectClass": ["okta:user_group"],
        "type": kind,
        "profile": {"name": name, "description": description},
    }


def _forbidden() -> OktaError:
    return OktaError(403, "E0000006", "You do not have permission to perform the requested action")


def _family_of(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:3])


def _okta_id(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(17))


def _now() -> str:
    """Now in Okta's format: ISO-8601 with milliseconds and `Z`."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_private_key(kind: str = "rsa") -> str:
    """A PEM private key for a service app: RSA 2048 or EC P-256."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
