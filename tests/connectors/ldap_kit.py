"""A real OpenLDAP slapd for connector tests: started on loopback from a temporary directory.

With CI=true a missing slapd or python-ldap fails the test instead of skipping it
(scripts/test installs both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from accessiq.connectors.ldap import LdapConnection, LdapConnector
from accessiq.sandbox.ldap import SERVICE_ACCOUNTS, SlapdSandbox, SlapdUnavailableError, group_class

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_slapd() -> None:
    """Skip (fail in CI) when slapd or python-ldap is not installed."""
    try:
        from accessiq.sandbox.ldap import _require_tools

        _require_tools()
    except SlapdUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"slapd is required in CI: {exc}")
        pytest.skip(str(exc))


@dataclass
class LdapKit:
    """A running slapd sandbox and connectors pointed at it."""

    sandbox: SlapdSandbox

    def settings(self, **overrides: Any) -> LdapConnection:
        values: dict[str, Any] = {
            "url": self.sandbox.url,
            "bind_dn": self.sandbox.service_dn(),
            "bind_password": SERVICE_ACCOUNTS["accessiq"],
            "base_dn": self.sandbox.suffix,
        }
        values.update(overrides)
        return LdapConnection(**values)

    def connector(self, **overrides: Any) -> LdapConnector:
        return LdapConnector(self.settings(**overrides))

    def expected_memberships(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """Direct members of the seeded groups, from the population (posixGroup members are logins)."""
        population = self.sandbox.population
        return {
            g.id: (
                frozenset(g.member_users),
                frozenset() if group_class(g) == "posixGroup" else frozenset(g.member_groups),
            )
            for g in population.groups
        }


@contextmanager
def slapd(**options: Any) -> Iterator[LdapKit]:
    require_slapd()
    sandbox = SlapdSandbox(**options).start()
    try:
        yield LdapKit(sandbox)
    finally:
        sandbox.stop()
