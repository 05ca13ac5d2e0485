"""A private OpenLDAP slapd seeded with generated people, for demos, tests and benchmarks.

The server is the real thing (`slapd` from the system's OpenLDAP packages) with the
syncprov overlay, so syncrepl, paged results, size limits and ACLs behave as in
production. It runs from a temporary directory on a loopback port; nothing of the
system's own OpenLDAP configuration is touched. Changes to a running sandbox are
ordinary LDAP operations as the sandbox's root DN (`SlapdSandbox.add_user`, ...).

Layout under the suffix: `ou=People` with one `ou=<Department>` per department
(users `uid=<login>`, inetOrgPerson + posixAccount, disabled ones with
`shadowExpire: 1`), `ou=Groups` (office groups are posixGroup with `memberUid`,
project groups groupOfUniqueNames, the others groupOfNames; nesting by DN), and
`ou=Services` with the bind accounts of `SERVICE_ACCOUNTS`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accessiq.sandbox import SandboxServer, free_port
from accessiq.sandbox.people import GroupSpec, PeopleFactory, Person, Population, generate_population

DEFAULT_SUFFIX = "dc=example,dc=com"
ADMIN_PASSWORD = "sandbox-admin"
# cn=<name>,ou=Services: password and what the account may read (enforced by the ACLs below).
SERVICE_ACCOUNTS = {
    "accessiq": "sync-secret",  # reads everything but passwords; the account a directory binds as
    "no-access": "no-access-secret",  # may bind, reads nothing under ou=People or ou=Groups
    "no-groups": "no-groups-secret",  # reads the people, not the groups
}
GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "posixGroup")
_MEMBER_ATTRIBUTE = {"groupOfNames": "member", "groupOfUniqueNames": "uniqueMember", "posixGroup": "memberUid"}
_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")


class SlapdUnavailableError(RuntimeError):
    """slapd (or python-ldap, which the sandbox uses to change a running server) is not installed."""


def slapd_binary() -> str | None:
    """Path of the slapd executable, or None (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/libexec:/usr/libexec")
    return found


def _require_tools() -> tuple[str, str]:
    slapd = slapd_binary()
    slapadd = shutil.which("slapadd") or shutil.which("slapadd", path="/usr/sbin")
    if slapd is None or slapadd is None:
        raise SlapdUnavailableError(
            "OpenLDAP slapd is not installed: apt-get install slapd ldap-utils (scripts/test does it)"
        )
    try:
        import ldap  # noqa: F401
    except ImportError:
        raise SlapdUnavailableError(
            "python-ldap is not installed: pip install 'accessiq[ldap]' (needs libldap2-dev libsasl2-dev)"
        ) from None
    return slapd, slapadd


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and a server certificate it signed, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path, host: str = "127.0.0.1", *, days: int = 2) -> TlsFiles:
    """Write a fresh CA and a certificate for `host` (an IP or a name) signed by it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AccessIQ sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key_file.chmod(0o600)
    return files


def _first_existing(candidates: Iterable[str]) -> str | None:
    return next((c for c in candidates if Path(c).is_dir()), None)


def slapd_config(
    directory: Path, suffix: str, admin_password: str, tls: TlsFiles | None, *, syncprov: bool = True
) -> str:
    """A slapd.conf for a private instance in `directory` (see reference/test-servers.md)."""
    schema = _first_existing(_SCHEMA_DIRS) or _SCHEMA_DIRS[0]
    modules = _first_existing(_MODULE_DIRS)
    services = f"ou=Services,{suffix}"
    lines = [f"include {schema}/{name}.schema" for name in ("core", "cosine", "nis", "inetorgperson")]
    if modules and Path(modules, "back_mdb.la").exists():
        lines += [f"modulepath {modules}", "moduleload back_mdb", "moduleload refint"]
        lines += ["moduleload syncprov"] if syncprov else []
    lines += [
        f"pidfile {directory}/run/slapd.pid",
        f"argsfile {directory}/run/slapd.args",
        "loglevel none",
        # An unpaged search stops at 500 entries, a paged one returns everything: like a real server.
        "sizelimit size.soft=500 size.hard=unlimited size.prtotal=unlimited",
    ]
    if tls is not None:
        lines += [
            f"TLSCACertificateFile {tls.ca_file}",
            f"TLSCertificateFile {tls.cert_file}",
            f"TLSCertificateKeyFile {tls.key_file}",
        ]
    lines += [
        "database mdb",
        "maxsize 1073741824",
        f'suffix "{suffix}"',
        f'rootdn "cn=admin,{suffix}"',
        f"rootpw {admin_password}",
        f"directory {directory}/data",
        "index objectClass eq",
        "index uid,cn,mail,memberUid eq",
        "index member,uniqueMember eq",
        "index entryUUID,entryCSN eq",
        "access to attrs=userPassword by self write by anonymous auth by * none",
        f'access to dn.subtree="{services}" by self read by * none',
        f'access to dn.subtree="ou=People,{suffix}" by dn.exact="cn=no-access,{services}" none by users read by * none',
        f'access to dn.subtree="ou=Groups,{suffix}" by dn.exact="cn=no-access,{services}" none '
        f'by dn.exact="cn=no-groups,{services}" none by users read by * none',
        "access to * by users read by * none",
        # A renamed or deleted user leaves no dangling member DN behind.
        "overlay refint",
        "refint_attributes member uniqueMember",
        f'refint_nothing "cn=admin,{suffix}"',
    ]
    if syncprov:
        lines += ["overlay syncprov", "syncprov-checkpoint 100 10", "syncprov-sessionlog 10000"]
    return "\n".join(lines) + "\n"


def people_dn(suffix: str) -> str:
    return f"ou=People,{suffix}"


def groups_dn(suffix: str) -> str:
    return f"ou=Groups,{suffix}"


def user_dn(person: Person, suffix: str) -> str:
    from ldap.dn import escape_dn_chars

    return f"uid={escape_dn_chars(person.username)},ou={escape_dn_chars(person.department)},{people_dn(suffix)}"


def group_dn(name: str, suffix: str) -> str:
    from ldap.dn import escape_dn_chars

    return f"cn={escape_dn_chars(name)},{groups_dn(suffix)}"


def group_class(spec: GroupSpec) -> str:
    """The object class the sandbox gives a generated group: every LDAP group flavour appears."""
    if spec.kind == "office" or not (spec.member_users or spec.member_groups):
        # posixGroup needs no member, so it also holds the empty groups.
        return "posixGroup"
    return "groupOfUniqueNames" if spec.kind == "project" else "groupOfNames"


def person_attributes(person: Person, number: int) -> dict[str, list[str]]:
    attributes = {
        "objectClass": ["top", "inetOrgPerson", "posixAccount", "shadowAccount"],
        "uid": [person.username],
        "cn": [person.display_name],
        "sn": [person.surname],
        "givenName": [person.given_name],
        "displayName": [person.display_name],
        "title": [person.job_title],
        "departmentNumber": [person.department],
        "ou": [person.team],
        "l": [person.city],
        "preferredLanguage": [person.preferred_language],
        "employeeNumber": [person.employee_id],
        "mobile": [person.mobile_phone],
        "telephoneNumber": [person.business_phone],
        "uidNumber": [str(20000 + number)],
        "gidNumber": ["10000"],
        "homeDirectory": [f"/home/{person.username}"],
    }
    if person.email:
        attributes["mail"] = [person.email]
    if not person.active:
        attributes["shadowExpire"] = ["1"]
    return attributes


def seed_entries(population: Population, suffix: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Every entry of a seeded sandbox, parents first; entryUUIDs are the population's ids."""
    from ldap.dn import str2dn

    top = str2dn(suffix)[0][0][1]
    entries: list[tuple[str, dict[str, list[str]]]] = [
        (suffix, {"objectClass": ["top", "dcObject", "organization"], "dc": [top], "o": ["Contoso"]}),
    ]
    for ou in ("People", "Groups", "Services"):
        entries.append((f"ou={ou},{suffix}", {"objectClass": ["top", "organizationalUnit"], "ou": [ou]}))
    for name, password in SERVICE_ACCOUNTS.items():
        entries.append(
            (
                f"cn={name},ou=Services,{suffix}",
                {
                    "objectClass": ["top", "organizationalRole", "simpleSecurityObject"],
                    "cn": [name],
                    "userPassword": [password],
                },
            )
        )
    for department in sorted({p.department for p in population.people}):
        entries.append(
            (f"ou={department},{people_dn(suffix)}", {"objectClass": ["top", "organizationalUnit"], "ou": [department]})
        )
    for number, person in enumerate(population.people):
        entries.append((user_dn(person, suffix), {**person_attributes(person, number), "entryUUID": [person.id]}))
    by_id = {g.id: g for g in population.groups}
    for number, spec in enumerate(population.groups):
        cls = group_class(spec)
        attributes = {"objectClass": ["top", cls], "cn": [spec.name], "entryUUID": [spec.id]}
        attributes["description"] = [spec.description]
        if cls == "posixGroup":
            attributes["gidNumber"] = [str(10001 + number)]
            attributes["memberUid"] = [population.by_id[u].username for u in spec.member_users]
        else:
            attributes[_MEMBER_ATTRIBUTE[cls]] = [user_dn(population.by_id[u], suffix) for u in spec.member_users] + [
                group_dn(by_id[g].name, suffix) for g in spec.member_groups
            ]
        entries.append((group_dn(spec.name, suffix), {k: v for k, v in attributes.items() if v}))
    return entries


def write_ldif(entries: Iterable[tuple[str, Mapping[str, Sequence[str]]]], path: Path) -> None:
    import ldif

    with path.open("w", encoding="utf-8") as out:
        writer = ldif.LDIFWriter(out, cols=100000)
        for dn, attributes in entries:
            writer.unparse(dn, {k: [v.encode() for v in values] for k, values in attributes.items()})


class SlapdSandbox(SandboxServer):
    """A seeded slapd on loopback: `start()` loads the population offline and starts the daemon.

    `url` is `ldap://host:port`; with `tls=True` the server also has a certificate from a
    private CA (`tls.ca_file`), offers StartTLS on `url` and listens for LDAPS on `ldaps_url`.
    """

    def __init__(
        self,
        population: Population | None = None,
        *,
        users: int = 100,
        groups: int = 20,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        ldaps_port: int = 0,
        tls: bool = False,
        suffix: str = DEFAULT_SUFFIX,
        admin_password: str = ADMIN_PASSWORD,
        directory: Path | None = None,
        extra_entries: Sequence[tuple[str, Mapping[str, Sequence[str]]]] = (),
        syncprov: bool = True,
    ) -> None:
        # Not SandboxServer.__init__: there is no ASGI app, slapd is its own process.
        self.population = population or generate_population(users, groups, seed=seed)
        self.host = host
        self.port = port or free_port(host)
        self.suffix = suffix
        self.admin_dn = f"cn=admin,{suffix}"
        self.admin_password = admin_password
        self._owned_dir = directory is None
        self._directory = directory
        self._want_tls = tls
        self.tls: TlsFiles | None = None
        self.ldaps_port = (ldaps_port or free_port(host)) if tls else None
        self.extra_entries = list(extra_entries)
        # Without the syncprov overlay the server offers no syncrepl, like many directories.
        self.syncprov = syncprov
        self._pid: int | None = None
        self._factory = PeopleFactory(self.population.seed + 7919, self.population.domain)
        self._factory.reserve(self.population.people)
        self._numbers = len(self.population.people)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def attach(cls, url: str, *, suffix: str = DEFAULT_SUFFIX, admin_password: str = ADMIN_PASSWORD) -> SlapdSandbox:
        """A handle on a sandbox another process serves at `url`, to change it (not to start or stop it)."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return cls(
            generate_population(0, 0),
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 389,
            suffix=suffix,
            admin_password=admin_password,
        )

    @property
    def directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="accessiq-slapd-"))
        return self._directory

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str | None:
        return f"ldaps://{self.host}:{self.ldaps_port}" if self.ldaps_port else None

    def service_dn(self, name: str = "accessiq") -> str:
        return f"cn={name},ou=Services,{self.suffix}"

    def start(self, timeout: float = 15.0) -> SlapdSandbox:
        slapd, slapadd = _require_tools()
        if self._want_tls and self.tls is None:
            self.tls = make_tls(self.directory / "tls", self.host)
        for sub in ("run", "data"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        config = self.directory / "slapd.conf"
        config.write_text(
            slapd_config(self.directory, self.suffix, self.admin_password, self.tls, syncprov=self.syncprov)
        )
        seed = self.directory / "seed.ldif"
        write_ldif([*seed_entries(self.population, self.suffix), *self.extra_entries], seed)
        _run([slapadd, "-q", "-f", str(config), "-l", str(seed)])
        urls = [f"ldap://{self.host}:{self.port}/"]
        if self.ldaps_port:
            urls.append(f"ldaps://{self.host}:{self.ldaps_port}/")
        _run([slapd, "-f", str(config), "-h", " ".join(urls)])
        pidfile = self.directory / "run" / "slapd.pid"
        deadline = time.monotonic() + timeout
        while True:
            if pidfile.exists() and pidfile.read_text().strip():
                self._pid = int(pidfile.read_text().strip())
                if _listening(self.host, self.port):
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdUnavailableError(f"slapd did not start on {self.url} within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(self._pid, 0)
                    time.sleep(0.02)
            except ProcessLookupError:
                pass
            self._pid = None
        if self._owned_dir and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    # ------------------------------------------------------------------ reading it

    def connect(self, bind_dn: str | None = None, password: str | None = None) -> Any:
        """A python-ldap connection bound as the root DN (or as `bind_dn`)."""
        import ldap

        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.simple_bind_s(bind_dn or self.admin_dn, password if bind_dn else self.admin_password)
        return conn

    def find(self, ref: str, *, groups: bool = False) -> tuple[str, dict[str, list[bytes]]]:
        """The entry a reference names: a DN, an entryUUID, or a uid/mail (users) or cn (groups)."""
        import ldap
        from ldap.filter import escape_filter_chars

        conn = self.connect()
        try:
            if "=" in ref:
                found = conn.search_s(ref, ldap.SCOPE_BASE, "(objectClass=*)", ["*", "entryUUID"])
            else:
                value = escape_filter_chars(ref)
                names = "(cn={0})" if groups else "(|(uid={0})(mail={0}))"
                filt = f"(|(entryUUID={value}){names.format(value)})" if _is_uuid(ref) else names.format(value)
                base = groups_dn(self.suffix) if groups else people_dn(self.suffix)
                found = conn.search_s(base, ldap.SCOPE_SUBTREE, filt, ["*", "entryUUID"])
        except ldap.NO_SUCH_OBJECT:
            found = []
        finally:
            conn.unbind_s()
        if len(found) != 1:
            raise LookupError(f"{'group' if groups else 'user'} {ref!r} matches {len(found)} entries")
        dn, attributes = found[0]
        return dn, attributes

    def entry_uuid(self, ref: str, *, groups: bool = False) -> str:
        return self.find(ref, groups=groups)[1]["entryUUID"][0].decode()

    # ------------------------------------------------------------------ changing it

    def add_user(
        self,
        *,
        given_name: str | None = None,
        surname: str | None = None,
        department: str | None = None,
        attributes: Mapping[str, Sequence[str]] | None = None,
        rdn: str | None = None,
    ) -> dict[str, str]:
        """Create a person (generated attributes, overridden by `attributes`); returns dn, uid, entryUUID."""
        person = self._factory.person(department=department, given_name=given_name, surname=surname, active=True)
        self._numbers += 1
        values = person_attributes(person, self._numbers)
        values.update({k: list(v) for k, v in (attributes or {}).items()})
        parent = f"ou={person.department},{people_dn(self.suffix)}"
        self._ensure_ou(parent, person.department)
        dn = f"{rdn},{parent}" if rdn else user_dn(person, self.suffix)
        self._modify(lambda conn: conn.add_s(dn, _encode(values)))
        return {"dn": dn, "uid": values["uid"][0], "entryUUID": self.entry_uuid(dn)}

    def update_user(self, ref: str, attributes: Mapping[str, Sequence[str] | None]) -> str:
        """Replace attributes of a user (None or [] removes one); returns its DN."""
        import ldap

        dn, _ = self.find(ref)
        changes = [
            (ldap.MOD_REPLACE, name, [v.encode() for v in values] if values else None)
            for name, values in attributes.items()
        ]
        self._modify(lambda conn: conn.modify_s(dn, changes))
        return dn

    def disable_user(self, ref: str) -> str:
        return self.update_user(ref, {"shadowExpire": ["1"]})

    def enable_user(self, ref: str) -> str:
        dn, attributes = self.find(ref)
        if "shadowExpire" in attributes:
            self.update_user(dn, {"shadowExpire": None})
        return dn

    def delete(self, ref: str, *, groups: bool = False) -> str:
        dn, _ = self.find(ref, groups=groups)
        self._modify(lambda conn: conn.delete_s(dn))
        return dn

    def rename(self, ref: str, new_rdn: str, *, groups: bool = False) -> str:
        """Change an entry's RDN (`uid=new.login`, or just the new value); returns the new DN."""
        from ldap.dn import escape_dn_chars, explode_dn, str2dn

        dn, _ = self.find(ref, groups=groups)
        if "=" not in new_rdn:
            new_rdn = f"{str2dn(dn)[0][0][0]}={escape_dn_chars(new_rdn)}"
        self._modify(lambda conn: conn.rename_s(dn, new_rdn, delold=1))
        return ",".join([new_rdn, *explode_dn(dn)[1:]])

    def move(self, ref: str, new_parent: str) -> str:
        """Move a user to another OU (a DN, or a department name under ou=People); returns the new DN."""
        from ldap.dn import escape_dn_chars, explode_dn

        dn, _ = self.find(ref)
        if "=" not in new_parent:
            name = new_parent
            new_parent = f"ou={escape_dn_chars(name)},{people_dn(self.suffix)}"
            self._ensure_ou(new_parent, name)
        rdn = explode_dn(dn)[0]
        self._modify(lambda conn: conn.rename_s(dn, rdn, newsuperior=new_parent, delold=1))
        return f"{rdn},{new_parent}"

    def add_group(
        self, name: str, members: Sequence[str] = (), *, object_class: str = "groupOfNames"
    ) -> dict[str, str]:
        """Create a group of `object_class` with members (user or group references); returns dn and entryUUID."""
        if object_class not in GROUP_CLASSES:
            raise ValueError(f"object class must be one of {', '.join(GROUP_CLASSES)}")
        dn = group_dn(name, self.suffix)
        values: dict[str, list[str]] = {"objectClass": ["top", object_class], "cn": [name]}
        if object_class == "posixGroup":
            values["gidNumber"] = [str(30000 + self._numbers)]
            self._numbers += 1
        member_values = self._member_values(object_class, members)
        if member_values:
            values[_MEMBER_ATTRIBUTE[object_class]] = member_values
        elif object_class != "posixGroup":
            raise ValueError(f"a {object_class} needs at least one member")
        self._modify(lambda conn: conn.add_s(dn, _encode(values)))
        return {"dn": dn, "entryUUID": self.entry_uuid(dn)}

    def change_members(self, group: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> str:
        """Add and remove direct members (user or group references) of a group; returns its DN."""
        import ldap

        dn, attributes = self.find(group, groups=True)
        classes = {c.decode() for c in attributes.get("objectClass", [])}
        cls = next(c for c in GROUP_CLASSES if c in classes)
        attribute = _MEMBER_ATTRIBUTE[cls]
        changes = []
        if add:
            changes.append((ldap.MOD_ADD, attribute, [v.encode() for v in self._member_values(cls, add)]))
        if remove:
            changes.append((ldap.MOD_DELETE, attribute, [v.encode() for v in self._member_values(cls, remove)]))
        if changes:
            self._modify(lambda conn: conn.modify_s(dn, changes))
        return dn

    def info(self) -> dict[str, Any]:
        import ldap

        conn = self.connect()
        try:
            users = conn.search_s(people_dn(self.suffix), ldap.SCOPE_SUBTREE, "(objectClass=inetOrgPerson)", ["1.1"])
            found = conn.search_s(groups_dn(self.suffix), ldap.SCOPE_ONELEVEL, "(objectClass=*)", ["1.1"])
        finally:
            conn.unbind_s()
        return {
            "url": self.url,
            "ldaps_url": self.ldaps_url,
            "base_dn": self.suffix,
            "admin_dn": self.admin_dn,
            "bind_dn": self.service_dn(),
            "bind_password": SERVICE_ACCOUNTS["accessiq"],
            "ca_file": str(self.tls.ca_file) if self.tls else None,
            "users": len(users),
            "groups": len(found),
        }

    # ------------------------------------------------------------------ parts

    def _member_values(self, cls: str, refs: Sequence[str]) -> list[str]:
        values = []
        for ref in refs:
            try:
                dn, attributes = self.find(ref)
            except LookupError:
                dn, attributes = self.find(ref, groups=True)
            values.append(attributes["uid"][0].decode() if cls == "posixGroup" else dn)
        return values

    def _ensure_ou(self, dn: str, name: str) -> None:
        import ldap

        with contextlib.suppress(ldap.ALREADY_EXISTS):
            self._modify(
                lambda conn: conn.add_s(dn, _encode({"objectClass": ["top", "organizationalUnit"], "ou": [name]}))
            )

    def _modify(self, operation: Any) -> None:
        conn = self.connect()
        try:
            operation(conn)
        finally:
            conn.unbind_s()


def _encode(values: Mapping[str, Sequence[str]]) -> list[tuple[str, list[bytes]]]:
    return [(name, [v.encode() for v in vals]) for name, vals in values.items()]


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SlapdUnavailableError(
            f"{Path(command[0]).name} failed: {(result.stderr or result.stdout).strip()[-800:]}"
        )


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
