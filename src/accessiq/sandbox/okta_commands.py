"""`accessiq sandbox okta`: serve an Okta sandbox, and change a running one through its admin endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from accessiq.sandbox import DemoSandbox, SandboxServer, SandboxSpec
from accessiq.sandbox.admin_client import call_admin, show

okta_app = typer.Typer(
    help="Okta org sandbox. Without a subcommand it serves one; the subcommands change a running one "
    "(users, lifecycle, groups, memberships, permissions, faults) through its /_admin endpoint.",
)

DEFAULT_PORT = 8742
DEFAULT_URL = os.environ.get("ACCESSIQ_OKTA_SANDBOX_URL", f"http://127.0.0.1:{DEFAULT_PORT}")

UrlOption = Annotated[
    str, typer.Option("--url", help="Base URL of the running sandbox (env ACCESSIQ_OKTA_SANDBOX_URL).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the admin endpoint's JSON answer.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="A profile attribute as NAME=VALUE (VALUE is JSON when it parses); repeatable."),
]
UserArgument = Annotated[str, typer.Argument(help="User id, login or email.")]
GroupArgument = Annotated[str, typer.Argument(help="Group id or name.")]


@okta_app.callback(invoke_without_command=True)
def okta(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Number of generated users.", min=0)] = 200,
    groups: Annotated[int, typer.Option(help="Number of generated groups.", min=0)] = 30,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; keep it loopback.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same people and groups.")] = 0,
    private_key_out: Annotated[
        Path | None,
        typer.Option(help="Also register a service-app key and write its PEM private key here."),
    ] = None,
) -> None:
    """Serve an Okta sandbox and print the org URL and credentials a directory document needs."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from accessiq.sandbox.okta import OktaSandbox, make_private_key
    from accessiq.sandbox.okta_app import create_app

    sandbox = OktaSandbox(users, groups, seed=seed)
    url = f"http://{host}:{port}"
    credential = [f"  api_token: {sandbox.api_token}"]
    if private_key_out is not None:
        pem = make_private_key()
        kid = sandbox.register_key(sandbox.client_id, pem)
        private_key_out.write_text(pem, encoding="utf-8")
        private_key_out.chmod(0o600)
        credential = [
            f"  client_id: {sandbox.client_id}",
            f"  private_key: file:{private_key_out}",
            f"  key_id: {kid}",
        ]
    snapshot = sandbox.snapshot()
    # Plain echo: long tokens and the YAML must not wrap, so they can be copied.
    typer.echo(
        "\n".join(
            [
                f"Okta sandbox on {url}: {len(snapshot['users'])} users "
                f"({sum(1 for s in snapshot['users'].values() if s == 'DEPROVISIONED')} deprovisioned), "
                f"{len(snapshot['groups'])} groups, seed {seed}",
                f"  API              {url}/api/v1/users, {url}/api/v1/groups, {url}/api/v1/logs",
                f"  token endpoint   {url}/oauth2/v1/token",
                f"  admin            {url}/_admin/info  (API docs: {url}/_admin/docs)",
                f"  api_token        {sandbox.api_token}",
                f"  client_id        {sandbox.client_id}",
                "",
                "Directory document:",
                "",
                "name: Okta sandbox",
                "provider: okta",
                "connection:",
                f"  org_url: {url}",
                *credential,
                "",
                "Apply it with `accessiq directories apply`; to connect it through the web UI or the API, "
                f"serve with ACCESSIQ_ALLOWED_ENDPOINTS={url}.",
                f"Change it while a sync runs: accessiq sandbox okta --help (admin URL {url}).",
            ]
        )
    )
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="warning")


def _admin(method: str, url: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
    return call_admin("okta", method, url, path, body, params)


def _profile(pairs: list[str] | None) -> dict[str, Any]:
    profile: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        try:
            profile[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            profile[name.strip()] = raw
    return profile


def _ref(ref: str) -> str:
    return quote(ref, safe="")


@okta_app.command("info")
def info(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show the org, credentials and sizes of a running sandbox."""
    data = _admin("GET", url, "/info")
    show(
        data,
        as_json,
        f"org {data['org_url']} ({data['org_id']})  api_token {data['api_token']}  client {data['client_id']}\n"
        f"{data['users']} users ({data['deprovisioned']} deprovisioned), {data['groups']} groups",
    )


@okta_app.command("add-user")
def add_user(
    first_name: Annotated[str | None, typer.Option(help="profile.firstName")] = None,
    last_name: Annotated[str | None, typer.Option(help="profile.lastName")] = None,
    department: Annotated[str | None, typer.Option(help="One of the generated departments.")] = None,
    set_: SetOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Hire someone: a new ACTIVE user (generated profile, overridden by the options)."""
    profile = _profile(set_)
    if first_name:
        profile["firstName"] = first_name
    if last_name:
        profile["lastName"] = last_name
    data = _admin("POST", url, "/users", {"profile": profile, "department": department})
    show(data, as_json, f"created {data['profile']['login']} ({data['id']})")


@okta_app.command("update-user")
def update_user(
    user: UserArgument, set_: SetOption = None, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Change profile attributes, e.g. --set title=CTO --set costCenter=CC-100."""
    profile = _profile(set_)
    if not profile:
        raise typer.BadParameter("give at least one --set NAME=VALUE", param_hint="--set")
    data = _admin("PATCH", url, f"/users/{_ref(user)}", {"profile": profile})
    show(data, as_json, f"updated {data['profile']['login']}: {', '.join(profile)}")


def _lifecycle(action: str, user: str, url: str, as_json: bool) -> None:
    data = _admin("POST", url, f"/users/{_ref(user)}/lifecycle/{action}")
    show(data, as_json, f"{data['profile']['login']} is now {data['status']}")


@okta_app.command("suspend-user")
def suspend_user(user: UserArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Status SUSPENDED (inactive; keeps memberships)."""
    _lifecycle("suspend", user, url, as_json)


@okta_app.command("unsuspend-user")
def unsuspend_user(user: UserArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Status back to ACTIVE."""
    _lifecycle("unsuspend", user, url, as_json)


@okta_app.command("deactivate-user")
def deactivate_user(user: UserArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Status DEPROVISIONED: gone from list-all, still found by a filter."""
    _lifecycle("deactivate", user, url, as_json)


@okta_app.command("activate-user")
def activate_user(user: UserArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Status ACTIVE again."""
    _lifecycle("activate", user, url, as_json)


@okta_app.command("delete-user")
def delete_user(
    user: UserArgument,
    permanent: Annotated[bool, typer.Option(help="Deactivate and delete for good in one go.")] = False,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Okta's DELETE: deactivates a user that is not DEPROVISIONED yet, deletes a DEPROVISIONED one for good."""
    data = _admin("DELETE", url, f"/users/{_ref(user)}", params={"permanent": str(permanent).lower()})
    show(data, as_json, f"{data['id']} {'deleted for good' if data['deleted'] else 'deactivated'}")


@okta_app.command("add-group")
def add_group(
    name: Annotated[str, typer.Argument(help="profile.name of the new OKTA_GROUP.")],
    description: Annotated[str | None, typer.Option()] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Create an OKTA_GROUP."""
    data = _admin("POST", url, "/groups", {"name": name, "description": description})
    show(data, as_json, f"created group {data['profile']['name']} ({data['id']})")


@okta_app.command("update-group")
def update_group(
    group: GroupArgument, set_: SetOption = None, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Change a group's profile, e.g. --set name=Platform."""
    data = _admin("PATCH", url, f"/groups/{_ref(group)}", {"profile": _profile(set_)})
    show(data, as_json, f"updated group {data['profile']['name']}")


@okta_app.command("delete-group")
def delete_group(group: GroupArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Delete an OKTA_GROUP (logged as group.lifecycle.delete)."""
    data = _admin("DELETE", url, f"/groups/{_ref(group)}")
    show(data, as_json, f"deleted group {data['id']}")


def _members(group: str, body: dict[str, list[str]], url: str, as_json: bool) -> None:
    data = _admin("POST", url, f"/groups/{_ref(group)}/members", body)
    show(data, as_json, f"group {data['id']} now has {len(data['members'])} members")


@okta_app.command("add-members")
def add_members(
    group: GroupArgument,
    users: Annotated[list[str], typer.Argument(help="User ids, logins or emails.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add users to an OKTA_GROUP."""
    _members(group, {"add": users}, url, as_json)


@okta_app.command("remove-members")
def remove_members(
    group: GroupArgument,
    users: Annotated[list[str], typer.Argument(help="User ids, logins or emails.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Remove users from an OKTA_GROUP."""
    _members(group, {"remove": users}, url, as_json)


@okta_app.command("permissions")
def permissions(
    scopes: Annotated[
        list[str] | None, typer.Option("--scope", help="Granted scope of the service app; repeatable.")
    ] = None,
    reads: Annotated[
        list[str] | None, typer.Option("--read", help="What the admin role may read: users, groups, logs; repeatable.")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="Service app; without it the API token's role changes.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Set the service app's granted scopes and role, or the API token's role; issued access tokens end."""
    body: dict[str, Any] = {"client_id": client_id}
    if scopes is not None:
        body["scopes"] = scopes
    if reads is not None:
        body["permissions"] = reads
    data = _admin("PUT", url, "/permissions", body)
    show(data, as_json, f"scopes {data['scopes']}  reads {', '.join(data['permissions']) or 'nothing'}")


@okta_app.command("revoke-token")
def revoke_token(url: UrlOption = DEFAULT_URL) -> None:
    """Revoke the sandbox's API token: every call with it answers 401 E0000011."""
    _admin("POST", url, "/tokens/revoke")
    typer.echo("API token revoked")


@okta_app.command("fault")
def fault(
    kind: Annotated[
        str,
        typer.Argument(
            help="throttle | concurrency | error | delay | forbidden | log_window | cut | truncate | malformed | loop"
        ),
    ] = "throttle",
    count: Annotated[int, typer.Option(help="How many requests it hits.")] = 1,
    status: Annotated[int | None, typer.Option(help="HTTP status of an error fault (503 by default).")] = None,
    delay: Annotated[float, typer.Option(help="Seconds to stall (delay faults).")] = 0.0,
    target: Annotated[str, typer.Option(help="api | token | any")] = "api",
    after: Annotated[int, typer.Option(help="Matching requests to let through first (a fault on a later page).")] = 0,
    path_contains: Annotated[str | None, typer.Option(help="Only requests whose path contains this.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Inject a fault into the next COUNT requests: 429 E0000047, a concurrency 429, a 5xx, a stall, E0000006
    (role revoked), E0000053 (System Log window passed), a connection cut mid-body, a truncated or malformed
    body, or a next link back to the page just served."""
    body: dict[str, Any] = {
        "kind": kind,
        "count": count,
        "target": target,
        "delay": delay,
        "after": after,
        "path_contains": path_contains,
    }
    if status is not None:
        body["status"] = status
    data = _admin("POST", url, "/faults", body)
    show(data, as_json, f"next {count} {target} request(s): {kind} {data['status']}")


@okta_app.command("rate-limit")
def rate_limit(
    limit: Annotated[int, typer.Argument(help="Requests per window per endpoint family; 0 for Okta's defaults.")],
    window: Annotated[float, typer.Option(help="Window length in seconds.")] = 60.0,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Throttle the org: X-Rate-Limit-* headers count down and the request after the last answers 429."""
    _admin("PATCH", url, "/behaviour", {"rate_limit": limit or None, "rate_window": window})
    typer.echo(f"rate limit {limit or 'default'} per {window:g}s per endpoint family")


@okta_app.command("stats")
def stats(url: UrlOption = DEFAULT_URL) -> None:
    """Requests by endpoint, 429s and records served since the last reset (JSON)."""
    show(_admin("GET", url, "/stats"), True, "")


@okta_app.command("reset")
def reset(url: UrlOption = DEFAULT_URL) -> None:
    """Back to the seeded org; changes, faults and tokens are forgotten."""
    _admin("POST", url, "/reset")
    typer.echo("sandbox reset to its seed")


# Each demo sandbox has people of its own: `serve --demo` connects them all to one store.
DEMO_DOMAIN = "northwind.example"


def _start_demo() -> DemoSandbox:
    """A 200-person org on a loopback port, for `serve --demo`; the same seed gives the same org."""
    from accessiq.sandbox.okta import OktaSandbox
    from accessiq.sandbox.okta_app import create_app
    from accessiq.sandbox.people import generate_population

    sandbox = OktaSandbox(population=generate_population(200, 20, seed=0, domain=DEMO_DOMAIN))
    server = SandboxServer(create_app(sandbox)).start()
    document = {
        "name": "Northwind (Okta sandbox)",
        "provider": "okta",
        "connection": {"org_url": server.url, "api_token": sandbox.api_token},
        "settings": {
            "frequency": "15m",
            "default_organization": "demo",
            "attribute_mapping": {"department": "profile.department", "title": "profile.title"},
        },
    }
    return DemoSandbox(server, document)


SANDBOX = SandboxSpec(commands=okta_app, start_demo=_start_demo)
