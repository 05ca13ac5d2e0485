"""`accessiq sandbox entra`: serve a Graph sandbox, and change a running one through its admin endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from accessiq.sandbox import DemoSandbox, SandboxServer, SandboxSpec
from accessiq.sandbox.admin_client import call_admin, show

entra_app = typer.Typer(
    help="Microsoft Entra ID / Graph sandbox. Without a subcommand it serves one; the subcommands change "
    "a running one (users, groups, memberships, faults) through its /_admin endpoint.",
)

console = Console()
DEFAULT_PORT = 8741
DEFAULT_URL = os.environ.get("ACCESSIQ_SANDBOX_URL", f"http://127.0.0.1:{DEFAULT_PORT}")


def _admin(method: str, url: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
    return call_admin("entra", method, url, path, body, params)


UrlOption = Annotated[str, typer.Option("--url", help="Base URL of the running sandbox (env ACCESSIQ_SANDBOX_URL).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the admin endpoint's JSON answer.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="A Graph property as NAME=VALUE (VALUE is JSON when it parses, else text); repeatable."),
]


@entra_app.callback(invoke_without_command=True)
def entra(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Number of generated users.", min=0)] = 200,
    groups: Annotated[int, typer.Option(help="Number of generated groups (nested).", min=0)] = 30,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; keep it loopback.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same people and groups.")] = 0,
    certificate_out: Annotated[
        Path | None,
        typer.Option(help="Also register a certificate credential and write its PEM (key + certificate) here."),
    ] = None,
) -> None:
    """Serve a Graph sandbox and print the URLs and credentials a directory document needs."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from accessiq.sandbox.entra import EntraSandbox, create_app, make_certificate

    sandbox = EntraSandbox(users, groups, seed=seed)
    if certificate_out is not None:
        pem = make_certificate()
        sandbox.register_app(sandbox.client_id, certificate_pem=pem, roles=sandbox.apps[sandbox.client_id].roles)
        certificate_out.write_text(pem, encoding="utf-8")
        certificate_out.chmod(0o600)
    url = f"http://{host}:{port}"
    snapshot = sandbox.snapshot()
    credential = (
        f"certificate: file:{certificate_out}" if certificate_out else f"client_secret: {sandbox.client_secret}"
    )
    # Plain echo, not rich: long URLs and the YAML must not wrap, so they can be copied.
    typer.echo(
        "\n".join(
            [
                f"Entra ID sandbox on {url}: {len(snapshot['users'])} users, "
                f"{len(snapshot['groups'])} groups, "
                f"{len(snapshot['removed_users'])} in deleted items, seed {seed}",
                f"  token endpoint   {url}/{sandbox.tenant_id}/oauth2/v2.0/token",
                f"  Graph            {url}/v1.0/users/delta, {url}/v1.0/groups/delta",
                f"  admin            {url}/_admin/info  (API docs: {url}/_admin/docs)",
                f"  tenant_id        {sandbox.tenant_id}  (or {sandbox.tenant_domain})",
                f"  client_id        {sandbox.client_id}",
                f"  client_secret    {sandbox.client_secret}",
                *([f"  certificate      {certificate_out}"] if certificate_out else []),
                "",
                "Directory document:",
                "",
                "name: Entra sandbox",
                "provider: entra",
                "connection:",
                f"  tenant_id: {sandbox.tenant_id}",
                f"  client_id: {sandbox.client_id}",
                f"  {credential}",
                f"  authority_url: {url}",
                f"  graph_url: {url}",
                "",
                "Apply it with `accessiq directories apply`; to connect it through the web UI or the API, "
                f"serve with ACCESSIQ_ALLOWED_ENDPOINTS={url}.",
                f"Change it while a sync runs: accessiq sandbox entra --help (admin URL {url}).",
            ]
        )
    )
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="warning")


def _properties(pairs: list[str] | None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        try:
            props[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            props[name.strip()] = raw
    return props


def _ref(ref: str) -> str:
    from accessiq.sandbox.entra import quote_ref

    return quote_ref(ref)


@entra_app.command("info")
def info(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show the tenant, credentials and sizes of a running sandbox."""
    data = _admin("GET", url, "/info")
    show(
        data,
        as_json,
        f"tenant {data['tenant_id']}  client {data['client_id']}  secret {data['client_secret']}\n"
        f"{data['users']} users, {data['groups']} groups, {data['deleted_users']} deleted",
    )


@entra_app.command("add-user")
def add_user(
    given_name: Annotated[str | None, typer.Option(help="givenName")] = None,
    surname: Annotated[str | None, typer.Option(help="surname")] = None,
    department: Annotated[str | None, typer.Option(help="One of the generated departments.")] = None,
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create a user (generated attributes, overridden by the options)."""
    props = _properties(set_)
    if given_name:
        props["givenName"] = given_name
    if surname:
        props["surname"] = surname
    if given_name or surname:
        props.setdefault("displayName", " ".join(p for p in (given_name, surname) if p))
    data = _admin("POST", url, "/users", {"properties": props, "department": department})
    show(data, as_json, f"created {data['userPrincipalName']} ({data['id']})")


@entra_app.command("update-user")
def update_user(
    user: Annotated[str, typer.Argument(help="User id, userPrincipalName or mail.")],
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Change Graph properties of a user, e.g. --set jobTitle=CTO --set department=Finance."""
    props = _properties(set_)
    if not props:
        raise typer.BadParameter("give at least one --set NAME=VALUE", param_hint="--set")
    data = _admin("PATCH", url, f"/users/{_ref(user)}", props)
    show(data, as_json, f"updated {data['userPrincipalName']}: {', '.join(props)}")


def _user_action(action: str, user: str, url: str, as_json: bool) -> None:
    data = _admin("POST", url, f"/users/{_ref(user)}/{action}")
    show(data, as_json, f"{action}d {data.get('userPrincipalName', user)}")


@entra_app.command("disable-user")
def disable_user(
    user: Annotated[str, typer.Argument(help="User id, UPN or mail.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set accountEnabled=false."""
    _user_action("disable", user, url, as_json)


@entra_app.command("enable-user")
def enable_user(
    user: Annotated[str, typer.Argument(help="User id, UPN or mail.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set accountEnabled=true."""
    _user_action("enable", user, url, as_json)


@entra_app.command("restore-user")
def restore_user(
    user: Annotated[str, typer.Argument(help="User id, UPN or mail.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Restore a soft-deleted user from deleted items, with its memberships."""
    _user_action("restore", user, url, as_json)


@entra_app.command("delete-user")
def delete_user(
    user: Annotated[str, typer.Argument(help="User id, UPN or mail.")],
    permanent: Annotated[
        bool, typer.Option(help="Delete for good (@removed: deleted) instead of soft-delete.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Delete a user: soft (restorable, @removed: changed) unless --permanent."""
    data = _admin("DELETE", url, f"/users/{_ref(user)}", params={"permanent": str(permanent).lower()})
    show(data, as_json, f"deleted {data['id']}{' permanently' if permanent else ' (restorable)'}")


@entra_app.command("add-group")
def add_group(
    name: Annotated[str, typer.Argument(help="displayName of the new group.")],
    description: Annotated[str | None, typer.Option()] = None,
    mail: Annotated[str | None, typer.Option(help="Makes it mail-enabled.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create a group."""
    data = _admin("POST", url, "/groups", {"displayName": name, "description": description, "mail": mail})
    show(data, as_json, f"created group {data['displayName']} ({data['id']})")


@entra_app.command("update-group")
def update_group(
    group: Annotated[str, typer.Argument(help="Group id or displayName.")],
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Change Graph properties of a group, e.g. --set displayName=Platform."""
    data = _admin("PATCH", url, f"/groups/{_ref(group)}", _properties(set_))
    show(data, as_json, f"updated group {data['displayName']}")


@entra_app.command("delete-group")
def delete_group(
    group: Annotated[str, typer.Argument(help="Group id or displayName.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Delete a group."""
    data = _admin("DELETE", url, f"/groups/{_ref(group)}")
    show(data, as_json, f"deleted group {data['id']}")


@entra_app.command("add-members")
def add_members(
    group: Annotated[str, typer.Argument(help="Group id or displayName.")],
    members: Annotated[list[str], typer.Argument(help="User ids/UPNs/mails or group ids/names.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add direct members to a group."""
    data = _admin("POST", url, f"/groups/{_ref(group)}/members", {"add": members})
    show(data, as_json, f"group {data['id']} now has {len(data['members'])} direct members")


@entra_app.command("remove-members")
def remove_members(
    group: Annotated[str, typer.Argument(help="Group id or displayName.")],
    members: Annotated[list[str], typer.Argument(help="User ids/UPNs/mails or group ids/names.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Remove direct members from a group."""
    data = _admin("POST", url, f"/groups/{_ref(group)}/members", {"remove": members})
    show(data, as_json, f"group {data['id']} now has {len(data['members'])} direct members")


@entra_app.command("fault")
def fault(
    kind: Annotated[
        str,
        typer.Argument(
            help="throttle | error | delay | forbidden | expire | cut | truncate | malformed | loop"
        ),
    ] = "throttle",
    count: Annotated[int, typer.Option(help="How many requests it hits.")] = 1,
    status: Annotated[int | None, typer.Option(help="HTTP status (429 throttle, 503 error by default).")] = None,
    retry_after: Annotated[int | None, typer.Option(help="Retry-After seconds; omit the header with -1.")] = 1,
    delay: Annotated[float, typer.Option(help="Seconds to stall (delay faults).")] = 0.0,
    target: Annotated[str, typer.Option(help="graph | token | any")] = "graph",
    after: Annotated[int, typer.Option(help="Matching requests to let through first (a fault on a later page).")] = 0,
    path_contains: Annotated[str | None, typer.Option(help="Only requests whose path contains this.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Inject a fault into the next COUNT requests: a 429 with Retry-After, a 5xx, a stall, a 403 (permission
    revoked), delta tokens that expire, a connection cut mid-body, a truncated or malformed body, or a
    nextLink back to the page just served."""
    body: dict[str, Any] = {
        "kind": kind,
        "count": count,
        "target": target,
        "delay": delay,
        "retry_after": None if retry_after is not None and retry_after < 0 else retry_after,
        "after": after,
        "path_contains": path_contains,
    }
    if status is not None:
        body["status"] = status
    data = _admin("POST", url, "/faults", body)
    show(data, as_json, f"next {count} {target} request(s): {kind} {data['status']}")


@entra_app.command("expire-delta")
def expire_delta(
    mode: Annotated[str, typer.Option(help="syncStateNotFound | resyncRequired | location")] = "syncStateNotFound",
    status: Annotated[int | None, typer.Option(help="400 or 410 (resyncRequired).")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Expire every delta token handed out so far; the next incremental sync must fall back to full."""
    body: dict[str, Any] = {"mode": mode}
    if status is not None:
        body["status"] = status
    data = _admin("POST", url, "/delta/expire", body)
    show(data, as_json, f"delta tokens expired ({mode})")


@entra_app.command("permissions")
def permissions(
    roles: Annotated[
        list[str] | None, typer.Argument(help="Application permissions to keep, e.g. User.Read.All.")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="App registration; the sandbox's own by default.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set the app's admin-consented permissions (none given: no consent at all); current tokens end."""
    client = client_id or _admin("GET", url, "/info")["client_id"]
    data = _admin("PUT", url, f"/apps/{_ref(client)}/permissions", {"roles": roles or [], "revoke": True})
    show(data, as_json, f"app {client}: {', '.join(data['roles']) or 'no consented permissions'}")


@entra_app.command("stats")
def stats(url: UrlOption = DEFAULT_URL) -> None:
    """Requests by endpoint and records served since the last reset (JSON)."""
    show(_admin("GET", url, "/stats"), True, "")


@entra_app.command("reset")
def reset(url: UrlOption = DEFAULT_URL) -> None:
    """Back to the seeded directory; delta state, faults and changes are forgotten."""
    _admin("POST", url, "/reset")
    console.print("sandbox reset to its seed")


def _start_demo() -> DemoSandbox:
    """A 200-person tenant on a loopback port, for `serve --demo`; the same seed gives the same tenant."""
    from accessiq.sandbox.entra import EntraSandbox, create_app

    sandbox = EntraSandbox(200, 20, seed=0)
    server = SandboxServer(create_app(sandbox)).start()
    document = {
        "name": "Contoso (Entra ID sandbox)",
        "provider": "entra",
        "connection": {
            "tenant_id": sandbox.tenant_domain,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "authority_url": server.url,
            "graph_url": server.url,
        },
        "settings": {
            "frequency": "15m",
            "default_organization": "demo",
            "attribute_mapping": {"department": "department", "title": "jobTitle"},
        },
    }
    return DemoSandbox(server, document)


SANDBOX = SandboxSpec(commands=entra_app, start_demo=_start_demo)
