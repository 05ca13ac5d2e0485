"""Directory providers this server offers and how each one's connection is given."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from accessiq.cli.output import console, print_json, print_table
from accessiq.services import providers
from accessiq.services.providers import Provider

app = typer.Typer(help="Directory providers this server offers and how each one's connection is given.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]


def _state(provider: Provider) -> str:
    if provider.available:
        return "available"
    if provider.install_hint == "planned":
        return "planned"
    return f"not installed: {provider.install_hint or 'missing a dependency'}"


@app.command("list")
def providers_list(as_json: JsonFlag = False) -> None:
    """List every provider: name, title, whether it can be used here, incremental reads, sandbox."""
    listed = providers.catalog()
    if as_json:
        return print_json([p.json() for p in listed])
    print_table(
        "Providers",
        ["name", "title", "state", "incremental", "sandbox"],
        ((p.name, p.title, _state(p), "yes" if p.incremental else "no", "yes" if p.sandbox else "no") for p in listed),
    )


@app.command("show")
def providers_show(
    name: Annotated[str, typer.Argument(help="Provider name, as in a directory document's `provider`.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a provider and the fields of its `connection` block (with --json, their JSON schema)."""
    provider = providers.find_provider(name)
    if as_json:
        return print_json(provider.json())
    console.print(f"[bold]{escape(provider.title)}[/bold] ({escape(provider.name)}, {escape(_state(provider))})")
    console.print(provider.description, markup=False)
    if provider.fields:
        console.print("\nconnection:")
    for field in provider.fields:
        facts = [field.kind, "required" if field.required else "optional"]
        if field.default not in (None, "", [], ()):
            facts.append(f"default {field.default}")
        console.print(f"  {field.name}: {field.label} ({', '.join(facts)})", markup=False)
        if field.help:
            console.print(f"      {field.help}", markup=False)
