"""Local sandboxes that speak a directory provider's real API, for demos and tests (one per provider)."""

from __future__ import annotations

import typer

from accessiq.services import providers

app = typer.Typer(
    help="Local sandboxes that speak a directory provider's real API, for demos and tests.",
    no_args_is_help=True,
)

for _provider in providers.catalog():
    if _provider.available and _provider.sandbox:
        _spec = _provider.load_sandbox()
        if _spec is not None:
            app.add_typer(_spec.commands, name=_provider.name, help=_spec.commands.info.help or _provider.title)
