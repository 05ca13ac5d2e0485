"""Identity > Directory Sync: the list, the Add Directory wizard, each directory's dashboard and settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from accessiq.dependencies import LauncherDep, PolicyDep, StoreDep
from accessiq.errors import AccessIQError, ConfigurationError, FieldProblem
from accessiq.services import Store, configure, identity, providers, runs
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.sync.mapping import CORE_FIELDS
from accessiq.web import forms
from accessiq.web.chart import runs_chart
from accessiq.web.forms import FormDep
from accessiq.web.security import AdminDep
from accessiq.web.templating import redirect, render

if TYPE_CHECKING:
    from accessiq.store.tables import Directory

router = APIRouter(prefix="/directories", include_in_schema=False)

DirectoryId = Annotated[int, Path(ge=1, le=2**31 - 1)]

WIZARD_STEPS = (
    ("provider", "Provider"),
    ("credentials", "Credentials"),
    ("test", "Test connection"),
    ("settings", "Settings"),
    ("mappings", "Group mappings"),
    ("preview", "Preview"),
    ("schedule", "Apply & schedule"),
)
# The frequency presets of the settings form and the wizard, with their words ("every 15 minutes", "hourly").
FREQUENCY_PRESETS = tuple((value, configure.frequency_words(value)) for value in forms.FREQUENCY_PRESETS)


def _provider_titles() -> dict[str, str]:
    return {p.name: p.title for p in providers.catalog()}


def _shown_values(form: Any, provider: str) -> dict[str, Any]:
    """A refused connection form's values to show again: everything but its secrets."""
    return forms.connection_values(form, [f for f in configure.connection_fields(provider) if not f.secret])


def _wizard(step: str, directory: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    return {"steps": WIZARD_STEPS, "step": step, "directory": directory, "section": "directories", **context}


def _directory(session: Session, directory_id: int) -> tuple[Directory, dict[str, Any]]:
    found = dirs.get_directory(session, directory_id)
    return found, configure.directory_view(session, found)


def _reach(store: Store, directory_id: int, step: str) -> None:
    """The administrator is at this wizard step: an unfinished setup resumes here (written on a GET)."""
    with store.transaction(write=True) as session:
        configure.reach_setup_step(dirs.get_directory(session, directory_id), step)


def _choices(session: Session) -> dict[str, Any]:
    return {
        "organizations": identity.list_organizations(session),
        "roles": [r.name for r in identity.list_roles(session)],
    }


# -- the list ------------------------------------------------------------------------------------


@router.get("")
def directory_list(request: Request, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        listed = [configure.directory_view(session, d) for d in dirs.list_directories(session)]
        active = {d["id"]: _active_run(session, d["id"]) for d in listed}
    return render(
        request,
        "directories/list.html",
        {
            "directories": listed,
            "active": active,
            "provider_titles": _provider_titles(),
            "setup_labels": dict(WIZARD_STEPS),
            "section": "directories",
        },
    )


@router.get("/frequency-words")
def frequency_words(request: Request, admin: AdminDep, frequency_custom: str = Query("", max_length=200)) -> Response:
    """The words for a frequency being typed (htmx), or what is wrong with it."""
    return render(
        request,
        "directories/_frequency_words.html",
        {"frequency": frequency_custom, "frequency_problem": configure.frequency_check(frequency_custom)},
    )


def _active_run(session: Session, directory_id: int) -> dict[str, Any] | None:
    for run in runs.list_runs(session, dirs.get_directory(session, directory_id), limit=3):
        if run.status in runs.ACTIVE:
            return runs.run_json(session, run)
    return None


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
        values = _posted_connection(store, owner, provider, form)
        connection = {k: v for k, v in values.items() if v not in ("", None)}
        with store.transaction() as session:
            directory = configure.create_directory(
                session, store.secrets, {"name": name, "provider": provider, "connection": connection}, policy=policy
            )
            configure.reach_setup_step(directory, "test", start=True)
            directory_id = directory.id
    except AccessIQError as exc:
        shown = _shown_values(form, provider)
        error = forms.form_errors(exc, provider)
        pending = configure.seal_pending_secrets(store.secrets, owner, values, provider)
        return _credentials_page(request, name=name, provider=provider, values=shown, error=error, pending=pending)
    return redirect(request, f"/directories/{directory_id}/setup/test")


# -- the wizard: steps on a saved directory -------------------------------------------------------


@router.get("/{directory_id}/setup/credentials")
def wizard_edit_credentials(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "credentials")
    with store.transaction() as session:
        directory, data = _directory(session, directory_id)
        stored = configure.stored_secrets(store.secrets, directory)
    return _credentials_page(request, data, values=data["connection"], stored=stored)


@router.post("/{directory_id}/setup/credentials")
def wizard_edit_credentials_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    provider = _provider_of(store, directory_id)
    values, error = _save_connection(store, directory_id, provider, form, policy)
    if error:
        with store.transaction() as session:
            directory, data = _directory(session, directory_id)
            stored = configure.stored_secrets(store.secrets, directory)
        shown = _shown_values(form, provider)
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


def _provider_of(store: Store, directory_id: int) -> str:
    with store.transaction() as session:
        return dirs.get_directory(session, directory_id).provider


def _posted_connection(store: Store, owner: int | str, provider: str, form: Any) -> dict[str, Any]:
    """The connection as the form has it: a secret left empty takes the one the page carried back, if any.

    `owner` is the directory's id, or `configure.pending_owner` for a directory being added.
    """
    fields = configure.connection_fields(provider)
    values = forms.connection_values(form, fields)
    carried = configure.open_pending_secrets(store.secrets, owner, forms.pending_tokens(form, fields))
    for name, secret in carried.items():
        if not values.get(name):
            values[name] = secret
    return values


def _save_connection(
    store: Store, directory_id: int, provider: str, form: Any, policy: InputPolicy
) -> tuple[dict[str, Any], forms.FormErrors | None]:
    """(the connection posted, why it was refused or None when it is saved)."""
    try:
        values = _posted_connection(store, directory_id, provider, form)
    except AccessIQError as exc:
        return {}, forms.form_errors(exc, provider)
    return values, _store_connection(store, directory_id, provider, values, policy)


def _store_connection(
    store: Store, directory_id: int, provider: str, values: dict[str, Any], policy: InputPolicy
) -> forms.FormErrors | None:
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            configure.update_connection(session, store.secrets, directory, values, policy=policy)
    except AccessIQError as exc:
        return forms.form_errors(exc, provider)
    return None


@router.get("/{directory_id}/setup/test")
def wizard_test(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "test")
    result = configure.check_connection(store, directory_id)
    with store.transaction() as session:
        _, data = _directory(session, directory_id)
    result = forms.labelled_result(result, data["provider"])
    return render(request, "directories/wizard_test.html", _wizard("test", data, result=result))


@router.get("/{directory_id}/setup/settings")
def wizard_settings(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "settings")
    return render(
        request,
        "directories/wizard_settings.html",
        _wizard(
            "settings",
            **_form_context(store, directory_id),
        ),
    )


def _form_context(store: Store, directory_id: int, **extra: Any) -> dict[str, Any]:
    """What the settings and group-mapping forms show: the directory, its source groups, the choices."""
    with store.transaction() as session:
        _, data = _directory(session, directory_id)
        choices = _choices(session)
    groups, groups_error = _source_groups(store, directory_id)
    return {
        "directory": data,
        "settings": data["settings"],
        "mappings": data["group_mappings"],
        "source_groups": groups,
        "groups_error": groups_error,
        "frequency_presets": FREQUENCY_PRESETS,
        **choices,
        **extra,
    }


def _source_groups(store: Store, directory_id: int) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return configure.source_groups(store, directory_id), None
    except AccessIQError as exc:
        return [], str(exc)


@router.post("/{directory_id}/setup/settings")
def wizard_settings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    patch = forms.settings_patch(form)
    error = _save_settings(store, directory_id, policy, patch)
    if error:
        context = _refused_settings_context(store, directory_id, patch, error)
        return render(request, "directories/wizard_settings.html", _wizard("settings", **context), status_code=422)
    return redirect(request, f"/directories/{directory_id}/setup/mappings")


def _save_settings(
    store: Store, directory_id: int, policy: InputPolicy, patch: dict[str, Any], *, finish_setup: bool = False
) -> forms.FormErrors | None:
    """Save a settings patch (and with `finish_setup`, mark the wizard done); the form's errors when refused."""
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            configure.update_settings(session, store.secrets, directory, patch, policy=policy)
            if finish_setup:
                configure.finish_setup(directory)
    except AccessIQError as exc:
        return forms.form_errors(exc)
    return None


def _refused_settings_context(
    store: Store, directory_id: int, patch: dict[str, Any], error: forms.FormErrors
) -> dict[str, Any]:
    """The settings form again with what was typed, not the saved values, and every problem beside its field."""
    context = _form_context(store, directory_id, error=error)
    saved = context["settings"]
    shown = {**saved, **patch}
    for part in ("safety", "user_filter"):
        shown[part] = {**saved[part], **(patch.get(part) or {})}
    context["settings"] = shown
    return context


@router.get("/{directory_id}/setup/mappings")
def wizard_mappings(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    _reach(store, directory_id, "mappings")
    return render(
        request,
        "directories/wizard_mappings.html",
        _wizard(
            "mappings",
            **_form_context(store, directory_id),
        ),
    )


@router.post("/{directory_id}/setup/mappings")
def wizard_mappings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    error = _save_mappings(store, directory_id, form, policy)
    if error:
        context = _form_context(store, directory_id, error=error, mappings=_posted_mappings(form))
        return render(request, "directories/wizard_mappings.html", _wizard("mappings", **context), status_code=422)
    return redirect(request, f"/directories/{directory_id}/setup/preview")


@router.post("/{directory_id}/setup/mappings/organization")
def wizard_mappings_new_organization(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep
) -> Response:
    context, status = _new_organization(store, directory_id, form)
    return render(request, "directories/wizard_mappings.html", _wizard("mappings", **context), status_code=status)


def _new_organization(store: Store, directory_id: int, form: Any) -> tuple[dict[str, Any], int]:
    """Create the organization typed below the mapping rows; the rows come back as posted, unsaved.

    A row that names a group but no organization yet gets the new one chosen.
    """
    slug, name = forms.text(form, "new_org_slug"), forms.text(form, "new_org_name")
    rows = _posted_mappings(form)
    try:
        with store.transaction() as session:
            identity.create_organization(session, slug, name or None)
    except AccessIQError as exc:
        return _form_context(store, directory_id, mappings=rows, org_error=str(exc), org_slug=slug, org_name=name), 422
    waiting = next((row for row in rows if row["source_group"] and not row["organization"]), None)
    if waiting is not None:
        waiting["organization"] = slug
    message = f"Organization {slug} created. The mappings below are not saved yet."
    return _form_context(store, directory_id, mappings=rows, flash={"kind": "success", "message": message}), 200


def _posted_mappings(form: Any) -> list[dict[str, str]]:
    return [
        {"source_group": g, "organization": o, "role": r}
        for g, o, r in zip(
            forms.texts(form, "source_group"),
            forms.texts(form, "organization"),
            forms.texts(form, "role"),
            strict=False,
        )
    ]


def _save_mappings(store: Store, directory_id: int, form: Any, policy: InputPolicy) -> forms.FormErrors | None:
    rows: list[tuple[int, Any]] = []
    try:
        rows = forms.group_mappings(form)
        with store.transaction() as session:
            configure.replace_group_mappings(
                session, store.secrets, dirs.get_directory(session, directory_id), [m for _, m in rows], policy=policy
            )
    except ConfigurationError as exc:
        return forms.form_errors(_on_page_rows(exc, [number for number, _ in rows]))
    except AccessIQError as exc:
        return forms.form_errors(exc)
    return None


_MAPPING_FIELD = re.compile(r"group_mappings\[(\d+)\]")


def _on_page_rows(error: ConfigurationError, rows: list[int]) -> ConfigurationError:
    """The refusal with each `group_mappings[i]` (the i-th mapping saved) as the row the page shows it on."""

    def row(found: re.Match[str]) -> str:
        index = int(found[1])
        return f"group_mappings[{rows[index] - 1}]" if index < len(rows) else found[0]

    problems = [FieldProblem(p.field and _MAPPING_FIELD.sub(row, p.field), p.message) for p in error.problems]
    return ConfigurationError(problems[0].message, field=problems[0].field, problems=problems)


@router.get("/{directory_id}/setup/preview")
def wizard_preview(
    request: Request,
    directory_id: DirectoryId,
    store: StoreDep,
    admin: AdminDep,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    _reach(store, directory_id, "preview")
    with store.transaction() as session:
        _, data = _directory(session, directory_id)
        shown = runs.run_json(session, runs.get_run(session, run), changes=True) if run else None
    if shown is not None and shown["directory"]["id"] != directory_id:
        shown = None
    return render(request, "directories/wizard_preview.html", _wizard("preview", data, run=shown))


@router.post("/{directory_id}/setup/preview")
def wizard_preview_start(
    request: Request, directory_id: DirectoryId, store: StoreDep, launcher: LauncherDep, admin: AdminDep
) -> Response:
    run_id = _request_sync(store, launcher, directory_id, dry_run=True)
    return redirect(request, f"/directories/{directory_id}/setup/preview?run={run_id}")


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
    with store.transaction() as session:
        _, data = _directory(session, directory_id)
        shown = runs.run_json(session, runs.get_run(session, run)) if run else None
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
    error = _save_settings(
        store, directory_id, policy, {"frequency": frequency, "schedule_enabled": enabled}, finish_setup=True
    )
    if error:
        with store.transaction() as session:
            _, data = _directory(session, directory_id)
        return _schedule_page(request, data, frequency=frequency, error=error)
    message = (
        f"Setup complete. Automatic sync is on: {configure.frequency_words(frequency)}."
        if enabled
        else "Setup complete. Automatic sync is off; use Sync Now or enable it in Settings."
    )
    return redirect(request, f"/directories/{directory_id}", message)


# -- the dashboard and Sync Now ------------------------------------------------------------------


@router.get("/{directory_id}")
def dashboard(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        directory, data = _directory(session, directory_id)
        recent = [runs.run_json(session, r) for r in runs.list_runs(session, directory, limit=20)]
        # The last applied sync may be older than the recent runs (after many dry runs).
        last_applied = dirs.last_finished_run(session, directory, applied=True)
        applied = runs.run_json(session, last_applied) if last_applied else None
    active = next((r for r in recent if r["status"] in runs.ACTIVE), None)
    finished = [r for r in recent if r["status"] not in runs.ACTIVE]
    last = finished[0] if finished else None
    blocked = [r for r in finished if r["status"] == "blocked" and r["pending_approval"]]
    return render(
        request,
        "directories/dashboard.html",
        {
            "section": "directories",
            "tab": "dashboard",
            "directory": data,
            "active": active,
            # The last attempt is shown apart only when it is not the last applied sync.
            "attempt": last if last and (applied is None or last["id"] != applied["id"]) else None,
            "applied": applied,
            "blocked": blocked,
            "recent": finished[:8],
            "chart": runs_chart(list(reversed(finished[:20]))),
            "next_sync": _next_sync(data),
            "setup_labels": dict(WIZARD_STEPS),
        },
    )


def _next_sync(directory: dict[str, Any]) -> dict[str, Any] | None:
    """When the scheduler runs the directory next, as the scheduler itself computes it."""
    schedule = directory["schedule"]
    if schedule.get("next_run_at") is None:
        return None
    return {
        "at": schedule["next_run_at"],
        "frequency": schedule["frequency"],
        "backoff_until": schedule.get("backoff_until"),
        "failures": schedule.get("consecutive_failures", 0),
        "stale": schedule.get("stale", False),
    }


@router.post("/{directory_id}/sync")
def sync_now(
    request: Request,
    directory_id: DirectoryId,
    store: StoreDep,
    launcher: LauncherDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    dry_run = form.get("dry_run") == "1"
    with store.transaction() as session:
        unfinished = dirs.pending_setup_step(session, dirs.get_directory(session, directory_id))
    if unfinished is not None:
        # An unfinished setup has never been previewed: its first sync is applied from a preview.
        return redirect(
            request,
            f"/directories/{directory_id}/setup/preview",
            "Setup is not finished: preview the first sync, review what it would change, then apply it.",
            "info",
        )
    with store.transaction() as session:
        run, created = runs.request_sync(
            session, dirs.get_directory(session, directory_id), trigger="manual", dry_run=dry_run
        )
        run_id, status = run.id, run.status
    if created:
        launcher.launch(run_id)
        # No banner of its own: the run's live progress says queued, running, then how it ended.
        return redirect(request, f"/directories/{directory_id}")
    return redirect(
        request, f"/directories/{directory_id}", f"Run #{run_id} is already {status}; showing its progress.", "info"
    )


# -- connection, settings, group mappings, attribute mapping --------------------------------------


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
        directory, data = _directory(session, directory_id)
        stored = configure.stored_secrets(store.secrets, directory)
    return render(
        request,
        "directories/connection.html",
        {
            "section": "directories",
            "tab": "connection",
            "directory": data,
            "fields": configure.connection_fields(data["provider"]),
            "values": data["connection"] if form is None else _shown_values(form, data["provider"]),
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
    provider = _provider_of(store, directory_id)
    values: dict[str, Any] = {}
    try:
        values = _posted_connection(store, directory_id, provider, form)
        result = forms.labelled_result(
            configure.check_connection_values(store, directory_id, values, policy=policy), provider
        )
    except AccessIQError as exc:
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _connection_page(request, store, directory_id, form, forms.form_errors(exc, provider), pending=pending)
    if not result["ok"] and form.get("confirm_failing") != "1":
        pending = configure.seal_pending_secrets(store.secrets, directory_id, values, provider)
        return _connection_page(request, store, directory_id, form, result=result, pending=pending)
    error = _store_connection(store, directory_id, provider, values, policy)
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
    provider = _provider_of(store, directory_id)
    try:
        values = _posted_connection(store, directory_id, provider, form)
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
            **_form_context(store, directory_id),
        },
    )


@router.post("/{directory_id}/settings")
def settings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    patch = forms.settings_patch(form, schedule=True)
    error = _save_settings(store, directory_id, policy, patch)
    if error:
        return render(
            request,
            "directories/settings.html",
            {
                "section": "directories",
                "tab": "settings",
                **_refused_settings_context(store, directory_id, patch, error),
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
            **_form_context(store, directory_id),
        },
    )


@router.post("/{directory_id}/mappings")
def mappings_save(
    request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep, form: FormDep, policy: PolicyDep
) -> Response:
    error = _save_mappings(store, directory_id, form, policy)
    if error:
        return render(
            request,
            "directories/mappings.html",
            {
                "section": "directories",
                "tab": "mappings",
                **_form_context(store, directory_id, error=error, mappings=_posted_mappings(form)),
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
    context, status = _new_organization(store, directory_id, form)
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
        _, data = _directory(session, directory_id)
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
            _, data = _directory(session, directory_id)
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


@router.post("/{directory_id}/delete")
def delete(request: Request, directory_id: DirectoryId, store: StoreDep, admin: AdminDep) -> Response:
    try:
        with store.transaction() as session:
            directory = dirs.get_directory(session, directory_id)
            name = directory.name
            dirs.delete_directory(session, directory)
    except AccessIQError as exc:
        return redirect(request, f"/directories/{directory_id}/settings", str(exc), "error")
    return redirect(request, "/directories", f"Directory {name} deleted. Its users remain as local users.")
