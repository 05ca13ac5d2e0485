"""The admin web UI: server-rendered Jinja2 pages with htmx (vendored in static/, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

STATIC = Path(__file__).parent / "static"


def build_router() -> APIRouter:
    """Every page of the UI."""
    from accessiq.web.routes import auth, directories, identity, runs, tokens

    router = APIRouter(include_in_schema=False)
    for module in (auth, directories, runs, identity, tokens):
        router.include_router(module.router)
    return router


__all__ = ["STATIC", "build_router"]
