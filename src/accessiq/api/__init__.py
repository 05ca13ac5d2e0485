"""The REST API face under /api/v1 (plus /healthz and /metrics); `accessiq.server` mounts it."""

from __future__ import annotations

from accessiq.api.router import API_PREFIX, build_router

__all__ = ["API_PREFIX", "build_router"]
