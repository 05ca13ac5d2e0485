"""`accessiq sandbox ldap`: serve a seeded private slapd, and change a running one over LDAP.

Imports without python-ldap and without slapd: both are needed only when a command runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Annotated, Any

import typer

from accessiq.sandbox import DemoSandbox, SandboxSpec

ldap_app = typer.Typer(
    help="OpenLDAP sandbox: a real slapd with the syncprov overlay. Without a subcommand it serves one; the "
    "subcommands change a running one (users, renames, moves, groups, memberships) with LDAP operations.",
)

DEFAULT_PORT = 3389
DEFAULT_URL = os.environ.get("ACCESSIQ_SANDBOX_LDAP_URL", f"ldap://127.0.0.1:{DEFAULT_PORT}")

UrlOption = Annotated[
    str, typer.Option("--url", help="ldap:// URL of the running sandbox (env ACCESSIQ_SANDBOX_LDAP_URL).")
]
SuffixOption = Annotated[str, typer.Option("--base-dn", help="The sandbox's suffix.")]
PasswordOption = Annotated[str, typer.Option("--admin-password", help="The sandbox root DN's password.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _defaults() -> tuple[str, str]:
    from accessiq.sandbox.ldap import ADMIN_PASSWORD, DEFAULT_SUFFIX

    return DEFAULT_SUFFIX, ADMIN_PASSWORD


def document(info: dict[str, Any], name: str = "LDAP sandbox") -> dict[str, Any]:
    """A directory document that reads the sandbox as its read-only service account."""
    connection: dict[str, Any] = {
        "url": info["url"],
        "bind_dn": info["bind_dn"],
        "bind_password": info["bind_password"],
        "base_dn": info["base_dn"],
    }
    if info.get("ca_file"):
        connection.update(start_tls=True, ca_file=info["ca_file"])
    return {"name": name, "provider": "ldap", "connection": connection}


@ldap_app.callback(invoke_without_command=True)
def ldap(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Number of generated users.", min=0)] = 200,
    groups: Annotated[int, typer.Option(help="Number of generated groups (nested).", min=0)] = 30,
    port: Annotated[int, typer.Option(help="Port to listen on (ldap://).")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; keep it loopback.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same people and groups.")] = 0,
    tls: Annotated[
        bool, typer.Option(help="Also serve StartTLS and ldaps:// with a certificate from a new CA.")
    ] = False,
    serve_seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).", hidden=True)
    ] = None,
) -> None:
    """Start a seeded slapd and print what a directory document needs to read it."""
    if ctx.invoked_subcommand is not None:
        return
    from accessiq.sandbox.ldap import SlapdSandbox, SlapdUnavailableError

    try:
        sandbox = SlapdSandbox(users=users, groups=groups, seed=seed, host=host, port=port, tls=tls).start()
    except SlapdUnavailableError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(6) from None
    try:
        # `kill PID` stops slapd too, as Ctrl-C does: it is a process of its own and outlives us otherwise.
        signal.signal(signal.SIGTERM, _interrupt)
        info = sandbox.info()
        doc = document(info)
        # Plain echo: the URL and the YAML must not wrap, so they can be copied.
        typer.echo(
            "\n".join(
                [
                    f"LDAP sandbox (slapd) on {sandbox.url}: {info['users']} users, {info['groups']} groups, "
                    f"seed {seed}",
                    *(
                        [f"  ldaps            {sandbox.ldaps_url}", f"  CA file          {info['ca_file']}"]
                        if tls
                        else []
                    ),
                    f"  base DN          {info['base_dn']}",
                    f"  bind DN          {info['bind_dn']}  (password {info['bind_password']})",
                    f"  root DN          {info['admin_dn']}  (password {sandbox.admin_password})",
                    "",
                    "Directory document:",
                    "",
                    f"name: {doc['name']}",
                    "provider: ldap",
                    "connection:",
                    *(f"  {key}: {json.dumps(value)}" for key, value in doc["connection"].items()),
                    "",
                    "Apply it with `accessiq directories apply`; to connect it through the web UI or the API, "
                    f"serve with ACCESSIQ_ALLOWED_ENDPOINTS={sandbox.url}.",
                    f"Change it while a sync runs: accessiq sandbox ldap --help (--url {sandbox.url}).",
                ]
            )
        )
        deadline = None if serve_seconds is None else time.monotonic() + serve_seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _attach(url: str, base_dn: str | None, admin_password: str | None) -> Any:
    from accessiq.sandbox.ldap import SlapdSandbox

    suffix, password = _defaults()
    return SlapdSandbox.attach(url, suffix=base_dn or suffix, admin_password=admin_password or password)


def _do(url: str, base_dn: str | None, admin_password: str | None, action: Any) -> Any:
    """Run one change against a running sandbox; exit with its message on an error."""
    try:
        import ldap
    except ImportError:
        typer.echo("python-ldap is not installed: pip install 'accessiq[ldap]'", err=True)
        raise typer.Exit(6) from None
    try:
        return action(_attach(url, base_dn, admin_password))
    except LookupError as exc:
        typer.echo(str(exc).strip("'\""), err=True)
        raise typer.Exit(3) from None
    except ldap.SERVER_DOWN:
        typer.echo(f"no sandbox answers at {url}; start one with `accessiq sandbox ldap`", err=True)
        raise typer.Exit(6) from None
    except (ldap.LDAPError, ValueError) as exc:
        detail = exc.args[0] if exc.args else exc
        message = detail.get("info") or detail.get("desc") if isinstance(detail, dict) else detail
        typer.echo(f"the sandbox refused: {message}", err=True)
        raise typer.Exit(2) from None


def _show(data: Any, as_json: bool, summary: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else summary)


def _attributes(pairs: list[str] | None) -> dict[str, list[str] | None]:
    values: dict[str, list[str] | None] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        values.setdefault(name.strip(), [])
        if raw:
            values[name.strip()].append(raw)  # type: ignore[union-attr]
    return {k: v or None for k, v in values.items()}


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="An LDAP attribute as NAME=VALUE; repeat a name for several values, NAME= removes."),
]
UserArgument = Annotated[str, typer.Argument(help="A user's uid, mail, entryUUID or DN.")]
GroupArgument = Annotated[str, typer.Argument(help="A group's cn, entryUUID or DN.")]


@ldap_app.command("info")
def info(
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
    as_json: JsonOption = False,
) -> None:
    """Show a running sandbox's base DN, bind account and sizes, and a directory document for it."""
    data = _do(url, base_dn, admin_password, lambda s: s.info())
    _show(
        {**data, "document": document(data)},
        as_json,
        f"{data['url']}  base {data['base_dn']}\nbind {data['bind_dn']}  password {data['bind_password']}\n"
        f"{data['users']} users, {data['groups']} groups",
    )


@ldap_app.command("add-user")
def add_user(
    given_name: Annotated[str | None, typer.Option(help="givenName")] = None,
    surname: Annotated[str | None, typer.Option(help="sn")] = None,
    department: Annotated[str | None, typer.Option(help="Department: the OU under ou=People.")] = None,
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
    as_json: JsonOption = False,
) -> None:
    """Create a person (generated attributes, overridden by the options)."""
    extra = {k: v for k, v in _attributes(set_).items() if v}
    data = _do(
        url,
        base_dn,
        admin_password,
        lambda s: s.add_user(given_name=given_name, surname=surname, department=department, attributes=extra),
    )
    _show(data, as_json, f"created {data['dn']} ({data['entryUUID']})")


@ldap_app.command("update-user")
def update_user(
    user: UserArgument,
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
) -> None:
    """Replace attributes of a user, e.g. --set title=CTO --set mobile=."""
    values = _attributes(set_)
    if not values:
        raise typer.BadParameter("give at least one --set NAME=VALUE", param_hint="--set")
    dn = _do(url, base_dn, admin_password, lambda s: s.update_user(user, values))
    typer.echo(f"updated {dn}: {', '.join(values)}")


@ldap_app.command("disable-user")
def disable_user(
    user: UserArgument, url: UrlOption = DEFAULT_URL, base_dn: SuffixOption = "", admin_password: PasswordOption = ""
) -> None:
    """Disable a user (shadowExpire: 1)."""
    typer.echo(f"disabled {_do(url, base_dn, admin_password, lambda s: s.disable_user(user))}")


@ldap_app.command("enable-user")
def enable_user(
    user: UserArgument, url: UrlOption = DEFAULT_URL, base_dn: SuffixOption = "", admin_password: PasswordOption = ""
) -> None:
    """Enable a disabled user again."""
    typer.echo(f"enabled {_do(url, base_dn, admin_password, lambda s: s.enable_user(user))}")


@ldap_app.command("delete-user")
def delete_user(
    user: UserArgument, url: UrlOption = DEFAULT_URL, base_dn: SuffixOption = "", admin_password: PasswordOption = ""
) -> None:
    """Delete a user entry (the refint overlay takes it out of its groups)."""
    typer.echo(f"deleted {_do(url, base_dn, admin_password, lambda s: s.delete(user))}")


@ldap_app.command("rename")
def rename(
    entry: Annotated[str, typer.Argument(help="A user (uid, mail, entryUUID, DN) or, with --group, a group.")],
    new_rdn: Annotated[str, typer.Argument(help="The new RDN (uid=new.login) or just its value.")],
    group: Annotated[bool, typer.Option("--group", help="ENTRY is a group.")] = False,
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
) -> None:
    """Rename an entry (modrdn): its DN changes, its entryUUID does not."""
    typer.echo(f"renamed to {_do(url, base_dn, admin_password, lambda s: s.rename(entry, new_rdn, groups=group))}")


@ldap_app.command("move")
def move(
    user: UserArgument,
    new_parent: Annotated[str, typer.Argument(help="The new parent DN, or a department name under ou=People.")],
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
) -> None:
    """Move a user to another OU (modrdn with a new superior)."""
    typer.echo(f"moved to {_do(url, base_dn, admin_password, lambda s: s.move(user, new_parent))}")


@ldap_app.command("add-group")
def add_group(
    name: Annotated[str, typer.Argument(help="cn of the new group.")],
    members: Annotated[list[str] | None, typer.Argument(help="Users or groups to put in it.")] = None,
    object_class: Annotated[str, typer.Option(help="groupOfNames | groupOfUniqueNames | posixGroup")] = "groupOfNames",
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
    as_json: JsonOption = False,
) -> None:
    """Create a group under ou=Groups."""
    data = _do(url, base_dn, admin_password, lambda s: s.add_group(name, members or [], object_class=object_class))
    _show(data, as_json, f"created {data['dn']} ({data['entryUUID']})")


@ldap_app.command("delete-group")
def delete_group(
    group: GroupArgument, url: UrlOption = DEFAULT_URL, base_dn: SuffixOption = "", admin_password: PasswordOption = ""
) -> None:
    """Delete a group."""
    typer.echo(f"deleted {_do(url, base_dn, admin_password, lambda s: s.delete(group, groups=True))}")


@ldap_app.command("add-members")
def add_members(
    group: GroupArgument,
    members: Annotated[list[str], typer.Argument(help="Users (uid, mail, entryUUID, DN) or groups (cn, DN).")],
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
) -> None:
    """Add direct members to a group (member, uniqueMember or memberUid, as its class has it)."""
    typer.echo(
        f"added {len(members)} to {_do(url, base_dn, admin_password, lambda s: s.change_members(group, add=members))}"
    )


@ldap_app.command("remove-members")
def remove_members(
    group: GroupArgument,
    members: Annotated[list[str], typer.Argument(help="Users or groups to take out.")],
    url: UrlOption = DEFAULT_URL,
    base_dn: SuffixOption = "",
    admin_password: PasswordOption = "",
) -> None:
    """Remove direct members from a group."""
    dn = _do(url, base_dn, admin_password, lambda s: s.change_members(group, remove=members))
    typer.echo(f"removed {len(members)} from {dn}")


# Each demo sandbox has people of its own: `serve --demo` connects them all to one store.
DEMO_DOMAIN = "tailspin.example"


def _start_demo() -> DemoSandbox:
    """A 200-person slapd on a loopback port, for `serve --demo`; the same seed gives the same tree."""
    from accessiq.sandbox.ldap import SlapdSandbox
    from accessiq.sandbox.people import generate_population

    sandbox = SlapdSandbox(generate_population(200, 20, seed=0, domain=DEMO_DOMAIN)).start()
    doc = document(sandbox.info(), "Tailspin (LDAP sandbox)")
    doc["settings"] = {
        "frequency": "15m",
        "default_organization": "demo",
        "attribute_mapping": {"department": "departmentNumber", "title": "title"},
    }
    return DemoSandbox(sandbox, doc)


def _demo_possible() -> bool:
    from accessiq.sandbox.ldap import slapd_binary

    return slapd_binary() is not None


SANDBOX = SandboxSpec(commands=ldap_app, start_demo=_start_demo if _demo_possible() else None)
