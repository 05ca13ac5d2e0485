"""`accessiq admin …` and `accessiq tokens …`: who may sign in to the web UI and call the API."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.markup import escape

from accessiq.cli.output import console, print_json, print_table, when
from accessiq.services import accounts, sign_in

admin_app = typer.Typer(help="Administrators who sign in to the web UI.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for the REST API (stored hashed).", no_args_is_help=True)

PASSWORD_ENV = "ACCESSIQ_ADMIN_PASSWORD"


def _password(confirm: bool = True) -> str:
    """From ACCESSIQ_ADMIN_PASSWORD (for scripts) or a hidden prompt."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


def _store():  # type: ignore[no-untyped-def]
    from accessiq.cli import store

    return store()


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option("--email", help="The administrator's email (their sign-in name).")],
) -> None:
    """Create an administrator. The password comes from a prompt or ACCESSIQ_ADMIN_PASSWORD."""
    password = _password()
    with _store().transaction() as session:
        admin = accounts.create_administrator(session, email, password)
        console.print(f"created administrator {escape(admin.email)}; sign in at /login")


@admin_app.command("set-password")
def admin_set_password(email: Annotated[str, typer.Argument(help="The administrator's email.")]) -> None:
    """Set a new password; the administrator's browser sessions end."""
    password = _password()
    with _store().transaction() as session:
        accounts.set_password(session, accounts.get_administrator(session, email), password)
    console.print(f"password of {escape(email)} changed")


@admin_app.command("unlock")
def admin_unlock(
    email: Annotated[str, typer.Argument(help="The administrator's email.")],
    address: Annotated[
        str | None, typer.Option("--address", help="Also forget the failures counted for this client address.")
    ] = None,
) -> None:
    """Let an administrator locked out by failed sign-ins try again now, instead of after the lockout."""
    with _store().transaction() as session:
        accounts.get_administrator(session, email)
        counted = sign_in.unlock(session, email, address)
    console.print(f"{escape(email)} may sign in again" if counted else f"{escape(email)} was not locked out")


@admin_app.command("list")
def admin_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List administrators."""
    with _store().read() as session:
        data: list[dict[str, Any]] = [
            {
                "email": a.email,
                "disabled": a.disabled,
                "created_at": a.created_at.isoformat(),
                "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None,
            }
            for a in accounts.list_administrators(session)
        ]
    if as_json:
        return print_json(data)
    print_table(
        "Administrators",
        ["email", "created", "last sign-in"],
        ((a["email"], when(a["created_at"]), when(a["last_login_at"])) for a in data),
    )


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the token, e.g. terraform.")],
    scope: Annotated[str, typer.Option("--scope", help="read (GET only) or write (everything).")] = "write",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API token and print it once; only its hash is stored."""
    with _store().transaction() as session:
        issued = accounts.create_token(session, name, scope=scope, created_by="cli")
        data = {"id": issued.token.id, "name": issued.token.name, "scope": issued.token.scope, "token": issued.secret}
    if as_json:
        return print_json(data)
    console.print(
        f"token {data['id']} {escape(repr(data['name']))} ({data['scope']}); copy it now, it is not shown again:"
    )
    print(data["token"])


@tokens_app.command("list")
def tokens_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API tokens (never their secrets)."""
    with _store().read() as session:
        data: list[dict[str, Any]] = [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "scope": t.scope,
                "created_by": t.created_by,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in accounts.list_tokens(session)
        ]
    if as_json:
        return print_json(data)
    print_table(
        "API tokens",
        ["id", "name", "prefix", "scope", "created", "last used", "revoked"],
        (
            (
                t["id"],
                t["name"],
                t["prefix"] + "…",
                t["scope"],
                when(t["created_at"]),
                when(t["last_used_at"]),
                when(t["revoked_at"]) if t["revoked_at"] else "",
            )
            for t in data
        ),
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="Token id (see `accessiq tokens list`).")]) -> None:
    """Revoke a token: it stops working at once."""
    with _store().transaction() as session:
        token = accounts.revoke_token(session, token_id)
        console.print(f"revoked token {token.id} {escape(repr(token.name))}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    """Add `admin` and `tokens` to the `accessiq` command."""
    app.add_typer(admin_app, name="admin")
    app.add_typer(tokens_app, name="tokens")
