"""Local sandboxes that speak a directory provider's real API, for demos and tests (one per provider)."""

from __future__ import annotations

import typer
from typer import _click as click  # the Click that Typer vendors: its group types are these
from typer.core import TyperGroup

from accessiq.services import providers


class SandboxGroup(TyperGroup):
    """Lists the providers that have a sandbox; loads a sandbox's commands on first use.

    A sandbox module is imported only when its command runs, so `accessiq` starts without
    loading every sandbox, and one provider's missing package never breaks another's command.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(p.name for p in providers.catalog() if p.available and p.sandbox)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        provider = next((p for p in providers.catalog() if p.name == cmd_name and p.available), None)
        spec = provider.load_sandbox() if provider is not None else None
        if provider is None or spec is None:
            return None
        command = typer.main.get_command(spec.commands)
        command.name = cmd_name
        command.help = command.help or provider.title
        return command


app = typer.Typer(
    cls=SandboxGroup,
    help="Local sandboxes that speak a directory provider's real API, for demos and tests.",
    no_args_is_help=True,
)


@app.callback()
def sandbox() -> None:
    """Local sandboxes that speak a directory provider's real API, for demos and tests."""
