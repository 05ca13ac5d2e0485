"""The Add Directory wizard: provider and credentials before the directory exists, then the setup steps on the saved
directory (test, settings, group mappings, preview, apply and schedule)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from accessiq.dependencies import LauncherDep, PolicyDep, StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import Store, configure, providers, runs
from accessiq.services import directories as dirs
from accessiq.web import forms
from accessiq.web.forms import FormDep
from accessiq.web.routes.directory_forms import (
    FREQUENCY_PRESETS,
    DirectoryId,
    form_context,
    load_directory,
    new_organization,
    posted_connection,
    posted_mappings,
    provider_of,
    refused_settings_context,
    save_connection,
    save_mappings,
    save_settings,
    shown_values,
)
from accessiq.web.routes.directory_scim import scim_panel
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

router = APIRouter(prefix="/directories", include_in_schema=False)


WIZARD_STEPS = (
    ("provider", "Provider"),
    ("credentials", "Credentials"),
    ("test", "Test connection"),
    ("settings", "Settings"),
    ("mappings", "Group mappings"),
    ("preview", "Preview"),
    ("schedule", "Apply & schedule"),
)


def _wizard(step: str, directory: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    return {"steps": WIZARD_STEPS, "step": step, "directory": directory, "section": "directories", **context}


def _reach(store: Store, directory_id: int, step: str) -> None:
    """The administrator is at this wizard step: an unfinished setup resumes here (written on a GET)."""
    with store.transaction(write=True) as session:
        configure.reach_setup_step(dirs.get_directory(session, directory_id), step)


# -- the wizard: provider and credentials (no directory yet) -------------------------------------


@router.get("/new")
def wizard_provider(request: Request, admin: AdminDep, name: str = "", provider: str = "") -> Response:
    return render(
        request,
        "directories/wizard_provider.html",
        _wizard(
            "provider",
            providers=providers.catalog(),
            name=name,
            provider=provider,
        ),
    )


@router.post("/new")
def wizard_provider_next(request: Request, store: StoreDep, admin: AdminDep, form: FormDep) -> Response:
    name, provider = forms.text(form, "name"), forms.text(form, "provider")
    error = None
    if not name:
        error = "Give the directory a name, e.g. the company or tenant it connects."
    elif provider not in providers.available_names():
        error = "Choose one of the available providers."
    else:
        with store.transaction() as session:
            try:
                dirs.get_directory(session, name)
                error = f"A directory named {name!r} already exists."
            except AccessIQError:
                pass
    if error:
        return render(
            request,
            "directories/wizard_provider.html",
            _wizard(
                "provider",
                providers=providers.catalog(),
                name=name,
                provider=provider,
                error=error,
            ),
            status_code=422,
        )
    return redirect(request, "/directories/new/credentials?" + urlencode({"name": name, "provider": provider}))


@router.get("/new/credentials")
def wizard_credentials(request: Request, admin: AdminDep, name: str = "", provider: str = "") -> Response:
    if provider not in providers.available_names() or not name:
        return redirect(request, "/directories/new")
    return _credentials_page(request, name=name, provider=provider, values={})


@router.post("/new/credentials")
def wizard_credentials_save(
    request: Request, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    name, provider = forms.text(form, "name"), forms.text(form, "provider")
    if provider not in providers.available_names():
        return redirect(request, "/directories/new")
    owner = configure.pending_owner(name, provider)
    values: dict[str, Any] = {}
    try:
        values = posted_connection(store, owner, provider, form)
        connection = {k: v for k, v in values.items() if v not in ("", None)}
        with store.transaction() as session:
            directory = configure.create_directory(
                session, store.secrets, {"name": name, "provider": provider, "connection": connection}, policy=policy
            )
            configure.reach_setup_step(directory, "test", start=True)
            directory_id = directory.id
    except AccessIQError as exc:
        shown = shown_values(form, provider)
        error = forms.form_errors(exc, provider)
        pending = configure.seal_pending_secrets(store.secrets, owner, values, provider)
        return _credentials_page(request, name=name, provider=provider, values=shown, error=error, pending=pending)
    return redirect(request, f"/directories/{directory_id}/setup/test")


# -- the wizard: steps on a saved directory -------------------------------------------------------


@router.get("/{directory_id}/setup/credentials")
def wizard_edit_credentials(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "credentials")
    with store.transaction() as session:
        directory, data = load_directory(session, directory_id)
        stored = configure.stored_secrets(store.secrets, directory)
    return _credentials_page(request, data, values=data["connection"], stored=stored)


@router.post("/{directory_id}/setup/credentials")
def wizard_edit_credentials_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    provider = provider_of(store, directory_id)
    values, error = save_connection(store, directory_id, provider, form, policy)
    if error:
        with store.transaction() as session:
            directory, data = load_directory(session, directory_id)
            stored = configure.stored_secrets(store.secrets, directory)
        shown = shown_values(form, provider)
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _credentials_page(request, data, values=shown, stored=stored, error=error, pending=pending)
    return redirect(request, f"/directories/{directory_id}/setup/test")


def _credentials_page(
    request: Request,
    directory: dict[str, Any] | None = None,
    *,
    values: dict[str, Any],
    stored: frozenset[str] = frozenset(),
    name: str = "",
    provider: str = "",
    error: forms.FormErrors | None = None,
    pending: dict[str, str] | None = None,
) -> Response:
    """The credentials step, for a new directory (name and provider) or a saved one (`directory`)."""
    if directory is not None:
        name, provider = directory["name"], directory["provider"]
    return render(
        request,
        "directories/wizard_credentials.html",
        _wizard(
            "credentials",
            directory,
            name=name,
            provider=provider,
            provider_title=providers.get_provider(provider).title,
            fields=configure.connection_fields(provider),
            values=values,
            stored=stored,
            pending=pending or {},
            error=error,
        ),
        status_code=422 if error else 200,
    )


@router.get("/{directory_id}/setup/test")
def wizard_test(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "test")
    result = configure.check_connection(store, directory_id)
    with store.transaction() as session:
        _, data = load_directory(session, directory_id)
    result = forms.labelled_result(result, data["provider"])
    scim = scim_panel(request, store, directory_id)
    return render(request, "directories/wizard_test.html", _wizard("test", data, result=result, scim=scim))


@router.get("/{directory_id}/setup/settings")
def wizard_settings(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "settings")
    return render(
        request,
        "directories/wizard_settings.html",
        _wizard(
            "settings",
            **form_context(store, directory_id),
        ),
    )


@router.post("/{directory_id}/setup/settings")
def wizard_settings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    patch = forms.settings_patch(form)
    error = save_settings(store, directory_id, policy, patch)
    if error:
        context = refused_settings_context(store, directory_id, patch, error)
        return render(request, "directories/wizard_settings.html", _wizard("settings", **context), status_code=422)
    return redirect(request, f"/directories/{directory_id}/setup/mappings")


@router.get("/{directory_id}/setup/mappings")
def wizard_mappings(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "mappings")
    return render(
        request,
        "directories/wizard_mappings.html",
        _wizard(
            "mappings",
            **form_context(store, directory_id),
        ),
    )


@router.post("/{directory_id}/setup/mappings")
def wizard_mappings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    error = save_mappings(store, directory_id, form, policy)
    if error:
        context = form_context(store, directory_id, error=error, mappings=posted_mappings(form))
        return render(request, "directories/wizard_mappings.html", _wizard("mappings", **context), status_code=422)
    return redirect(request, f"/directories/{directory_id}/setup/preview")


@router.post("/{directory_id}/setup/mappings/organization")
def wizard_mappings_new_organization(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep
) -> Response:
    context, status = new_organization(store, directory_id, form)
    return render(request, "directories/wizard_mappings.html", _wizard("mappings", **context), status_code=status)


@router.get("/{directory_id}/setup/preview")
def wizard_preview(
    request: Request,
    directory_id: DirectoryId,
    store: StoreDep,
    admin: AdminDep,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    _reach(store, directory_id, "preview")
    data, shown = _step_with_run(store, directory_id, run, changes=True)
    return render(request, "directories/wizard_preview.html", _wizard("preview", data, run=shown))


@router.post("/{directory_id}/setup/preview")
def wizard_preview_start(
    request: Request, directory_id: DirectoryId, store: StoreDep, launcher: LauncherDep, admin: AdminDep
) -> Response:
    run_id = _request_sync(store, launcher, directory_id, dry_run=True)
    return redirect(request, f"/directories/{directory_id}/setup/preview?run={run_id}")


def _step_with_run(
    store: Store, directory_id: int, run: int | None, *, changes: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The directory and the run a step shows (`?run=`), unless that run is another directory's."""
    with store.transaction() as session:
        _, data = load_directory(session, directory_id)
        shown = runs.run_json(session, runs.get_run(session, run), changes=changes) if run else None
    if shown is not None and shown["directory"]["id"] != directory_id:
        shown = None
    return data, shown


def _request_sync(store: Store, launcher: Any, directory_id: int, *, dry_run: bool) -> int:
    with store.transaction() as session:
        run, created = runs.request_sync(
            session, dirs.get_directory(session, directory_id), trigger="manual", dry_run=dry_run
        )
        run_id = run.id
    if created:
        launcher.launch(run_id)
    return run_id


@router.post("/{directory_id}/setup/apply")
def wizard_apply(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep
) -> Response:
    run_text = forms.text(form, "run")
    try:
        applied = runs.approve(store, int(run_text) if run_text.isdigit() else 0)
    except AccessIQError as exc:
        return redirect(request, f"/directories/{directory_id}/setup/preview?run={run_text}", str(exc), "error")
    return redirect(
        request, f"/directories/{directory_id}/setup/schedule?run={applied.id}", "The previewed changes were applied."
    )


@router.get("/{directory_id}/setup/schedule")
def wizard_schedule(
    request: Request,
    directory_id: DirectoryId,
    store: StoreDep,
    admin: AdminDep,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    _reach(store, directory_id, "schedule")
    data, shown = _step_with_run(store, directory_id, run)
    return _schedule_page(request, data, run=shown, frequency=data["settings"]["frequency"])


def _schedule_page(
    request: Request,
    directory: dict[str, Any],
    *,
    frequency: str,
    run: dict[str, Any] | None = None,
    error: forms.FormErrors | None = None,
) -> Response:
    return render(
        request,
        "directories/wizard_schedule.html",
        _wizard(
            "schedule",
            directory,
            run=run,
            frequency=frequency,
            frequency_presets=FREQUENCY_PRESETS,
            error=error,
        ),
        status_code=422 if error else 200,
    )


@router.post("/{directory_id}/setup/schedule")
def wizard_schedule_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    enabled = form.get("schedule_enabled") == "on"
    frequency = forms.frequency(form)
    error = save_settings(
        store, directory_id, policy, {"frequency": frequency, "schedule_enabled": enabled}, finish_setup=True
    )
    if error:
        with store.transaction() as session:
            _, data = load_directory(session, directory_id)
        return _schedule_page(request, data, frequency=frequency, error=error)
    message = (
        f"Setup complete. Automatic sync is on: {configure.frequency_words(frequency)}."
        if enabled
        else "Setup complete. Automatic sync is off; use Sync Now or enable it in Settings."
    )
    return redirect(request, f"/directories/{directory_id}", message)
