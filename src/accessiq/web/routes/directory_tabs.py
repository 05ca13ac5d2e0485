"""A directory's tabs: its connection, settings, group mappings and attribute mapping."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accessiq.dependencies import PolicyDep, StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import Store, configure, providers
from accessiq.services import directories as dirs
from accessiq.sync.mapping import CORE_FIELDS
from accessiq.web import forms
from accessiq.web.forms import FormDep
from accessiq.web.routes.directory_forms import (
    DirectoryId,
    form_context,
    load_directory,
    new_organization,
    posted_connection,
    posted_mappings,
    provider_of,
    refused_settings_context,
    save_mappings,
    save_settings,
    shown_values,
    store_connection,
)
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/directories", include_in_schema=False)


@router.get("/{directory_id}/connection")
def connection_page(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    return _connection_page(request, store, directory_id)


def _connection_page(
    request: Request,
    store: Store,
    directory_id: int,
    form: Any = None,
    error: forms.FormErrors | None = None,
    *,
    result: dict[str, Any] | None = None,
    pending: dict[str, str] | None = None,
) -> Response:
    """The Connection tab: the saved connection, or a posted `form` again with its `error` or failed test `result`."""
    with store.transaction() as session:
        directory, data = load_directory(session, directory_id)
        stored = configure.stored_secrets(store.secrets, directory)
    return render(
        request,
        "directories/connection.html",
        {
            "section": "directories",
            "tab": "connection",
            "directory": data,
            "fields": configure.connection_fields(data["provider"]),
            "values": data["connection"] if form is None else shown_values(form, data["provider"]),
            "stored": stored,
            "pending": pending or {},
            "provider_title": providers.get_provider(data["provider"]).title,
            "error": error,
            "result": result,
        },
        status_code=422 if error or result else 200,
    )


@router.post("/{directory_id}/connection")
def connection_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    """Save the connection after testing it; a connection whose test fails is saved only once confirmed."""
    provider = provider_of(store, directory_id)
    values: dict[str, Any] = {}
    try:
        values = posted_connection(store, directory_id, provider, form)
        result = forms.labelled_result(
            configure.check_connection_values(store, directory_id, values, policy=policy), provider
        )
    except AccessIQError as exc:
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _connection_page(request, store, directory_id, form, forms.form_errors(exc, provider), pending=pending)
    if not result["ok"] and form.get("confirm_failing") != "1":
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _connection_page(request, store, directory_id, form, result=result, pending=pending)
    error = store_connection(store, directory_id, provider, values, policy)
    if error:
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _connection_page(request, store, directory_id, form, error, pending=pending)
    if not result["ok"]:
        return redirect(
            request,
            f"/directories/{directory_id}/connection",
            "Connection saved although its test failed: syncs will fail until it works.",
            "error",
        )
    return redirect(request, f"/directories/{directory_id}/connection", "Connection saved and tested.")


@router.post("/{directory_id}/test")
def connection_test(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    """The connection test as a fragment (htmx): the values on the page, saved or not; nothing is saved."""
    provider = provider_of(store, directory_id)
    try:
        values = posted_connection(store, directory_id, provider, form)
        result = forms.labelled_result(
            configure.check_connection_values(store, directory_id, values, policy=policy), provider
        )
    except AccessIQError as exc:
        problems = list(forms.form_errors(exc, provider).listed)
        result = {"ok": False, "details": [], "problems": problems, "kind": "configuration", "unsaved": True}
    return render(request, "directories/_test_result.html", {"result": result})


@router.get("/{directory_id}/settings")
def settings_page(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    return render(
        request,
        "directories/settings.html",
        {
            "section": "directories",
            "tab": "settings",
            **form_context(store, directory_id),
        },
    )


@router.post("/{directory_id}/settings")
def settings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    patch = forms.settings_patch(form, schedule=True)
    error = save_settings(store, directory_id, policy, patch)
    if error:
        return render(
            request,
            "directories/settings.html",
            {
                "section": "directories",
                "tab": "settings",
                **refused_settings_context(store, directory_id, patch, error),
            },
            status_code=422,
        )
    return redirect(request, f"/directories/{directory_id}/settings", "Settings saved.")


@router.get("/{directory_id}/mappings")
def mappings_page(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    return render(
        request,
        "directories/mappings.html",
        {
            "section": "directories",
            "tab": "mappings",
            **form_context(store, directory_id),
        },
    )


@router.post("/{directory_id}/mappings")
def mappings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    error = save_mappings(store, directory_id, form, policy)
    if error:
        return render(
            request,
            "directories/mappings.html",
            {
                "section": "directories",
                "tab": "mappings",
                **form_context(store, directory_id, error=error, mappings=posted_mappings(form)),
            },
            status_code=422,
        )
    return redirect(
        request, f"/directories/{directory_id}/mappings", "Group mappings saved. They take effect at the next sync."
    )


@router.post("/{directory_id}/mappings/organization")
def mappings_new_organization(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep
) -> Response:
    context, status = new_organization(store, directory_id, form)
    page = {"section": "directories", "tab": "mappings", **context}
    return render(request, "directories/mappings.html", page, status_code=status)


def _attribute_rows(provider: str, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    defaults = configure.default_mapping(provider)
    rows = []
    for target in sorted(defaults, key=lambda t: (t not in CORE_FIELDS, t)):
        if target in overrides and overrides[target] is None:
            continue
        rows.append(
            {
                "target": target,
                "source": overrides.get(target) or defaults[target],
                "default": defaults[target],
                "core": target in CORE_FIELDS,
            }
        )
    for target, source in sorted(overrides.items()):
        if target not in defaults and source is not None:
            rows.append({"target": target, "source": source, "default": None, "core": False})
    return rows


@router.get("/{directory_id}/attributes")
def attributes_page(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        _, data = load_directory(session, directory_id)
    return render(
        request,
        "directories/attributes.html",
        {
            "section": "directories",
            "tab": "attributes",
            "directory": data,
            "rows": _attribute_rows(data["provider"], data["settings"]["attribute_mapping"]),
            "removed": sorted(t for t, s in data["settings"]["attribute_mapping"].items() if s is None),
            **_mapping_help(data["provider"]),
        },
    )


def _mapping_help(provider: str) -> dict[str, Any]:
    return {
        "examples": configure.mapping_examples(provider),
        "provider_title": providers.get_provider(provider).title,
        "user_fields_checked": configure.checks_user_fields(provider),
    }


def _posted_overrides(provider: str, form: Any) -> dict[str, str | None]:
    defaults = configure.default_mapping(provider)
    overrides = forms.attribute_overrides(form, defaults)
    # Core fields cannot be unmapped: an empty row means "the provider default".
    return {t: s for t, s in overrides.items() if not (t in CORE_FIELDS and s is None)}


@router.post("/{directory_id}/attributes")
def attributes_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            overrides = _posted_overrides(directory.provider, form)
            configure.update_settings(
                session, store.secrets, directory, {"attribute_mapping": overrides}, policy=policy
            )
    except AccessIQError as exc:
        with store.transaction() as session:
            _, data = load_directory(session, directory_id)
        rows = [
            {"target": t, "source": s, "default": None, "core": t in CORE_FIELDS}
            for t, s in zip(forms.texts(form, "target"), forms.texts(form, "source"), strict=False)
        ]
        return render(
            request,
            "directories/attributes.html",
            {
                "section": "directories",
                "tab": "attributes",
                "directory": data,
                "rows": rows,
                "removed": [],
                "error": forms.form_errors(exc),
                **_mapping_help(data["provider"]),
            },
            status_code=422,
        )
    return redirect(
        request, f"/directories/{directory_id}/attributes", "Attribute mapping saved. It applies from the next sync."
    )


@router.post("/{directory_id}/attributes/preview")
def attributes_preview(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    """The live preview fragment: the mapping being edited, applied to sample users."""
    try:
        with store.transaction() as session:
            provider = dirs.get_directory(session, directory_id).provider
        preview = configure.preview_mapping(
            store, directory_id, _posted_overrides(provider, form), limit=5, policy=policy
        )
        error = None
    except AccessIQError as exc:
        preview, error = None, str(exc)
    return render(request, "directories/_attributes_preview.html", {"preview": preview, "error": error})
