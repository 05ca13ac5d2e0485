"""Rendering pages: the Jinja2 environment, its filters, flash messages and redirects."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from accessiq.services.configure import frequency_words
from accessiq.web import STATIC
from accessiq.web.security import FLASH_COOKIE, clear_cookie, set_cookie

TEMPLATES = Path(__file__).parent / "templates"
__all__ = ["STATIC", "TEMPLATES", "redirect", "render", "templates"]

templates = Jinja2Templates(directory=str(TEMPLATES))

STATUS_TONES = {
    "succeeded": "good",
    "succeeded_with_errors": "warn",
    "failed": "bad",
    "blocked": "bad",
    "canceled": "muted",
    "queued": "info",
    "running": "info",
    "lost": "bad",
    "active": "good",
    "deactivated": "muted",
}


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """`2026-05-04 13:02 UTC`, or an em dash."""
    moment = _as_datetime(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def ago(value: Any) -> str:
    """`3 minutes ago`, `in 2 hours`, `just now`."""
    moment = _as_datetime(value)
    if moment is None:
        return "never"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now" if not future else "in a moment"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def duration(run: dict[str, Any]) -> str:
    start, end = _as_datetime(run.get("started_at")), _as_datetime(run.get("finished_at"))
    if start is None or end is None:
        return "—"
    seconds = max((end - start).total_seconds(), 0)
    if seconds < 1:
        return "<1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def trigger(run: dict[str, Any]) -> str:
    """What started a run and how much it read, in one form everywhere: `manual · full`, `schedule · incremental`."""
    return f"{run['trigger']} · {run['mode']}"


def upper_first(text: str) -> str:
    """The text with its first letter capitalized and the rest as it is ("Daily at 02:00 UTC")."""
    return text[:1].upper() + text[1:]


def status_label(status: str | None) -> str:
    return (status or "").replace("_", " ")


def show_value(value: Any) -> str:
    """A before/after value as people read it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(show_value(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) or "—"
    return str(value)


templates.env.filters.update(
    when=when,
    ago=ago,
    duration=duration,
    trigger=trigger,
    status_label=status_label,
    show=show_value,
    frequency_words=frequency_words,
    upper_first=upper_first,
)
templates.env.globals["tone"] = lambda status: STATUS_TONES.get(status or "", "muted")


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page (or fragment) with the signed-in admin, CSRF token and flash message in its context."""
    admin = getattr(request.state, "admin", None)
    flash = _read_flash(request)
    data = {
        "admin": admin,
        "csrf_token": admin.csrf_token if admin else None,
        "flash": flash,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, data, status_code=status_code, headers=headers)
    if flash:
        clear_cookie(request, response, FLASH_COOKIE)
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, message = unquote(raw).partition("|")
    if kind not in ("success", "error", "info", "warn"):
        return None
    return {"kind": kind, "message": message[:500]}


def redirect(request: Request, url: str, flash: str | None = None, kind: str = "success") -> Response:
    """303 to `url` (or HX-Redirect for htmx), carrying a one-time message for the next page."""
    if request.headers.get("HX-Request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if flash:
        set_cookie(request, response, FLASH_COOKIE, quote(f"{kind}|{flash}"), max_age=60)
    return response
