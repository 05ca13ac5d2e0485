"""A push directory's SCIM endpoint in the web UI: its base URL, its tokens, a new token shown once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accessiq.dependencies import StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import directories as dirs
from accessiq.services import scim_tokens
from accessiq.web.forms import FormDep
from accessiq.web.routes.directory_forms import DirectoryId
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/directories", include_in_schema=False)


def base_url(request: Request, directory_id: int) -> str:
    """Where identity providers reach the directory's SCIM endpoint, as this request reached the server."""
    return f"{str(request.base_url).rstrip('/')}/scim/v2/{directory_id}"


def scim_panel(request: Request, store: StoreDep, directory_id: int) -> dict[str, Any] | None:
    """What the SCIM card shows for a directory that receives pushes (None for one that does not)."""
    with store.read() as session:
        directory = dirs.get_directory(session, directory_id)
        if not scim_tokens.receives_pushes(directory):
            return None
        tokens = scim_tokens.token_summaries(session, directory)
    return {"base_url": base_url(request, directory_id), "tokens": tokens}


@router.post("/{directory_id}/scim-token")
def create_scim_token(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep
) -> Response:
    back = f"/directories/{directory_id}/setup/test" if form.get("from") == "setup" else f"/directories/{directory_id}"
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            issued = scim_tokens.issue_token(session, directory)
            name = directory.name
    except AccessIQError as exc:
        return redirect(request, back, str(exc), "error")
    # Shown in this answer only; the store keeps a digest.
    response = render(
        request,
        "directories/scim_token.html",
        {
            "section": "directories",
            "name": name,
            "base_url": base_url(request, directory_id),
            "token": issued.token,
            "previous_expire_at": issued.previous_expire_at,
            "back": back,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response
