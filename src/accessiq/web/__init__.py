"""The admin web UI: server-rendered Jinja2 pages with htmx (vendored in static/, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

STATIC = Path(__file__).parent / "static"


def build_router() -> APIRouter:
    """Every page of the UI."""
    from accessiq.web.routes import (
        auth,
        directories,
        directory_scim,
        directory_tabs,
        directory_wizard,
        identity,
        runs,
        tokens,
    )

    router = APIRouter(include_in_schema=False)
    # Routes match in order: the wizard's fixed paths (/directories/new) come before /directories/{directory_id}.
    for module in (auth, directory_wizard, directories, directory_scim, directory_tabs, runs, identity, tokens):
        router.include_router(module.router)
    return router


__all__ = ["STATIC", "build_router"]
