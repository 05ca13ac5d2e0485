"""One rig per provider: its sandbox, a directory document reading it, a change to the source, and its faults.

A fault is named the same for every provider (`FAULTS`); each rig says how its provider
shows it on the wire, in the provider's own format (a Graph 429 with `Retry-After`,
Okta's E0000047 with `X-Rate-Limit-Reset`, Google's `rateLimitExceeded`, an LDAP
connection cut by a proxy), and on which request: "a later page" is a request that
some matching requests went before.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any, Protocol

from accessiq.sandbox import SandboxServer, okta
from accessiq.sandbox import entra as graph
from accessiq.sandbox import google as gsuite
from accessiq.sandbox.entra import EntraSandbox
from accessiq.sandbox.google import GoogleSandbox
from accessiq.sandbox.google_app import create_app as google_app
from accessiq.sandbox.okta import OktaSandbox
from accessiq.sandbox.okta_app import create_app as okta_app

from ..connectors.google_kit import TEST_BEHAVIOUR as GOOGLE_BEHAVIOUR
from ..connectors.graph_kit import TEST_BEHAVIOUR as GRAPH_BEHAVIOUR
from ..connectors.okta_kit import TEST_BEHAVIOUR as OKTA_BEHAVIOUR

# The client's patience for one answer in these tests (ACCESSIQ_HTTP_TIMEOUT); a stall is longer.
HTTP_TIMEOUT = 0.5
STALL = 1.5
MAPPED_GROUP = "Engineering"  # nested: its members are teams, so org memberships come through nesting


@dataclass(frozen=True)
class FaultCase:
    """A fault as the suite names it. `expect`: what the run must end as (`succeeded`, `failed`, or
    `either` when both are correct); `says`: words the failure message must contain."""

    name: str
    expect: str = "either"
    says: tuple[str, ...] = ()
    # Read everything (a full round), where a read that stops early but looks complete would deactivate.
    full: bool = True


FAULTS = {
    case.name: case
    for case in (
        FaultCase("429 storm", expect="succeeded"),
        FaultCase("5xx burst", expect="succeeded"),
        FaultCase("timeout", expect="succeeded"),
        FaultCase("connection cut mid-page", expect="succeeded"),
        FaultCase("truncated body"),
        FaultCase("malformed body"),
        FaultCase("pagination loop", expect="failed", says=("loop",)),
        FaultCase("cursor expires mid-round"),
        FaultCase("permission revoked mid-run", expect="failed", says=("read",)),
    )
}


class Rig(Protocol):
    """What the suite needs of a provider."""

    name: str
    incremental: frozenset[str]
    expect: dict[str, str]

    def reset(self) -> None: ...
    def document(self) -> dict[str, Any]: ...
    def change_source(self) -> None: ...
    def fault(self, name: str) -> Any: ...
    def inject(self, fault: Any) -> None: ...
    def served(self) -> int: ...
    def clear(self) -> None: ...
    def early_retries(self) -> list[str]: ...


def _settings() -> dict[str, Any]:
    # The guard is wide open: a broken read that looked complete must show as deactivations here.
    return {
        "default_organization": "acme",
        "safety": {"max_deactivations": 100000, "max_deactivation_percent": 100},
    }


def _mappings() -> list[dict[str, str]]:
    return [{"source_group": MAPPED_GROUP, "organization": "eng", "role": "admin"}]


class HttpRig:
    """Shared parts of the HTTP sandboxes: a server, faults injected in-process, the request log."""

    name = ""
    sandbox: Any
    # Faults met by an incremental run (the others by a full one), and outcomes stricter than FAULTS says.
    incremental: frozenset[str] = frozenset()
    expect: dict[str, str] = {}

    def __init__(self, stack: ExitStack) -> None:
        self.url = stack.enter_context(SandboxServer(self._app())).url

    def _app(self) -> Any:
        raise NotImplementedError

    def served(self) -> int:
        return int(self.sandbox.faults_served)

    def clear(self) -> None:
        with self.sandbox._lock:
            self.sandbox.faults.clear()

    def _people(self) -> list[Any]:
        return [p for p in self.sandbox.population.people if p.active]

    def _group(self, name: str) -> Any:
        return next(g for g in self.sandbox.population.groups if g.name == name)

    def _outsider(self, group: Any) -> str:
        # Not one of the people changed above.
        return str(next(p.id for p in self._people()[5:] if p.id not in group.member_users))

    def _insider(self, group: Any) -> str:
        touched = {p.id for p in self._people()[:5]}
        return str(next(u for u in group.member_users if u not in touched))

    def early_retries(self) -> list[str]:
        """Requests that came sooner after a 429 than it asked the client to wait."""
        early = []
        requests = list(self.sandbox.requests)
        for before, after in itertools.pairwise(requests):
            asked = before.waits
            if before.status == 429 and asked is not None and after.at - before.at < asked - 0.05:
                early.append(f"{after.path} {after.at - before.at:.2f}s after a 429 asking {asked}s")
        return early


class EntraRig(HttpRig):
    name = "entra"
    sandbox: EntraSandbox
    # Graph's delta state expiring in the middle of a round: the read starts over in full.
    expect = {"cursor expires mid-round": "succeeded"}

    def _app(self) -> Any:
        self.sandbox = EntraSandbox(80, 16, seed=11, departed=3, behaviour=replace(GRAPH_BEHAVIOUR))
        return graph.create_app(self.sandbox)

    def reset(self) -> None:
        self.sandbox.reset()
        self.sandbox.behaviour = replace(GRAPH_BEHAVIOUR)
        self.sandbox.faults_served = 0

    def document(self) -> dict[str, Any]:
        s = self.sandbox
        return {
            "name": "Contoso Entra",
            "provider": "entra",
            "connection": {
                "tenant_id": s.tenant_domain,
                "client_id": s.client_id,
                "client_secret": s.client_secret,
                "authority_url": self.url,
                "graph_url": self.url,
            },
            "settings": {**_settings(), "attribute_mapping": {"department": "department"}},
            "group_mappings": _mappings(),
        }

    def change_source(self) -> None:
        s, people, sales = self.sandbox, self._people(), self._group("Sales")
        s.update_user(people[1].id, {"department": "Finance"})
        s.update_user(people[2].id, {"jobTitle": "Director"})
        s.disable_user(people[3].id)
        s.delete_user(people[4].id)
        s.add_user({"displayName": "New Hire"})
        s.change_members(sales.id, add=[self._outsider(sales)], remove=[self._insider(sales)])

    def fault(self, name: str) -> Any:
        faults = {
            "429 storm": graph.Fault("throttle", count=3, retry_after=1, after=2, path_contains="/delta"),
            "5xx burst": graph.Fault("error", count=2, status=503, code="serviceNotAvailable", retry_after=None,
                                     after=2, path_contains="/delta"),
            "timeout": graph.Fault("delay", delay=STALL, after=2, path_contains="/delta"),
            "connection cut mid-page": graph.Fault("cut", after=2, path_contains="/delta"),
            "truncated body": graph.Fault("truncate", after=2, path_contains="/delta"),
            "malformed body": graph.Fault("malformed", after=2, path_contains="/delta"),
            "pagination loop": graph.Fault("loop", count=5, after=2, path_contains="/users/delta"),
            "cursor expires mid-round": graph.Fault("expire", after=2, path_contains="/delta"),
            "permission revoked mid-run": graph.Fault("forbidden", after=1, path_contains="/groups/delta"),
        }
        return faults[name]

    def inject(self, fault: Any) -> None:
        self.sandbox.inject(fault)


class OktaRig(HttpRig):
    name = "okta"
    sandbox: OktaSandbox
    # The System Log is read by incremental runs; past its window they read everything instead.
    incremental = frozenset({"cursor expires mid-round"})
    expect = {"cursor expires mid-round": "succeeded"}

    def _app(self) -> Any:
        self.sandbox = OktaSandbox(60, 16, seed=5, behaviour=replace(OKTA_BEHAVIOUR))
        return okta_app(self.sandbox)

    def reset(self) -> None:
        self.sandbox.reset()
        self.sandbox.behaviour = replace(OKTA_BEHAVIOUR)
        self.sandbox.faults_served = 0

    def document(self) -> dict[str, Any]:
        return {
            "name": "Acme Okta",
            "provider": "okta",
            "connection": {"org_url": self.url, "api_token": self.sandbox.api_token},
            "settings": {**_settings(), "attribute_mapping": {"department": "profile.department"}},
            "group_mappings": _mappings(),
        }

    def change_source(self) -> None:
        s, people, sales = self.sandbox, self._people(), self._group("Sales")
        s.update_user(people[1].id, {"department": "Finance"})
        s.update_user(people[2].id, {"title": "Director"})
        s.set_status(people[3].id, "SUSPENDED")
        s.delete_user(people[4].id)
        s.add_user({"firstName": "New", "lastName": "Hire"})
        s.change_members(sales.id, add=[self._outsider(sales)], remove=[self._insider(sales)])

    def fault(self, name: str) -> Any:
        faults = {
            "429 storm": okta.Fault("throttle", count=3, after=2, path_contains="/api/v1/users"),
            "5xx burst": okta.Fault("error", count=2, status=500, after=2, path_contains="/api/v1/users"),
            "timeout": okta.Fault("delay", delay=STALL, after=2, path_contains="/api/v1/users"),
            "connection cut mid-page": okta.Fault("cut", after=2, path_contains="/api/v1/users"),
            "truncated body": okta.Fault("truncate", after=2, path_contains="/api/v1/users"),
            "malformed body": okta.Fault("malformed", after=2, path_contains="/api/v1/users"),
            "pagination loop": okta.Fault("loop", count=5, after=2, path_contains="/api/v1/users"),
            # Okta's change feed is the System Log: a `since` older than its window is refused (E0000053).
            "cursor expires mid-round": okta.Fault("log_window", path_contains="/api/v1/logs"),
            "permission revoked mid-run": okta.Fault("forbidden", after=3, path_contains="/api/v1/groups"),
        }
        return faults[name]

    def inject(self, fault: Any) -> None:
        self.sandbox.inject(fault)


class GoogleRig(HttpRig):
    name = "google"
    sandbox: GoogleSandbox
    # A page token Google no longer honours: the list is read again from its start.
    expect = {"cursor expires mid-round": "succeeded"}

    def _app(self) -> Any:
        self.sandbox = GoogleSandbox(60, 16, seed=5, behaviour=replace(GOOGLE_BEHAVIOUR))
        return google_app(self.sandbox)

    def reset(self) -> None:
        self.sandbox.reset()
        self.sandbox.behaviour = replace(GOOGLE_BEHAVIOUR)
        self.sandbox.faults_served = 0

    def document(self) -> dict[str, Any]:
        s = self.sandbox
        return {
            "name": "Acme Google",
            "provider": "google",
            "connection": {
                "service_account": json.dumps(s.service_account_key(f"{self.url}/token")),
                "admin_email": s.admin_email,
                "api_url": self.url,
                "token_url": f"{self.url}/token",
            },
            "settings": {**_settings(), "attribute_mapping": {"department": "organizations[primary].department"}},
            "group_mappings": _mappings(),
        }

    def change_source(self) -> None:
        s, people, sales = self.sandbox, self._people(), self._group("Sales")
        s.update_user(people[1].id, {"organizations": [{"department": "Finance", "primary": True}]})
        s.update_user(people[2].id, {"name": {"givenName": "Renamed"}})
        s.set_state(people[3].id, suspended=True)
        s.delete_user(people[4].id)
        s.add_user({"name": {"givenName": "New", "familyName": "Hire"}})
        s.change_members(sales.id, add=[self._outsider(sales)], remove=[self._insider(sales)])

    def fault(self, name: str) -> Any:
        faults = {
            "429 storm": gsuite.Fault("quota", reason="rateLimitExceeded", count=3, after=2, path_contains="/users"),
            "5xx burst": gsuite.Fault("error", status=503, count=2, after=2, path_contains="/users"),
            "timeout": gsuite.Fault("delay", delay=STALL, after=2, path_contains="/users"),
            "connection cut mid-page": gsuite.Fault("cut", after=2, path_contains="/users"),
            "truncated body": gsuite.Fault("truncate", after=2, path_contains="/users"),
            "malformed body": gsuite.Fault("malformed", after=2, path_contains="/users"),
            "pagination loop": gsuite.Fault("loop", count=5, after=2, path_contains="/users"),
            # A page token lives 3 days: one that ran out while the list was read.
            "cursor expires mid-round": gsuite.Fault("expire", after=2, path_contains="/users"),
            "permission revoked mid-run": gsuite.Fault("forbidden", after=3, path_contains="/members"),
        }
        return faults[name]

    def inject(self, fault: Any) -> None:
        self.sandbox.inject(fault)


RIGS: dict[str, Callable[[ExitStack], Any]] = {"entra": EntraRig, "okta": OktaRig, "google": GoogleRig}


class LdapRig:
    """A real slapd, fresh for every scenario, read through a proxy that cuts, stalls and corrupts."""

    name = "ldap"
    # syncrepl is read by incremental runs; a server that lost the changes answers e-syncRefreshRequired.
    incremental = frozenset({"cursor expires mid-round"})
    expect = {"cursor expires mid-round": "succeeded"}

    def __init__(self, stack: ExitStack) -> None:
        from ..connectors.ldap_kit import require_slapd

        require_slapd()
        self._stack = stack
        self.sandbox: Any = None
        self.proxy: Any = None

    def reset(self) -> None:
        from accessiq.sandbox.ldap import SlapdSandbox

        from .ldap_proxy import LdapFaultProxy

        self.close()
        self.sandbox = SlapdSandbox(users=60, groups=16, seed=5).start()
        self.proxy = LdapFaultProxy((self.sandbox.host, self.sandbox.port))
        self._stack.callback(self.close)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None

    def document(self) -> dict[str, Any]:
        from accessiq.sandbox.ldap import SERVICE_ACCOUNTS

        return {
            "name": "Contoso LDAP",
            "provider": "ldap",
            "connection": {
                "url": self.proxy.url,
                "bind_dn": self.sandbox.service_dn(),
                "bind_password": SERVICE_ACCOUNTS["accessiq"],
                "base_dn": self.sandbox.suffix,
                # Small pages, so that a fault can hit a page in the middle of a search.
                "page_size": 10,
                "timeout": HTTP_TIMEOUT,
            },
            "settings": {**_settings(), "attribute_mapping": {"title": "title"}},
            "group_mappings": _mappings(),
        }

    def change_source(self) -> None:
        s = self.sandbox
        people = [p for p in s.population.people if p.active]
        sales = next(g for g in s.population.groups if g.name == "Sales")
        by_id = s.population.by_id
        s.update_user(people[1].username, {"title": ["Director"]})
        s.update_user(people[2].username, {"displayName": ["Renamed Person"]})
        s.disable_user(people[3].username)
        s.delete(people[4].username)
        s.add_user(given_name="New", surname="Hire")
        touched = {p.id for p in people[:5]}
        outsider = next(p for p in people[5:] if p.id not in sales.member_users)
        insider = next(by_id[u] for u in sales.member_users if u not in touched)
        s.change_members("Sales", add=[outsider.username], remove=[insider.username])

    def fault(self, name: str) -> Any:
        from .ldap_proxy import SYNC_REQUEST_OID, ProxyFault

        faults = {
            # LDAP's throttling and unavailability: busy (51) and unavailable (52) answers.
            "429 storm": ProxyFault("refuse", result=51, count=3, after=3),
            "5xx burst": ProxyFault("refuse", result=52, count=2, after=3),
            "timeout": ProxyFault("stall", seconds=STALL, after=3),
            "connection cut mid-page": ProxyFault("cut", after=3),
            "truncated body": ProxyFault("truncate", after=3),
            "malformed body": ProxyFault("corrupt", after=3),
            "pagination loop": ProxyFault("loop", count=5, after=3),
            # RFC 4533: the server no longer holds the changes since the cookie.
            "cursor expires mid-round": ProxyFault("refuse", result=4096, control=SYNC_REQUEST_OID),
            "permission revoked mid-run": ProxyFault("refuse", result=50, after=3),
        }
        return faults[name]

    def inject(self, fault: Any) -> None:
        self.proxy.inject(fault)

    def served(self) -> int:
        return int(self.proxy.served) if self.proxy is not None else 0

    def clear(self) -> None:
        self.proxy.clear()

    def early_retries(self) -> list[str]:
        return []  # LDAP asks for no particular wait


RIGS["ldap"] = LdapRig
