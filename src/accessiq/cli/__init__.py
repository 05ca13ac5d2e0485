"""The `accessiq` command: every admin action, scriptable; tables for people, `--json` for machines."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from accessiq.cli.output import (
    console,
    err_console,
    print_json,
    print_table,
    run_status,
    schedule_text,
    status,
    when,
)
from accessiq.config import Settings
from accessiq.errors import AccessIQError
from accessiq.logs import configure_logging
from accessiq.services import directories as dirs
from accessiq.services import identity, runs, scim_tokens
from accessiq.services.configure import frequency_words
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, open_store
from accessiq.sync.document import load_document

app = typer.Typer(
    name="accessiq",
    help="AccessIQ Directory Sync: keep users, groups, organizations and roles in sync with your directories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
directories_app = typer.Typer(help="Connect and configure directories.", no_args_is_help=True)
runs_app = typer.Typer(help="The sync log: runs, their changes and errors; approve or reject.", no_args_is_help=True)
users_app = typer.Typer(help="Review users; create local users; deactivate and activate.", no_args_is_help=True)
groups_app = typer.Typer(help="Review groups.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations and manual memberships.", no_args_is_help=True)
roles_app = typer.Typer(help="Roles and their ranks.", no_args_is_help=True)
app.add_typer(directories_app, name="directories")
app.add_typer(runs_app, name="runs")
app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")
app.add_typer(orgs_app, name="orgs")
app.add_typer(roles_app, name="roles")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
DirectoryArg = Annotated[str, typer.Argument(help="Directory id or name.")]


@cache
def store() -> Store:
    return open_store()


# -- directories ---------------------------------------------------------------------------


@directories_app.command("apply")
def directories_apply(
    file: Annotated[Path, typer.Argument(help="YAML or JSON directory document.")], as_json: JsonFlag = False
) -> None:
    """Create or update a directory from a document (config as code)."""
    document = load_document(file)
    s = store()
    with s.transaction() as session:
        # The CLI runs on the server as its operator: env:/file: references, any endpoint, any path.
        directory, created = dirs.apply_document(session, s.secrets, document, policy=InputPolicy.operator())
        data = dirs.directory_json(session, directory)
    if as_json:
        print_json(data)
    else:
        console.print(
            f"{'created' if created else 'updated'} directory {data['id']} [bold]{escape(data['name'])}[/bold]"
            f" ({escape(data['provider'])})"
        )


@directories_app.command("list")
def directories_list(as_json: JsonFlag = False) -> None:
    """List directories with their provider, schedule and last run."""
    with store().read() as session:
        data = [dirs.directory_json(session, d) for d in dirs.list_directories(session)]
    if as_json:
        return print_json(data)
    print_table(
        "Directories",
        ["id", "name", "provider", "users", "schedule", "last sync", "last run", "finished"],
        (
            (
                d["id"],
                d["name"],
                d["provider"],
                d["users"],
                frequency_words(d["settings"]["frequency"]) if d["settings"]["schedule_enabled"] else "off",
                # The last applied sync; a later dry run or failed run is the last run, apart.
                when(d["last_applied_run"]["finished_at"]) if d["last_applied_run"] else "never",
                status(d["last_run"]["status"]) if d["last_run"] else "never",
                when(d["last_run"]["finished_at"]) if d["last_run"] else "-",
            )
            for d in data
        ),
    )


@directories_app.command("show")
def directories_show(directory: DirectoryArg, as_json: JsonFlag = False) -> None:
    """Show a directory's connection (without secrets), settings and group mappings."""
    import yaml

    with store().read() as session:
        data = dirs.directory_json(session, dirs.get_directory(session, directory))
    if as_json:
        return print_json(data)
    console.print(
        f"[bold]{escape(data['name'])}[/bold] (id {data['id']}, provider {escape(data['provider'])}, "
        f"{data['users']} users)"
    )
    console.print(
        yaml.safe_dump(
            {
                "connection": data["connection"],
                "settings": data["settings"],
                "group_mappings": data["group_mappings"],
            },
            sort_keys=False,
        ).rstrip(),
        markup=False,
    )
    applied = data["last_applied_run"]
    console.print(
        f"last sync: run {applied['id']} at {when(applied['finished_at'])}" if applied else "last sync: never"
    )
    last = data["last_run"]
    if last:
        console.print(f"last run: {last['id']} {status(last['status']).markup} at {when(last['finished_at'])}")
    else:
        console.print("last run: never")
    console.print(schedule_text("schedule", data["schedule"]))


@directories_app.command("export")
def directories_export(
    directory: DirectoryArg,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Print the directory as a document that `directories apply` takes back. Inline secrets are left out."""
    import yaml  # only these two commands write YAML: the others start without it

    with store().read() as session:
        data = dirs.export_document(session, dirs.get_directory(session, directory))
    if fmt == "json":
        print_json(data)
    else:
        print(yaml.safe_dump(data, sort_keys=False).rstrip())


@directories_app.command("test")
def directories_test(directory: DirectoryArg, as_json: JsonFlag = False) -> None:
    """Check the directory's credentials and permissions."""
    s = store()
    with s.transaction() as session:
        found = dirs.get_directory(session, directory)
        references = dirs.group_references(session, found)
    result = dirs.test_directory(s.secrets, found, references)
    if as_json:
        print_json({"ok": result.ok, "details": result.details, "problems": result.problems})
    else:
        for line in result.details:
            console.print(f"[green]ok[/green] {escape(line)}")
        for line in result.problems:
            console.print(f"[red]problem[/red] {escape(line)}")
    if not result.ok:
        raise typer.Exit(1)


@directories_app.command("scim-token")
def directories_scim_token(
    directory: DirectoryArg,
    grace: Annotated[
        str, typer.Option(help="How long the directory's current tokens keep working: 0, 15m, 1h, 7d.")
    ] = "1h",
    base_url: Annotated[
        str, typer.Option(help="The address identity providers reach this server at.")
    ] = "http://127.0.0.1:8000",
    as_json: JsonFlag = False,
) -> None:
    """Make a new SCIM bearer token for a push directory, shown this once; older ones expire after --grace."""
    with store().transaction() as session:
        found = dirs.get_directory(session, directory)
        issued = scim_tokens.issue_token(session, found, scim_tokens.parse_grace(grace))
        endpoint = f"{base_url.rstrip('/')}/scim/v2/{found.id}"
    if as_json:
        print_json(
            {
                "directory": found.id,
                "base_url": endpoint,
                "token": issued.token,
                "previous_tokens_expire_at": issued.previous_expire_at.isoformat()
                if issued.previous_expire_at
                else None,
            }
        )
        return
    console.print(f"SCIM base URL: {escape(endpoint)}")
    console.print(f"Secret token:  {escape(issued.token)}")
    console.print("The token is shown this once; paste both into the identity provider's provisioning settings.")
    if issued.previous_expire_at is not None:
        ends = f"{issued.previous_expire_at:%Y-%m-%d %H:%M}"
        console.print(f"The directory's previous tokens stop working at {ends} UTC.")


@directories_app.command("groups")
def directories_groups(directory: DirectoryArg, as_json: JsonFlag = False) -> None:
    """List the directory's source groups (for group mappings)."""
    s = store()
    with s.transaction() as session:
        found = dirs.get_directory(session, directory)
    groups = dirs.source_groups(s.secrets, found)
    data = [{"id": g.external_id, "name": g.name, "email": g.email, "dn": g.dn} for g in groups]
    if as_json:
        return print_json(data)
    print_table(
        "Source groups",
        ["id", "name", "email / DN"],
        ((g["id"], g["name"], g["email"] or g["dn"]) for g in data),
    )


@directories_app.command("delete")
def directories_delete(
    directory: DirectoryArg, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete a directory. Its users stay as local users; its groups and sync memberships go."""
    with store().transaction() as session:
        found = dirs.get_directory(session, directory)
        if not yes:
            typer.confirm(f"Delete directory {found.name!r}?", abort=True)
        dirs.delete_directory(session, found)
    console.print(f"deleted directory {escape(found.name)}")


# -- sync and runs -------------------------------------------------------------------------


@app.command("sync")
def sync(
    directory: DirectoryArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and log, apply nothing.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Read everything, not just changes.")] = False,
    as_json: JsonFlag = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="If another process is running this directory's sync, exit 75 at once."),
    ] = False,
) -> None:
    """Run a sync to the end in this process and print the run.

    Exit code 0 only when the run succeeded (with or without per-record errors); 1 when it failed,
    was canceled or was blocked for approval; 75 with --no-wait when another process is running
    the directory's sync.
    """
    s = store()
    with _progress() as report:
        run = runs.sync_in_foreground(
            s,
            directory,
            dry_run=dry_run,
            full=full,
            wait=not no_wait,
            progress=report,
            announce=lambda message: err_console.print(escape(message)),
        )
    with s.transaction() as session:
        data = runs.run_json(session, runs.get_run(session, run.id))
    _print_run(data, as_json)
    if data["status"] not in ("succeeded", "succeeded_with_errors"):
        raise typer.Exit(1)


class _progress:
    """A progress line on stderr while a run reads its source."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[users]} users, {task.fields[groups]} groups"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("reading the directory", total=None, users=0, groups=0)
        return self._report

    def _report(self, phase: str, users: int, groups: int) -> None:
        text = "reading the directory" if phase == "reading" else "planning and applying"
        self._bar.update(self._task, description=text, users=users, groups=groups)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)


def _print_run(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return print_json(data)
    counts = data["counts"]
    kind = "dry run" if data["dry_run"] else "run"
    console.print(
        f"{kind} {data['id']} of {escape(data['directory']['name'])}: {status(data['status']).markup} "
        f"({data['mode']}, {data['trigger']})"
    )
    console.print(
        f"users: {counts['users_created']} created, {counts['users_updated']} updated, "
        f"{counts['users_deactivated']} deactivated, {counts['users_reactivated']} reactivated, "
        f"{counts['users_unchanged']} unchanged, {counts['user_errors']} errors"
    )
    console.print(
        f"groups: {counts['groups_processed']} processed, {counts['groups_created']} created, "
        f"{counts['groups_updated']} updated, {counts['groups_deleted']} deleted; memberships: "
        f"{counts['memberships_added']} added, {counts['memberships_removed']} removed"
    )
    for note in data["notes"]:
        console.print(f"[yellow]note[/yellow] {escape(note)}")
    for error in data["errors"][:20]:
        where = f" {error['external_id']}" if error["external_id"] else ""
        console.print(f"[red]error[/red] {escape(error['object'] + where)}: {escape(error['message'])}")
    if len(data["errors"]) > 20:
        console.print(f"... and {len(data['errors']) - 20} more errors: accessiq runs show {data['id']}")
    if data["pending_approval"]:
        action = "apply this plan" if data["dry_run"] else "approve"
        console.print(
            f"to {action}: accessiq runs approve {data['id']}   to discard: accessiq runs reject {data['id']}"
        )
    for change in data.get("changes", []):
        console.print(
            f"  {change['action']:<10} {change['object']:<16} {change['label']}"
            + (f"  {_change_detail(change)}" if change["action"] in ("update", "link", "change") else ""),
            markup=False,
        )


def _change_detail(change: dict[str, Any]) -> str:
    detail = change["detail"]
    if "changes" in detail:
        return ", ".join(f"{k}: {b!r} -> {a!r}" for k, (b, a) in detail["changes"].items())
    return f"{detail.get('role_before')} -> {detail.get('role')}"


@runs_app.command("list")
def runs_list(
    directory: Annotated[str | None, typer.Option("--directory", "-d", help="Directory id or name.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    with store().read() as session:
        found = dirs.get_directory(session, directory) if directory else None
        data = [runs.run_json(session, r) for r in runs.list_runs(session, found, limit)]
    if as_json:
        return print_json(data)
    print_table(
        "Runs",
        [
            "id",
            "directory",
            "status",
            "mode",
            "trigger",
            "finished",
            "created",
            "updated",
            "deactivated",
            "errors",
        ],
        (
            (
                r["id"],
                r["directory"]["name"],
                run_status(r) + (" (dry)" if r["dry_run"] else ""),
                r["mode"],
                r["trigger"],
                when(r["finished_at"]),
                r["counts"]["users_created"],
                r["counts"]["users_updated"],
                r["counts"]["users_deactivated"],
                len(r["errors"]),
            )
            for r in data
        ),
    )


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id.")],
    changes: Annotated[bool, typer.Option("--changes", help="List every change.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a run: counts, errors, and with --changes every change with before and after values."""
    with store().read() as session:
        data = runs.run_json(session, runs.get_run(session, run), changes=changes)
    _print_run(data, as_json)


@runs_app.command("approve")
def runs_approve(run: Annotated[str, typer.Argument(help="Run id.")], as_json: JsonFlag = False) -> None:
    """Apply exactly the plan a blocked run or a dry run stored (refused if the store moved since)."""
    s = store()
    with s.transaction() as session:
        run_id = runs.get_run(session, run).id
    applied = runs.approve(s, run_id)
    with s.transaction() as session:
        _print_run(runs.run_json(session, runs.get_run(session, applied.id)), as_json)


@runs_app.command("reject")
def runs_reject(run: Annotated[str, typer.Argument(help="Run id.")], as_json: JsonFlag = False) -> None:
    """Discard the plan of a blocked run or a dry run."""
    s = store()
    with s.transaction() as session:
        run_id = runs.get_run(session, run).id
    runs.reject(s, run_id)
    with s.transaction() as session:
        _print_run(runs.run_json(session, runs.get_run(session, run_id)), as_json)


# -- users, groups, organizations, roles ---------------------------------------------------


@users_app.command("list")
def users_list(
    directory: Annotated[str | None, typer.Option("--directory", "-d", help="Directory id or name.")] = None,
    user_status: Annotated[str | None, typer.Option("--status", help="active or deactivated")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List users with their organization memberships and roles."""
    with store().read() as session:
        found = dirs.get_directory(session, directory) if directory else None
        data = identity.users_json(session, identity.list_users(session, found, status=user_status))
    if as_json:
        return print_json(data)
    print_table(
        "Users",
        ["id", "email", "name", "status", "directory", "effective roles"],
        (
            (
                u["id"],
                u["email"],
                u["display_name"],
                status(u["status"]),
                u["directory"] or "local",
                ", ".join(f"{r['organization']}:{r['role']}" for r in u["effective_roles"]),
            )
            for u in data
        ),
    )
    if data:
        console.print("[dim]why a user holds a role: accessiq users show USER[/dim]")


@users_app.command("show")
def users_show(user: Annotated[str, typer.Argument(help="User id or email.")], as_json: JsonFlag = False) -> None:
    """Show a user: effective role per organization and why they hold each membership."""
    with store().transaction() as session:
        data = identity.users_json(session, [identity.get_user(session, user)])[0]
    if as_json:
        return print_json(data)
    source = f"from {data['directory']} ({data['external_id']})" if data["directory"] else "local user"
    console.print(Text.assemble((data["email"], "bold"), "  ", status(data["status"]), f"  {source}"))
    console.print(Text("groups: " + (", ".join(data["groups"]) or "none")))
    if not data["memberships"]:
        console.print("no organization memberships")
    # One line per membership under its organization: explanations are long and must not fold.
    effective = {r["organization"]: r["role"] for r in data["effective_roles"]}
    for org in effective:
        console.print(Text.assemble((org, "bold"), "  effective role: ", (effective[org], "bold")))
        for m in data["memberships"]:
            if m["organization"] == org:
                console.print(Text(f"  {m['role']:<8} {m['granted_by']['summary']}"))


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option("--email", help="The user's email address.")],
    given_name: Annotated[str | None, typer.Option("--given-name")] = None,
    family_name: Annotated[str | None, typer.Option("--family-name")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a local user that no directory manages."""
    with store().transaction() as session:
        user = identity.create_user(session, email, given_name=given_name, family_name=family_name)
        data = identity.users_json(session, [user])[0]
    print_json(data) if as_json else console.print(f"created user {data['id']} {escape(data['email'])}")


def _set_user_state(ref: str, action: Callable[..., Any], as_json: bool) -> None:
    with store().transaction() as session:
        user = action(session, identity.get_user(session, ref))
        data = identity.users_json(session, [user])[0]
    print_json(data) if as_json else console.print(f"{escape(data['email'])} is {status(data['status']).markup}")


@users_app.command("deactivate")
def users_deactivate(user: Annotated[str, typer.Argument(help="User id or email.")], as_json: JsonFlag = False) -> None:
    """Deactivate a user as an administrator; sync will not reactivate them."""
    _set_user_state(user, identity.deactivate_user, as_json)


@users_app.command("delete")
def users_delete(
    user: Annotated[str, typer.Argument(help="User id or email.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a deactivated user and their memberships, freeing their email for someone else."""
    with store().transaction() as session:
        found = identity.get_user(session, user)
        if not yes:
            typer.confirm(f"Delete {found.email} for good?", abort=True)
        email = found.email
        identity.delete_user(session, found)
    console.print(f"deleted {escape(email)}")


@users_app.command("activate")
def users_activate(user: Annotated[str, typer.Argument(help="User id or email.")], as_json: JsonFlag = False) -> None:
    """Activate a user again; warns when their directory's next sync would deactivate them again."""
    with store().transaction() as session:
        found = identity.get_user(session, user)
        warning = identity.reactivation_warning(session, found)
        data = identity.users_json(session, [identity.activate_user(session, found)])[0]
    if as_json:
        return print_json(data | {"warning": warning})
    console.print(f"{escape(data['email'])} is {status(data['status']).markup}")
    if warning:
        err_console.print(Text.assemble(("warning: ", "yellow"), warning))


@groups_app.command("list")
def groups_list(
    directory: Annotated[str | None, typer.Option("--directory", "-d", help="Directory id or name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List groups with their member counts."""
    with store().read() as session:
        found = dirs.get_directory(session, directory) if directory else None
        data = identity.list_groups(session, found)
    if as_json:
        return print_json(data)
    print_table(
        "Groups",
        ["id", "name", "directory", "members", "external id"],
        ((g["id"], g["name"], g["directory"] or "local", g["members"], g["external_id"]) for g in data),
    )


@orgs_app.command("list")
def orgs_list(as_json: JsonFlag = False) -> None:
    """List organizations."""
    with store().read() as session:
        data = identity.list_organizations(session)
    if as_json:
        return print_json(data)
    print_table(
        "Organizations",
        ["id", "slug", "name", "members"],
        ((o["id"], o["slug"], o["name"], o["members"]) for o in data),
    )


@orgs_app.command("create")
def orgs_create(
    slug: Annotated[str, typer.Argument(help="Unique short name, e.g. acme-eng.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an organization."""
    with store().transaction() as session:
        org = identity.create_organization(session, slug, name)
        data = {"id": org.id, "slug": org.slug, "name": org.name, "members": 0}
    print_json(data) if as_json else console.print(f"created organization {escape(str(data['slug']))}")


@orgs_app.command("add-member")
def orgs_add_member(
    org: Annotated[str, typer.Argument(help="Organization slug.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
    role: Annotated[str, typer.Option("--role", help="Role name.")] = "member",
) -> None:
    """Grant a manual membership (sync never changes it)."""
    with store().transaction() as session:
        found_org = identity.get_organization(session, org)
        found_user = identity.get_user(session, user)
        identity.add_member(session, found_org, found_user, identity.get_role(session, role))
    console.print(f"{escape(found_user.email)} is {escape(role)} in {escape(found_org.slug)} (manual)")


@orgs_app.command("remove-member")
def orgs_remove_member(
    org: Annotated[str, typer.Argument(help="Organization slug.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
) -> None:
    """Remove a manual membership."""
    with store().transaction() as session:
        found_org = identity.get_organization(session, org)
        found_user = identity.get_user(session, user)
        identity.remove_member(session, found_org, found_user)
    console.print(f"removed {escape(found_user.email)}'s manual membership in {escape(found_org.slug)}")


@roles_app.command("list")
def roles_list(as_json: JsonFlag = False) -> None:
    """List roles, highest rank first."""
    with store().read() as session:
        data = [{"name": r.name, "rank": r.rank, "builtin": r.builtin} for r in identity.list_roles(session)]
    if as_json:
        return print_json(data)
    print_table("Roles", ["name", "rank", "built-in"], ((r["name"], r["rank"], r["builtin"]) for r in data))


@roles_app.command("create")
def roles_create(
    name: Annotated[str, typer.Argument(help="Role name.")],
    rank: Annotated[int, typer.Option("--rank", help="Higher wins; owner 400, admin 300, member 200, viewer 100.")],
) -> None:
    """Add a custom role."""
    with store().transaction() as session:
        identity.create_role(session, name, rank)
    console.print(f"created role {escape(name)} (rank {rank})")


# -- the rest ------------------------------------------------------------------------------


@app.command("demo")
def demo(as_json: JsonFlag = False) -> None:
    """Connect the bundled demo directory (a JSON snapshot) and run its first sync."""
    from accessiq.demo import setup_demo

    s = store()
    run_id = setup_demo(s)
    with s.transaction() as session:
        _print_run(runs.run_json(session, runs.get_run(session, run_id)), as_json)
    if not as_json:
        console.print(
            f"\nnext: accessiq users list   accessiq runs show {run_id} --changes   accessiq directories show Demo"
        )


# Command groups that other CLI modules add commands to.
GROUPS = {
    "directories": directories_app,
    "runs": runs_app,
    "users": users_app,
    "groups": groups_app,
    "orgs": orgs_app,
    "roles": roles_app,
}


def _extend(module: str) -> None:
    """Let `module` add its commands: `register(app, GROUPS)` or a Typer sub-app named `app`."""
    try:
        loaded = import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return
        raise
    if hasattr(loaded, "register"):
        loaded.register(app, GROUPS)
    else:
        app.add_typer(loaded.app, name=module.rsplit(".", 1)[1], help=loaded.__doc__)


for _module in ("accessiq.cli.service", "accessiq.cli.web", "accessiq.cli.sandbox", "accessiq.cli.providers"):
    _extend(_module)


def main() -> None:
    """Entry point: run the CLI; a product error is one line on stderr and a non-zero exit."""
    settings = Settings()
    # The CLI prints its own results; the log carries only warnings unless asked for more.
    configure_logging(os.environ.get("ACCESSIQ_LOG_LEVEL", "warning"), settings.log_format)
    try:
        # Standalone mode turns usage errors into a message and exit code 2, Ctrl-C into 1.
        app()
    except AccessIQError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
