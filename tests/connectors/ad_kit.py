"""A real Samba 4 Active Directory domain controller for connector tests.

Provisioned once per test session into a temporary directory (about 4 s) and
started on 127.0.0.1:389 (AD's fixed port). Only one DC can hold that port, so
the session holds an exclusive lock on a file beside it for as long as the DC
runs: a second pytest worker or process waits for it (scripts/test also keeps
the AD tests on one xdist worker). Each test seeds its own organizational unit,
so tests do not see each other's users. With CI=true a missing samba fails the
tests instead of skipping them (scripts/test installs it).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from accessiq.connectors.active_directory import guid_string, sid_rid
from accessiq.connectors.ldap import LdapConnector
from accessiq.connectors.ldap_settings import LdapConnection

from .ldap_kit import IN_CI

REALM = "EXAMPLE.TEST"
NAMING_CONTEXT = "DC=example,DC=test"
ADMIN = f"Administrator@{REALM}"
ADMIN_PASSWORD = "Passw0rd!2024"
URL = "ldap://127.0.0.1:389"
LOCK_FILE = Path(tempfile.gettempdir()) / "accessiq-samba-ad.lock"
PACKAGES = "samba samba-ad-dc samba-dsdb-modules samba-vfs-modules winbind krb5-user smbclient"
# userAccountControl: a normal account that needs no password (the tests never log in as it).
ENABLED, DISABLED = 0x200 | 0x20, 0x200 | 0x20 | 0x2
_ou_numbers = itertools.count(1)


def require_samba() -> None:
    """Skip (fail in CI) when Samba's AD DC or python-ldap is missing."""
    missing = [tool for tool in ("samba", "samba-tool") if not _which(tool)]
    try:
        import ldap  # noqa: F401
    except ImportError:
        missing.append("python-ldap")
    if missing:
        message = f"the Samba AD DC tests need {', '.join(missing)}: apt-get install {PACKAGES} (scripts/test does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


class SambaDC:
    """One provisioned and running Samba AD DC, stopped by `stop()`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process_id: int | None = None

    def provision(self) -> SambaDC:
        d = self.directory
        _run(
            [
                str(_which("samba-tool")),
                "domain",
                "provision",
                f"--realm={REALM}",
                "--domain=EXAMPLE",
                "--server-role=dc",
                "--dns-backend=SAMBA_INTERNAL",
                f"--adminpass={ADMIN_PASSWORD}",
                f"--targetdir={d}",
                "--host-ip=127.0.0.1",
                "--host-name=dc1",
                "--use-rfc2307",
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ]
        )
        for sub in ("log", "run", "cache"):
            (d / sub).mkdir(exist_ok=True)
        conf = d / "etc" / "smb.conf"
        text = conf.read_text()
        globals_, _, rest = text.partition("[homes]")
        shares = "[sysvol]" + rest.split("[sysvol]", 1)[1] if "[sysvol]" in rest else ""
        own = (
            f"\tlog file = {d}/log/log.%m\n\tpid directory = {d}/run\n"
            f"\twinbindd socket directory = {d}/run/winbindd\n\tntp signd socket directory = {d}/run/ntp_signd\n"
            "\tldap server require strong auth = no\n\tserver services = ldap\n"
        )
        conf.write_text(re.sub(r"\tlog file = .*\n", lambda _: own, globals_) + shares)
        return self

    def start(self, timeout: float = 60.0) -> SambaDC:
        conf = self.directory / "etc" / "smb.conf"
        _run([str(_which("samba")), "-s", str(conf)])
        deadline = time.monotonic() + timeout
        pid_file = self.directory / "run" / "samba.pid"
        while time.monotonic() < deadline:
            if self.process_id is None and pid_file.exists() and pid_file.read_text().strip():
                self.process_id = int(pid_file.read_text().strip())
                LOCK_FILE.write_text(str(self.process_id))
            with contextlib.suppress(Exception):
                self.connect().unbind_s()
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"Samba did not answer LDAP on {URL} within {timeout:.0f} s: see {self.directory}/log")

    def stop(self) -> None:
        if self.process_id is not None:
            _stop(self.process_id)
            self.process_id = None

    def connect(self) -> Any:
        import ldap

        conn = ldap.initialize(URL, bytes_mode=False)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(ADMIN, ADMIN_PASSWORD)
        return conn


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr[-2000:] or done.stdout[-2000:]}")


def _stop(process_id: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process_id, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(process_id):
        time.sleep(0.1)
    if _alive(process_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process_id, signal.SIGKILL)


def _alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int = 389) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop_leftover() -> None:
    """A DC an interrupted session left running (its PID is in the lock file, which we now hold)."""
    with contextlib.suppress(OSError, ValueError):
        process_id = int(LOCK_FILE.read_text().strip() or "0")
        if process_id and "samba" in Path(f"/proc/{process_id}/cmdline").read_text():
            _stop(process_id)


@contextlib.contextmanager
def samba_dc() -> Iterator[SambaDC]:
    """A running DC held under the session-wide lock; stopped and removed afterwards."""
    require_samba()
    with open(LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _stop_leftover()
            if _port_open():
                pytest.fail("127.0.0.1:389 is taken by another program: the Samba AD DC tests need that port")
            directory = Path(tempfile.mkdtemp(prefix="accessiq-samba-"))
            dc = SambaDC(directory)
            try:
                yield dc.provision().start()
            finally:
                dc.stop()
                LOCK_FILE.write_text("")
                shutil.rmtree(directory, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- one test's data


@dataclass
class AdUser:
    login: str  # sAMAccountName
    dn: str
    guid: str
    active: bool = True


@dataclass
class AdGroup:
    name: str
    dn: str
    guid: str
    rid: int
    users: set[str] = field(default_factory=set)  # member user GUIDs
    groups: set[str] = field(default_factory=set)  # member group GUIDs


class AdKit:
    """An organizational unit of its own on the DC, with users and groups, and ways to change them."""

    def __init__(self, dc: SambaDC) -> None:
        self.dc = dc
        self.conn = dc.connect()
        # sAMAccountName is unique in the whole domain: each kit's names end in its own tag.
        self.tag = f"k{next(_ou_numbers)}"
        self.base = f"OU={self.tag},{NAMING_CONTEXT}"
        self.users: dict[str, AdUser] = {}  # name (see login()) -> user
        self.groups: dict[str, AdGroup] = {}  # name -> group
        self._add(self.base, {"objectClass": ["organizationalUnit"]})
        for ou in ("Sales", "Legal", "Finance", "Groups"):
            self._add(f"OU={ou},{self.base}", {"objectClass": ["organizationalUnit"]})

    # ------------------------------------------------------------- reading

    def settings(self, **overrides: Any) -> LdapConnection:
        values: dict[str, Any] = {
            "url": URL,
            "bind_dn": ADMIN,
            "bind_password": ADMIN_PASSWORD,
            "base_dn": self.base,
            "flavor": "active_directory",
        }
        values.update(overrides)
        return LdapConnection(**values)

    def connector(self, **overrides: Any) -> LdapConnector:
        return LdapConnector(self.settings(**overrides))

    def expected_memberships(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        return {g.guid: (frozenset(g.users), frozenset(g.groups)) for g in self.groups.values()}

    def user_states(self) -> dict[str, bool]:
        return {u.guid: u.active for u in self.users.values()}

    # ------------------------------------------------------------- seeding

    def seed(self, users: int = 24, groups: int = 6) -> AdKit:
        """`users` people over three OUs (every seventh disabled) and `groups` groups, two of them nested."""
        ous = ("Sales", "Legal", "Finance")
        for n in range(users):
            self.add_user(f"person{n:03d}", ou=ous[n % 3], active=n % 7 != 3)
        names = sorted(self.users)
        for g in range(groups):
            members = names[g::groups] + names[: 2 + g]
            self.add_group(f"Team {g}", users=sorted(set(members)))
        if groups >= 3:
            self.change_members("Team 0", add_groups=["Team 1"])
            self.change_members("Team 1", add_groups=["Team 2"])
        return self

    def login(self, name: str) -> str:
        """The sAMAccountName of a user this kit calls `name`."""
        return f"{name}.{self.tag}"

    def add_user(self, name: str, *, ou: str = "Sales", active: bool = True, given: str = "", sn: str = "") -> AdUser:
        login = self.login(name)
        dn = f"CN={login},OU={ou},{self.base}"
        given, sn = given or name.title(), sn or "Tester"
        self._add(
            dn,
            {
                "objectClass": ["user"],
                "sAMAccountName": [login],
                "userPrincipalName": [f"{login}@example.test"],
                "mail": [f"{login}@example.test"],
                "givenName": [given],
                "sn": [sn],
                "displayName": [f"{given} {sn}"],
                "department": [ou],
                "userAccountControl": [str(ENABLED if active else DISABLED)],
            },
        )
        user = AdUser(login, dn, self._guid(dn), active)
        self.users[name] = user
        return user

    def add_many_users(self, count: int, *, prefix: str = "bulk", ou: str = "Sales") -> list[AdUser]:
        """Many users at once: the adds are sent without waiting for each answer."""
        names = [f"{prefix}{n:05d}" for n in range(count)]
        dns = {name: f"CN={self.login(name)},OU={ou},{self.base}" for name in names}
        pending = []
        for name, dn in dns.items():
            login = self.login(name)
            attributes = {
                "objectClass": ["user"],
                "sAMAccountName": [login],
                "mail": [f"{login}@example.test"],
                "userAccountControl": [str(ENABLED)],
            }
            pending.append(self.conn.add_ext(dn, _encode(attributes)))
        for message in pending:
            self.conn.result(message)
        guids = self._guids(f"OU={ou},{self.base}", "(objectClass=user)")
        made = {name: AdUser(self.login(name), dn, guids[dn.lower()]) for name, dn in dns.items()}
        self.users.update(made)
        return list(made.values())

    def add_group(self, name: str, *, users: Sequence[str] = (), groups: Sequence[str] = ()) -> AdGroup:
        import ldap

        dn = f"CN={name},OU=Groups,{self.base}"
        attributes: dict[str, list[str]] = {"objectClass": ["group"], "sAMAccountName": [f"{name}.{self.tag}"]}
        members = [self.users[u].dn for u in users] + [self.groups[g].dn for g in groups]
        if members:
            attributes["member"] = members
        self._add(dn, attributes)
        found = self.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid"])[0][1]
        group = AdGroup(
            name,
            dn,
            self._guid(dn),
            sid_rid(found["objectSid"][0]),
            {self.users[u].guid for u in users},
            {self.groups[g].guid for g in groups},
        )
        self.groups[name] = group
        return group

    # ------------------------------------------------------------- changing

    def change_members(
        self,
        group: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        add_groups: Sequence[str] = (),
    ) -> None:
        import ldap

        target = self.groups[group]
        changes = []
        if add or add_groups:
            dns = [self.users[u].dn for u in add] + [self.groups[g].dn for g in add_groups]
            changes.append((ldap.MOD_ADD, "member", [d.encode() for d in dns]))
        if remove:
            changes.append((ldap.MOD_DELETE, "member", [self.users[u].dn.encode() for u in remove]))
        self.conn.modify_s(target.dn, changes)
        target.users |= {self.users[u].guid for u in add}
        target.users -= {self.users[u].guid for u in remove}
        target.groups |= {self.groups[g].guid for g in add_groups}

    def set_primary_group(self, name: str, group: str) -> None:
        """Make `group` the user's primary group: AD then drops the user from the group's member list."""
        import ldap

        user, target = self.users[name], self.groups[group]
        if user.guid not in target.users:
            self.change_members(group, add=[name])
        self.conn.modify_s(user.dn, [(ldap.MOD_REPLACE, "primaryGroupID", [str(target.rid).encode()])])

    def update_user(self, name: str, **attributes: str) -> None:
        import ldap

        changes = [(ldap.MOD_REPLACE, attribute, [value.encode()]) for attribute, value in attributes.items()]
        self.conn.modify_s(self.users[name].dn, changes)

    def disable(self, name: str) -> None:
        self.update_user(name, userAccountControl=str(DISABLED))
        self.users[name].active = False

    def rename(self, name: str, new_name: str) -> None:
        """A new CN (so a new DN) and a new sAMAccountName: the same objectGUID."""
        user = self.users.pop(name)
        login = self.login(new_name)
        self.conn.rename_s(user.dn, f"CN={login}")
        user.dn = f"CN={login},{user.dn.split(',', 1)[1]}"
        user.login = login
        self.users[new_name] = user
        self.update_user(new_name, sAMAccountName=login, userPrincipalName=f"{login}@example.test")

    def move(self, name: str, ou: str) -> None:
        user = self.users[name]
        rdn = user.dn.split(",", 1)[0]
        self.conn.rename_s(user.dn, rdn, f"OU={ou},{self.base}")
        user.dn = f"{rdn},OU={ou},{self.base}"

    def delete(self, name: str) -> None:
        user = self.users.pop(name)
        self.conn.delete_s(user.dn)
        for group in self.groups.values():
            group.users.discard(user.guid)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.unbind_s()

    # ------------------------------------------------------------- helpers

    def _add(self, dn: str, attributes: dict[str, list[str]]) -> None:
        self.conn.add_s(dn, _encode(attributes))

    def _guid(self, dn: str) -> str:
        import ldap

        found = self.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectGUID"])
        return guid_string(found[0][1]["objectGUID"][0])

    def dn_of_guid(self, guid: str) -> str | None:
        """The DN the DC finds for a GUID in string form: Samba parses the string itself in a filter."""
        import ldap

        found = self.conn.search_s(NAMING_CONTEXT, ldap.SCOPE_SUBTREE, f"(objectGUID={guid})", ["1.1"])
        return next((dn for dn, _ in found if dn), None)

    def _guids(self, base: str, filterstr: str) -> dict[str, str]:
        import ldap
        from ldap.controls import SimplePagedResultsControl

        found: dict[str, str] = {}
        control = SimplePagedResultsControl(True, size=1000, cookie="")
        while True:
            message = self.conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, ["objectGUID"], serverctrls=[control])
            _, data, _, controls = self.conn.result3(message)
            found.update({dn.lower(): guid_string(e["objectGUID"][0]) for dn, e in data if dn})
            control.cookie = next((c.cookie for c in controls if c.controlType == control.controlType), b"")
            if not control.cookie:
                return found


def _encode(attributes: dict[str, list[str]]) -> list[tuple[str, list[bytes]]]:
    return [(name, [v.encode() for v in values]) for name, values in attributes.items()]
