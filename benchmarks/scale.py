"""The performance targets at 100,000 users: every figure beside its limit, on SQLite and PostgreSQL.

    python benchmarks/scale.py [--users 100000] [--backends sqlite,postgresql] [--json FILE]
                               [--no-entra] [--no-ldap] [--no-peers]

Data: `--users` users, 2 % as many groups, 3-7 memberships per user (about 5), some nesting.
Each sync runs as `accessiq sync` in a process of its own, whose wall time and peak RSS are
reported, beside the run's own time ("in run": from its start to its end as the run records
them, which is what a worker or `accessiq serve` spends, without starting a process):

- file snapshot: first sync, unchanged re-sync, re-sync after 1 % of the users changed;
- the Entra ID Graph sandbox (same number of users): first sync, incremental run after 10 changes;
- a private slapd (same number of users and groups; the sandbox's own memberships, about 2.4 direct
  ones per user): first sync, unchanged re-sync, re-sync after 1 % of the users changed,
  incremental run after 10 changes;
- on PostgreSQL, the peers ldap2pg and pgldapsync against the same slapd, each a first run and an
  unchanged re-run, when installed (`pip install ldap2pg pgldapsync`; not dependencies of ours).

While the first sync runs, a reader asks the store for the runs list (the query behind
`accessiq runs list` and `GET /api/v1/runs`) every 0.2 s; the slowest answer is reported.

The limit of a run is what no implementation can avoid: for the file snapshot, parsing it and
bulk-inserting its users, groups and memberships into empty tables (executemany on SQLite,
COPY on PostgreSQL); for Entra and LDAP, reading everything through the connector. Prints one table
with each figure's ratio to its limit and target; `--json` writes the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import file_sync  # the snapshot generator of the 10,000-user benchmark beside this one
import ldap_sync  # the directory document and ten changes of the LDAP benchmark beside this one
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from accessiq.config import Settings
from accessiq.connectors.base import Connector
from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.connectors.ldap import LdapConnector
from accessiq.connectors.ldap_settings import LdapConnection
from accessiq.logs import configure_logging
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
from accessiq.sandbox.ldap import SERVICE_ACCOUNTS, SlapdSandbox
from accessiq.sandbox.people import generate_population
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, open_store
from accessiq.store.tables import Organization
from accessiq.sync.document import validate_document

POSTGRES = os.environ.get("ACCESSIQ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TARGETS = {  # seconds (the targets for 100,000 users)
    "first sync": 10.0,
    "unchanged re-sync": 1.5,
    "re-sync after 1% changed": 2.0,
    "Entra first sync": 15.0,
    "Entra incremental, 10 changes": 1.0,
    "slowest reader during first sync": 0.5,
}
RSS_TARGET_MB = 500


@dataclass
class Figure:
    backend: str
    run: str
    seconds: float
    limit: float | None
    peak_rss_mb: float | None
    status: str
    changes: int | None
    # The run's own time, from its start to its end as the run records them: what a worker or
    # `accessiq serve` spends, without starting a process and importing the product.
    in_run: float | None = None


def generate(users: int) -> dict[str, Any]:
    """The benchmark's data: 2 % as many groups as users, 3-7 memberships per user."""
    return file_sync.generate(users, max(1, users // 50), per_user=(3, 7))


# -- the limit --------------------------------------------------------------------------------


def bulk_insert_limit(path: Path, database_url: str) -> float:
    """Seconds to parse the snapshot and bulk-insert its rows into the (empty) tables of `database_url`."""
    started = time.perf_counter()
    data = json.loads(path.read_text())
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    user_ids = {u["id"]: n for n, u in enumerate(data["users"], 1)}
    group_ids = {g["id"]: n for n, g in enumerate(data["groups"], 1)}
    users = [
        (n, u["email"], u["email"].lower(), u["username"], u["given_name"], u["family_name"], u["display_name"],
         "active", json.dumps({"department": u["department"]}), u["id"], now, now)
        for n, u in enumerate(data["users"], 1)
    ]  # fmt: skip
    groups = [(n, g["id"], g["name"], now) for n, g in enumerate(data["groups"], 1)]
    members = [(group_ids[g["id"]], user_ids[m]) for g in data["groups"] for m in g["members"] if m in user_ids]
    user_columns = ("id", "email", "email_key", "username", "given_name", "family_name", "display_name",
                    "status", "attributes", "external_id", "created_at", "updated_at")  # fmt: skip
    if database_url.startswith("postgresql"):
        import psycopg

        url = database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as pg, pg.cursor() as cursor:
            for table, columns, rows in (
                ("users", user_columns, users),
                ("groups", ("id", "external_id", "name", "created_at"), groups),
                ("group_memberships", ("group_id", "user_id"), members),
            ):
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    else:
        import sqlite3

        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("PRAGMA synchronous=NORMAL")
        with lite:
            lite.executemany(
                f"INSERT INTO users ({', '.join(user_columns)}) VALUES ({', '.join('?' * len(user_columns))})", users
            )
            lite.executemany("INSERT INTO groups (id, external_id, name, created_at) VALUES (?, ?, ?, ?)", groups)
            lite.executemany("INSERT INTO group_memberships (group_id, user_id) VALUES (?, ?)", members)
        lite.close()
    return time.perf_counter() - started


def entra_download_limit(sandbox: EntraSandbox, server: SandboxServer) -> float:
    """Seconds to read every page of the tenant through the connector, storing nothing."""
    connection = EntraConnection(
        tenant_id=sandbox.tenant_id,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        authority_url=server.url,
        graph_url=server.url,
    )
    return read_limit(EntraConnector(connection, fields=("department",)))


def ldap_read_limit(sandbox: SlapdSandbox) -> float:
    """Seconds to read every user and group of the slapd through the connector, storing nothing."""
    connection = LdapConnection(
        url=sandbox.url,
        bind_dn=sandbox.service_dn(),
        bind_password=SERVICE_ACCOUNTS["accessiq"],
        base_dn=sandbox.suffix,
    )
    return read_limit(LdapConnector(connection, fields=("departmentNumber", "title")))


def read_limit(connector: Connector) -> float:
    """Seconds to read everything through `connector` (a full read), storing nothing."""
    started = time.perf_counter()
    try:
        for _ in connector.read(None):
            pass
    finally:
        connector.close()
    return time.perf_counter() - started


# -- runs -------------------------------------------------------------------------------------


class Bench:
    """One backend: a store, the environment of its `accessiq` processes, and the figures so far."""

    def __init__(self, backend: str, base: Path, database_url: str | None) -> None:
        self.backend = backend
        self.base = base
        key = Fernet.generate_key().decode()
        self.store = open_store(Settings(data_dir=base, database_url=database_url, secret_key=key))
        self.database_url = self.store.engine.url.render_as_string(hide_password=False)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSIQ_")} | {
            "ACCESSIQ_DATA_DIR": str(base),
            "ACCESSIQ_DATABASE_URL": self.database_url,
            "ACCESSIQ_SECRET_KEY": key,
        }
        self.figures: list[Figure] = []

    def connect(self, document: dict[str, Any]) -> int:
        with self.store.transaction() as session:
            for slug in ("acme", "eng"):
                if session.scalar(select(Organization.id).where(Organization.slug == slug)) is None:
                    identity.create_organization(session, slug)
            directory, _ = dirs.apply_document(
                session, self.store.secrets, validate_document(document), policy=InputPolicy.operator()
            )
            return directory.id

    def sync(self, name: str, label: str, limit: float | None) -> Figure:
        """`accessiq sync NAME` in a process of its own: wall time, peak RSS, the run's status and changes."""
        out = self.base / "sync.json"
        with out.open("wb") as stdout:
            elapsed, rss_mb, _ = run_measured(
                [sys.executable, "-m", "accessiq", "sync", name, "--json"], self.env, stdout
            )
        try:
            run = json.loads(out.read_text())
        except ValueError:
            run = {"status": "no output", "counts": {}}
        counts = run.get("counts") or {}
        changes = sum(v for k, v in counts.items() if k.endswith(("_created", "_updated", "_deactivated",
                                                                    "_reactivated", "_deleted", "_added",
                                                                    "_removed", "_granted", "_revoked")))  # fmt: skip
        in_run = None
        if run.get("started_at") and run.get("finished_at"):
            in_run = (
                datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
            ).total_seconds()
        return self.record(Figure(self.backend, label, elapsed, limit, rss_mb, run["status"], changes, in_run))

    def record(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(_row(figure), flush=True)
        return figure

    @contextmanager
    def reader(self, label: str) -> Iterator[None]:
        """Ask for the runs list every 0.2 s while the block runs; record the slowest answer."""
        stop = threading.Event()
        slowest = [0.0]

        def ask() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                with self.store.read() as session:
                    runs.list_runs(session, None, 50)
                slowest[0] = max(slowest[0], time.perf_counter() - started)
                stop.wait(0.2)

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.record(Figure(self.backend, label, slowest[0], None, None, "answered", None))


# A process this one starts begins with this one's peak RSS as its own (Linux carries the peak of
# the address space it was forked from across exec), which would hide any figure below what the
# benchmark itself holds. So a small Python process starts the command and reports its figures.
_MEASURE = (
    "import os, sys, time; started = time.perf_counter(); "
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ); _, status, usage = os.wait4(pid, 0); "
    "open(sys.argv[1], 'w').write(f'{time.perf_counter() - started} {usage.ru_maxrss}'); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def run_measured(
    command: list[str], env: dict[str, str], stdout: Any, stderr: Any = subprocess.DEVNULL
) -> tuple[float, float, int]:
    """Run `command` in a process of its own to its end: wall seconds, peak RSS in MB, exit code."""
    with tempfile.NamedTemporaryFile("r") as report:
        measure = [sys.executable, "-I", "-S", "-c", _MEASURE, report.name, *command]
        code = subprocess.run(measure, env=env, stdout=stdout, stderr=stderr, check=False).returncode
        seconds, rss_kb = report.read().split()
    return float(seconds), int(rss_kb) / 1024, code


def _row(f: Figure) -> str:
    target = TARGETS.get(f.run)
    ratio = f"{f.seconds / f.limit:5.1f}x" if f.limit else "    -"
    verdict = "" if target is None else ("ok" if f.seconds <= target else "MISSED")
    rss = f"{f.peak_rss_mb:7.0f}" if f.peak_rss_mb is not None else "      -"
    rss_verdict = "" if f.peak_rss_mb is None else (" ok" if f.peak_rss_mb <= RSS_TARGET_MB else " OVER")
    limit = f"{f.limit:7.2f}" if f.limit else "      -"
    target_text = f"{target:5.1f}" if target is not None else "    -"
    changes = f"{f.changes:>8}" if f.changes is not None else "       -"
    in_run = f"{f.in_run:6.2f}" if f.in_run is not None else "     -"
    return (
        f"| {f.backend:<10} | {f.run:<34} | {f.seconds:8.2f} | {in_run} | {limit} | {ratio} "
        f"| {target_text} {verdict:<6} | {rss}{rss_verdict:<5} | {f.status:<21} | {changes} |"
    )


HEADER = (
    "| backend    | run                                | time (s) | in run | limit s | xlimit| target       "
    "| peak RSS MB  | status                | changes  |\n"
    "|------------|------------------------------------|----------|--------|---------|-------|--------------"
    "|--------------|-----------------------|----------|"
)


def file_runs(bench: Bench, users: int) -> None:
    path = bench.base / "snapshot.json"
    data = generate(users)
    path.write_text(json.dumps(data))
    limit = _limit_in_fresh_store(bench, path)
    bench.connect(
        {
            "name": "Bench",
            "provider": "file",
            "connection": {"path": str(path)},
            "settings": {
                "default_organization": "acme",
                "attribute_mapping": {"department": "department"},
                "safety": {"max_deactivations": users, "max_deactivation_percent": 100},
            },
            "group_mappings": [{"source_group": "Group 0", "organization": "eng", "role": "admin"}],
        }
    )
    with bench.reader("slowest reader during first sync"):
        bench.sync("Bench", "first sync", limit)
    bench.sync("Bench", "unchanged re-sync", None)
    for record in data["users"][: max(1, users // 100)]:
        record["department"] = "Changed"
    path.write_text(json.dumps(data))
    bench.sync("Bench", "re-sync after 1% changed", None)


def _limit_in_fresh_store(bench: Bench, path: Path) -> float:
    """The bulk-insert limit, measured in a fresh database of the same backend and schema."""
    with tempfile.TemporaryDirectory() as scratch:
        if bench.backend == "sqlite":
            fresh = open_store(Settings(data_dir=Path(scratch), secret_key=Fernet.generate_key().decode()))
        else:
            fresh = _fresh_postgres("accessiq_bench_limit")
        url = fresh.engine.url.render_as_string(hide_password=False)
        fresh.dispose()
        return bulk_insert_limit(path, url)


def entra_runs(bench: Bench, users: int) -> None:
    sandbox = EntraSandbox(users, max(1, users // 50), seed=1)
    with SandboxServer(create_app(sandbox)) as server:
        limit = entra_download_limit(sandbox, server)
        bench.connect(
            {
                "name": "Contoso",
                "provider": "entra",
                "connection": {
                    "tenant_id": sandbox.tenant_id,
                    "client_id": sandbox.client_id,
                    "client_secret": sandbox.client_secret,
                    "authority_url": server.url,
                    "graph_url": server.url,
                },
                "settings": {"default_organization": "acme", "attribute_mapping": {"department": "department"}},
            }
        )
        bench.sync("Contoso", "Entra first sync", limit)
        enabled = sorted(u for u, p in sandbox.snapshot()["users"].items() if p["accountEnabled"])
        for uid in enabled[:6]:
            sandbox.update_user(uid, {"department": "Benchmarking"})
        for uid in enabled[6:9]:
            sandbox.delete_user(uid)
        sandbox.add_user({"displayName": "New Hire"})
        bench.sync("Contoso", "Entra incremental, 10 changes", None)


def ldap_runs(bench: Bench, users: int, *, peers: bool = True) -> None:
    # Seeding (generating the people, writing the LDIF, slapadd) takes about 20 s at 100,000 users.
    # About 2 % of the sandbox's people have no mail on purpose: their records are rejected, so the
    # runs succeed with errors. A mail domain of its own: the Entra sandbox draws the same people,
    # and their addresses, already in the store, are never taken over by another directory.
    population = generate_population(users, max(1, users // 50), seed=1, domain="fabrikam.example")
    with SlapdSandbox(population) as sandbox:
        limit = ldap_read_limit(sandbox)
        bench.connect(ldap_sync.directory_document(sandbox, "Contoso LDAP", "acme"))
        bench.sync("Contoso LDAP", "LDAP first sync", limit)
        bench.sync("Contoso LDAP", "LDAP unchanged re-sync", None)
        if peers and bench.backend == "postgresql":
            peer_runs(bench, sandbox)  # before the changes below: the data of the first sync
        people = [p for p in sandbox.population.people if p.active and p.email]
        for person in people[: max(1, users // 100)]:
            sandbox.update_user(person.username, {"title": ["Changed"]})
        bench.sync("Contoso LDAP", "LDAP re-sync after 1% changed", None)
        ldap_sync.make_ten_changes(sandbox)
        bench.sync("Contoso LDAP", "LDAP incremental, 10 changes", None)


# -- peers ------------------------------------------------------------------------------------
# Neither peer pages its searches: bound as the service account, slapd's 500-entry soft size limit
# stops ldap2pg with "Size limit exceeded" and makes pgldapsync create 500 roles without a word.
# They bind as the root DN, which the limit does not apply to. PostgreSQL roles belong to the
# cluster, which may be shared, not to the database: every role a peer creates is marked (ldap2pg
# comments it, pgldapsync grants it PEER_MARK), the peers touch no other role, and the marked roles
# are dropped after the peer's runs. A peer's "changes" are the roles it made.
PEER_MARK = "accessiq_bench_peer"
PEER_ROLES = (
    f"SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = '{PEER_MARK}' OR oid IN "
    f"(SELECT member FROM pg_auth_members WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = '{PEER_MARK}'))"
)


def _ldap2pg_config(sandbox: SlapdSandbox, url: str) -> str:
    """Users as login roles, groupOfNames groups as group roles with their user members (ldap2pg 5 YAML).

    Marked by comment, not by a parent role: ldap2pg resolves memberships with list scans, so one
    parent of every role would make its runs quadratic.
    """
    config = {
        "ldap": {"uri": sandbox.url, "binddn": sandbox.admin_dn, "password": sandbox.admin_password},
        "postgres": {
            "dsn": url,
            "databases_query": [url.rsplit("/", 1)[1]],
            "managed_roles_query": PEER_ROLES,
        },
        "sync_map": [
            {
                "ldapsearch": {"base": f"ou=People,{sandbox.suffix}", "filter": "(objectClass=inetOrgPerson)"},
                "role": {"name": "{uid}", "options": "LOGIN", "comment": PEER_MARK},
            },
            {
                "ldapsearch": {
                    "base": f"ou=Groups,{sandbox.suffix}",
                    "filter": "(objectClass=groupOfNames)",
                    "on_unexpected_dn": "ignore",  # nested groups: member DNs with no uid
                },
                "role": {"name": "{cn}", "options": "NOLOGIN", "members": "{member.uid}", "comment": PEER_MARK},
            },
        ],
    }
    return json.dumps(config)  # YAML reads JSON


def _pgldapsync_config(sandbox: SlapdSandbox, url: str) -> str:
    """Users as login roles (pgldapsync has no groups), never dropping a role it did not make.

    pgldapsync 1.0.0 grants the role "" when either list of roles to grant is empty: both name PEER_MARK.
    """
    return f"""[ldap]
server_uri = {sandbox.url}
bind_username = {sandbox.admin_dn}
bind_password = {sandbox.admin_password}
search_scope = SUBTREE
base_dn = ou=People,{sandbox.suffix}
filter_string = (objectClass=inetOrgPerson)
username_attribute = uid

[postgres]
server_connstr = {url}

[general]
remove_login_roles_from_postgres = false
roles_to_grant = {PEER_MARK}
roles_to_grant_with_admin = {PEER_MARK}
"""


PEERS: dict[str, tuple[Callable[[SlapdSandbox, str], str], list[str]]] = {
    # name: (its configuration, the arguments before the configuration file's path)
    "ldap2pg": (_ldap2pg_config, ["--real", "--config"]),
    "pgldapsync": (_pgldapsync_config, []),
}


def peer_runs(bench: Bench, sandbox: SlapdSandbox) -> None:
    """Each installed peer into a fresh database: a first run and an unchanged re-run, wall time and peak RSS."""
    for peer, (make_config, arguments) in PEERS.items():
        executable = shutil.which(peer)
        if executable is None:
            continue
        fresh = _fresh_postgres("accessiq_bench_peer")
        url = fresh.engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
        fresh.dispose()
        config = bench.base / f"{peer}.conf"
        config.touch(mode=0o600)  # ldap2pg refuses a password in a file others may read
        config.write_text(make_config(sandbox, url))
        log = bench.base / f"{peer}.log"
        _drop_peer_roles(url)  # left behind by an interrupted run
        _sql(url, f'CREATE ROLE "{PEER_MARK}" NOLOGIN')  # the role pgldapsync grants
        try:
            for label in ("first sync", "unchanged re-run"):
                before = _peer_roles(url)
                with log.open("wb") as out:
                    elapsed, rss_mb, code = run_measured([executable, *arguments, str(config)], bench.env, out, out)
                status = _peer_status(code, log.read_text(errors="replace"))
                bench.record(
                    Figure(
                        bench.backend, f"peer {peer} {label}", elapsed, None, rss_mb, status, _peer_roles(url) - before
                    )
                )
                if status != "succeeded":
                    print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
        finally:
            _drop_peer_roles(url)


def _peer_status(code: int, log: str) -> str:
    # pgldapsync exits 0 when roles failed: it makes them all in one transaction, a savepoint and a
    # GRANT each, and PostgreSQL's lock table (max_locks_per_transaction 64) runs out after about
    # 12,600 ("out of shared memory"); it says so only in its summary.
    failed = re.search(r"Errors adding login roles:\s*(\d+)", log)
    if code == 0 and failed and int(failed[1]):
        return f"{failed[1]} roles failed"
    return "succeeded" if code == 0 else f"exit {code}"


def _peer_roles(url: str) -> int:
    return len(_sql(url, PEER_ROLES))


def _drop_peer_roles(url: str) -> None:
    names = [name for (name,) in _sql(url, PEER_ROLES)]
    for start in range(0, len(names), 1000):
        _sql(url, "DROP ROLE " + ", ".join(f'"{n}"' for n in names[start : start + 1000]))
    _sql(url, f'DROP ROLE IF EXISTS "{PEER_MARK}"')


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg, pg.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _fresh_postgres(name: str) -> Store:
    admin = open_store(Settings(database_url=POSTGRES, secret_key=Fernet.generate_key().decode()), migrate=False)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    return open_store(Settings(database_url=url, secret_key=Fernet.generate_key().decode()))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--no-entra", action="store_true", help="leave out the Entra ID runs")
    parser.add_argument("--no-ldap", action="store_true", help="leave out the slapd runs (and the peers)")
    parser.add_argument("--no-peers", action="store_true", help="leave out ldap2pg and pgldapsync")
    args = parser.parse_args()
    configure_logging("warning")

    print(f"{args.users:,} users, {args.users // 50:,} groups, ~{args.users * 5:,} memberships; {os.cpu_count()} cores")
    print(HEADER)
    figures: list[Figure] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as base:
            url = None
            if backend == "postgresql":
                url = _fresh_postgres("accessiq_bench").engine.url.render_as_string(hide_password=False)
            bench = Bench(backend, Path(base), url)
            runners: list[Callable[[Bench, int], None]] = [file_runs]
            if not args.no_entra:
                runners.append(entra_runs)
            if not args.no_ldap:
                runners.append(functools.partial(ldap_runs, peers=not args.no_peers))
            for runner in runners:
                runner(bench, args.users)
            bench.store.dispose()
            figures += bench.figures
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    unfinished = [
        (f.backend, f.run, f.status)
        for f in figures
        if f.status not in ("succeeded", "succeeded_with_errors", "answered")
    ]
    # A peer that cannot do the job here is a finding of the comparison, not a failure of ours.
    if peers := [u for u in unfinished if u[1].startswith("peer ")]:
        print(f"NOTE: peer runs that did not finish: {peers}", file=sys.stderr)
    if failed := [u for u in unfinished if not u[1].startswith("peer ")]:
        print(f"FAIL: runs that did not succeed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
