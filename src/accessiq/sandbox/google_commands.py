"""`accessiq sandbox google`: serve a Google Workspace sandbox, and change a running one through its admin endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from accessiq.sandbox import DemoSandbox, SandboxServer, SandboxSpec
from accessiq.sandbox.admin_client import call_admin, show

google_app = typer.Typer(
    help="Google Workspace / Directory API sandbox. Without a subcommand it serves one and writes the service "
    "account key it accepts; the subcommands change a running one (users, org units, members, faults) through "
    "its /_admin endpoint.",
)

DEFAULT_PORT = 8744
DEFAULT_URL = os.environ.get("ACCESSIQ_GOOGLE_SANDBOX_URL", f"http://127.0.0.1:{DEFAULT_PORT}")
DEFAULT_KEY = Path("google-sandbox-key.json")

UrlOption = Annotated[
    str, typer.Option("--url", help="Base URL of the running sandbox (env ACCESSIQ_GOOGLE_SANDBOX_URL).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the admin endpoint's JSON answer.")]
UserArg = Annotated[str, typer.Argument(help="User id or primary email.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A user field as NAME=VALUE (VALUE is JSON when it parses, else text; "
        "dots nest: name.givenName=Ada); repeatable.",
    ),
]


def document(api_url: str, token_url: str, admin_email: str, key: str, *, name: str) -> dict[str, Any]:
    """A directory document for a sandbox; `key` is the key JSON or a `file:` reference to it."""
    return {
        "name": name,
        "provider": "google",
        "connection": {
            "service_account": key,
            "admin_email": admin_email,
            "customer": "my_customer",
            "api_url": api_url,
            "token_url": token_url,
        },
        "settings": {
            "frequency": "15m",
            "default_organization": "demo",
            "attribute_mapping": {
                "department": "organizations[primary].department",
                "title": "organizations[primary].title",
            },
        },
    }


@google_app.callback(invoke_without_command=True)
def google(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Number of generated users.", min=0)] = 200,
    groups: Annotated[int, typer.Option(help="Number of generated groups (nested).", min=0)] = 30,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; keep it loopback.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same people and groups.")] = 0,
    key_out: Annotated[
        Path, typer.Option(help="Where to write the service account's JSON key the sandbox accepts.")
    ] = DEFAULT_KEY,
) -> None:
    """Serve a Directory API sandbox, write its service account key, and print a directory document."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from accessiq.sandbox.google import GoogleSandbox
    from accessiq.sandbox.google_app import create_app

    sandbox = GoogleSandbox(users, groups, seed=seed)
    url = f"http://{host}:{port}"
    key_path = key_out.resolve()
    key_path.write_text(json.dumps(sandbox.service_account_key(f"{url}/token"), indent=2), encoding="utf-8")
    key_path.chmod(0o600)
    snapshot = sandbox.snapshot()
    doc = document(url, f"{url}/token", sandbox.admin_email, f"file:{key_path}", name="Google sandbox")
    connection, settings = doc["connection"], doc["settings"]
    # Plain echo: long URLs and the YAML must not wrap, so they can be copied.
    typer.echo(
        "\n".join(
            [
                f"Google Workspace sandbox on {url}: {len(snapshot['users'])} users, {len(snapshot['groups'])} groups, "
                f"{len(sandbox.org_units)} org units, customer {sandbox.customer_id}, seed {seed}",
                f"  token endpoint   {url}/token",
                f"  Directory API    {url}/admin/directory/v1/users, /groups, /groups/{{key}}/members",
                f"  admin            {url}/_admin/info  (API docs: {url}/_admin/docs)",
                f"  service account  {sandbox.client_email} (client ID {sandbox.client_id})",
                f"  key file         {key_path}",
                f"  admin email      {sandbox.admin_email}",
                f"  org units        {', '.join(sorted(sandbox.org_units)[:8])}, ...",
                "",
                "Directory document:",
                "",
                f"name: {doc['name']}",
                "provider: google",
                "connection:",
                *[f"  {k}: {v}" for k, v in connection.items()],
                "settings:",
                f"  default_organization: {settings['default_organization']}",
                "  attribute_mapping:",
                *[f"    {k}: '{v}'" for k, v in settings["attribute_mapping"].items()],
                "  user_filter: {org_units: []}   # e.g. ['/Sales'] (sub-units included)",
                "",
                "Apply it with `accessiq directories apply`; to connect it through the web UI or the API, serve with "
                f"ACCESSIQ_ALLOWED_ENDPOINTS={url} and paste the key file's content.",
                f"Change it while a sync runs: accessiq sandbox google --help (admin URL {url}).",
            ]
        )
    )
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="warning")


def _admin(method: str, url: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
    return call_admin("google", method, url, path, body, params)


def _fields(pairs: list[str] | None) -> dict[str, Any]:
    """`--set a.b=1` pairs as a nested object."""
    fields: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = name.strip().split(".")
        target = fields
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return fields


def _ref(ref: str) -> str:
    return quote(ref, safe="")


@google_app.command("info")
def info(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show the customer, service account, admin and sizes of a running sandbox."""
    data = _admin("GET", url, "/info")
    show(
        data,
        as_json,
        f"customer {data['customer_id']}  domain {data['domain']}  admin {data['admin_email']}\n"
        f"service account {data['client_email']} (client ID {data['client_id']})\n"
        f"{data['users']} users ({data['suspended_or_archived']} suspended or archived), {data['groups']} groups, "
        f"{len(data['org_units'])} org units",
    )


@google_app.command("key")
def key(
    out: Annotated[Path, typer.Argument(help="File to write the service account's JSON key to.")] = DEFAULT_KEY,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Write the JSON key of a running sandbox's service account."""
    out.write_text(json.dumps(_admin("GET", url, "/key"), indent=2), encoding="utf-8")
    out.chmod(0o600)
    typer.echo(f"wrote {out.resolve()}")


@google_app.command("add-user")
def add_user(
    given_name: Annotated[str | None, typer.Option(help="name.givenName")] = None,
    family_name: Annotated[str | None, typer.Option(help="name.familyName")] = None,
    org_unit: Annotated[str | None, typer.Option(help="orgUnitPath, e.g. /Sales/EMEA Sales.")] = None,
    department: Annotated[str | None, typer.Option(help="One of the generated departments.")] = None,
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create a user (generated fields, overridden by the options)."""
    fields = _fields(set_)
    name = {k: v for k, v in (("givenName", given_name), ("familyName", family_name)) if v}
    if name:
        name["fullName"] = " ".join(p for p in (given_name, family_name) if p)
        fields.setdefault("name", {}).update(name)
    data = _admin("POST", url, "/users", {"fields": fields, "org_unit": org_unit, "department": department})
    show(data, as_json, f"created {data['primaryEmail']} ({data['id']}) in {data['orgUnitPath']}")


@google_app.command("update-user")
def update_user(
    user: UserArg, set_: SetOption = None, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Change fields of a user, e.g. --set name.familyName=Hopper --set 'organizations=[{"department":"Finance"}]'."""
    fields = _fields(set_)
    if not fields:
        raise typer.BadParameter("give at least one --set NAME=VALUE", param_hint="--set")
    data = _admin("PATCH", url, f"/users/{_ref(user)}", fields)
    show(data, as_json, f"updated {data['primaryEmail']}: {', '.join(fields)}")


def _user_action(action: str, user: str, url: str, as_json: bool, body: Any = None) -> None:
    data = _admin("POST", url, f"/users/{_ref(user)}/{action}", body)
    show(
        data,
        as_json,
        f"{action}: {data['primaryEmail']} (suspended {data['suspended']}, archived "
        f"{data['archived']}, {data['orgUnitPath']})",
    )


def _state_command(action: str, summary: str) -> None:
    def command(user: UserArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
        _user_action(action, user, url, as_json)

    command.__doc__ = summary
    google_app.command(f"{action}-user")(command)


for _action, _summary in (
    ("suspend", "Suspend a user (suspended=true)."),
    ("unsuspend", "Lift a suspension."),
    ("archive", "Archive a user (archived=true)."),
    ("unarchive", "Restore an archived user."),
):
    _state_command(_action, _summary)


@google_app.command("move-user")
def move_user(
    user: UserArg,
    org_unit: Annotated[str, typer.Argument(help="The org unit path to move to, e.g. /Salesforce Admins.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Move a user to another org unit."""
    _user_action("move", user, url, as_json, {"org_unit": org_unit})


@google_app.command("delete-user")
def delete_user(user: UserArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Delete a user (gone from users.list and from every group)."""
    data = _admin("DELETE", url, f"/users/{_ref(user)}")
    show(data, as_json, f"deleted {data['id']}")


@google_app.command("add-org-unit")
def add_org_unit(
    path: Annotated[str, typer.Argument(help="Path of the new org unit; its parent must exist.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Create an org unit."""
    typer.echo(f"created org unit {_admin('POST', url, '/org-units', {'path': path})['orgUnitPath']}")


def _members(group: str, add: list[str], remove: list[str], role: str, url: str, as_json: bool) -> None:
    data = _admin("POST", url, f"/groups/{_ref(group)}/members", {"add": add, "remove": remove, "role": role})
    show(data, as_json, f"group {data['id']} now has {len(data['members'])} direct members")


GroupArg = Annotated[str, typer.Argument(help="Group id, email or name.")]
MembersArg = Annotated[
    list[str], typer.Argument(help="User ids/emails, group ids/emails/names, or 'customer' for everyone.")
]


@google_app.command("add-members")
def add_members(
    group: GroupArg,
    members: MembersArg,
    role: Annotated[str, typer.Option(help="OWNER, MANAGER or MEMBER.")] = "MEMBER",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add direct members (users, nested groups, or the whole account) to a group."""
    _members(group, members, [], role, url, as_json)


@google_app.command("remove-members")
def remove_members(
    group: GroupArg, members: MembersArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Remove direct members from a group."""
    _members(group, [], members, "MEMBER", url, as_json)


@google_app.command("add-group")
def add_group(
    name: Annotated[str, typer.Argument(help="Name of the new group.")],
    email: Annotated[str | None, typer.Option(help="Its email; derived from the name by default.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create a group."""
    data = _admin("POST", url, "/groups", {"name": name, "email": email, "description": description})
    show(data, as_json, f"created group {data['name']} <{data['email']}> ({data['id']})")


@google_app.command("delete-group")
def delete_group(group: GroupArg, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Delete a group."""
    data = _admin("DELETE", url, f"/groups/{_ref(group)}")
    show(data, as_json, f"deleted group {data['id']}")


@google_app.command("fault")
def fault(
    kind: Annotated[
        str,
        typer.Argument(help="quota | error | delay | forbidden | expire | cut | truncate | malformed | loop"),
    ] = "quota",
    reason: Annotated[
        str, typer.Option(help="Quota reason: userRateLimitExceeded, quotaExceeded (403) or rateLimitExceeded (429).")
    ] = "userRateLimitExceeded",
    count: Annotated[int, typer.Option(help="How many requests it hits.")] = 1,
    status: Annotated[int, typer.Option(help="HTTP status of error faults.")] = 503,
    delay: Annotated[float, typer.Option(help="Seconds to stall (delay faults).")] = 0.0,
    target: Annotated[str, typer.Option(help="api | token | any")] = "api",
    path_contains: Annotated[str | None, typer.Option(help="Only requests whose path contains this.")] = None,
    after: Annotated[int, typer.Option(help="Matching requests to let through first (a fault on a later page).")] = 0,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Make the next COUNT requests fail with a quota error, a 5xx, a stall, a 403 (rights revoked), expired
    page tokens, a connection cut mid-body, a truncated or malformed body, or a token back to the same page."""
    body = {
        "after": after,
        "kind": kind,
        "reason": reason,
        "count": count,
        "status": status,
        "delay": delay,
        "target": target,
        "path_contains": path_contains,
    }
    data = _admin("POST", url, "/faults", body)
    what = data["reason"] if kind == "quota" else data["status"] if kind == "error" else f"{delay}s"
    show(data, as_json, f"next {count} {target} request(s): {kind} {what}")


@google_app.command("delegation")
def delegation(
    scopes: Annotated[
        list[str] | None,
        typer.Argument(help="Scopes to authorise, e.g. admin.directory.user.readonly; none: remove the delegation."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set the domain-wide delegation of the service account's client ID; issued tokens end."""
    data = _admin("PUT", url, "/delegation", {"scopes": scopes or None})
    show(data, as_json, f"client {data['client_id']}: {', '.join(data['scopes'] or []) or 'no delegation'}")


@google_app.command("admin-role")
def admin_role(
    email: Annotated[str, typer.Argument(help="The user to make an admin (or not).")],
    privileges: Annotated[list[str] | None, typer.Argument(help="users and/or groups; none: not an admin.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set what an administrator's role may read."""
    data = _admin("PUT", url, "/admins", {"email": email, "privileges": privileges or []})
    show(data, as_json, f"{data['email']}: {', '.join(data['privileges']) or 'not an admin'}")


@google_app.command("stats")
def stats(url: UrlOption = DEFAULT_URL) -> None:
    """Requests by endpoint and records served since the last reset (JSON)."""
    show(_admin("GET", url, "/stats"), True, "")


@google_app.command("reset")
def reset(url: UrlOption = DEFAULT_URL) -> None:
    """Back to the seeded account; changes, faults and delegation changes are forgotten."""
    _admin("POST", url, "/reset")
    typer.echo("sandbox reset to its seed")


# Each demo sandbox has people of its own: `serve --demo` connects them all to one store.
DEMO_DOMAIN = "fabrikam.example"


def _start_demo() -> DemoSandbox:
    """A 200-person account on a loopback port, for `serve --demo`; the key travels inline as a secret."""
    from accessiq.sandbox.google import GoogleSandbox
    from accessiq.sandbox.google_app import create_app
    from accessiq.sandbox.people import generate_population

    sandbox = GoogleSandbox(population=generate_population(200, 20, seed=0, domain=DEMO_DOMAIN))
    server = SandboxServer(create_app(sandbox)).start()
    token_url = f"{server.url}/token"
    key = json.dumps(sandbox.service_account_key(token_url))
    return DemoSandbox(
        server, document(server.url, token_url, sandbox.admin_email, key, name="Fabrikam (Google sandbox)")
    )


SANDBOX = SandboxSpec(commands=google_app, start_demo=_start_demo)
