"""How the web UI answers failures: sign-in redirects, CSRF refusals and error pages in the layout."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from accessiq.web.security import LoginRequiredError, login_url
from accessiq.web.templating import redirect, render

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    422: "Cannot accept that",
    500: "Something went wrong",
    502: "The directory did not answer",
}


def login_required(request: Request, exc: LoginRequiredError) -> Response:
    return redirect(request, login_url(exc.next_url))


def csrf_failed(request: Request) -> Response:
    return error_page(request, 403, "The form was stale or did not come from this site. Reload the page and try again.")


def error_page(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": TITLES.get(status, "Error"),
            "message": message,
            "hint": hint,
        },
        status_code=status,
    )
