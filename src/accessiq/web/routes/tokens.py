"""Settings > API tokens: create (the secret is shown once), list and revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from accessiq.dependencies import StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import accounts
from accessiq.web import forms
from accessiq.web.forms import FormDep
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/settings/tokens", include_in_schema=False)


def _page(request: Request, store: StoreDep, **extra: object) -> Response:
    with store.transaction() as session:
        tokens = accounts.list_tokens(session)
    return render(
        request,
        "tokens.html",
        {"section": "tokens", "tokens": tokens, "scopes": accounts.SCOPES, **extra},
        status_code=422 if extra.get("error") else 200,
    )


@router.get("")
def token_list(request: Request, store: StoreDep, admin: AdminDep) -> Response:
    return _page(request, store)


@router.post("")
def token_create(request: Request, store: StoreDep, admin: AdminDep, form: FormDep) -> Response:
    try:
        with store.transaction() as session:
            issued = accounts.create_token(
                session, forms.text(form, "name"), scope=forms.text(form, "scope") or "read", created_by=admin.email
            )
            name, secret = issued.token.name, issued.secret
    except AccessIQError as exc:
        return _page(request, store, error=str(exc))
    # Shown in this answer only; it is not stored anywhere in a readable form.
    response = _page(request, store, created={"name": name, "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/{token_id}/revoke")
def token_revoke(
    request: Request, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], store: StoreDep, admin: AdminDep
) -> Response:
    try:
        with store.transaction() as session:
            name = accounts.revoke_token(session, token_id).name
    except AccessIQError as exc:
        return redirect(request, "/settings/tokens", str(exc), "error")
    return redirect(request, "/settings/tokens", f"Token {name} revoked; it no longer works.")
