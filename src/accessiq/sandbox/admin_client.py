"""The client side of a sandbox's /_admin endpoint, for the `accessiq sandbox PROVIDER` subcommands."""

from __future__ import annotations

import json
from typing import Any

import httpx
import typer


def call_admin(
    provider: str, method: str, url: str, path: str, body: Any = None, params: dict[str, str] | None = None
) -> Any:
    """Call a running sandbox's admin endpoint; exit with its message on an error."""
    try:
        response = httpx.request(method, f"{url.rstrip('/')}/_admin{path}", json=body, params=params, timeout=30)
    except httpx.TransportError as exc:
        typer.echo(f"no sandbox answers at {url} ({exc}); start one with `accessiq sandbox {provider}`", err=True)
        raise typer.Exit(6) from None
    data = response.json() if response.content else {}
    if response.status_code >= 400:
        typer.echo(str(data.get("detail") if isinstance(data, dict) else data), err=True)
        raise typer.Exit(3 if response.status_code == 404 else 2)
    return data


def show(data: Any, as_json: bool, summary: str) -> None:
    """The admin endpoint's JSON answer, or a one-line summary."""
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else summary)
