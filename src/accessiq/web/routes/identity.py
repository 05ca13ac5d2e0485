"""Users, groups and organizations pages: review what sync did; a few manual actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from accessiq.dependencies import PlainRef, StoreDep
from accessiq.errors import AccessIQError
from accessiq.services import access, identity
from accessiq.services import directories as dirs
from accessiq.web import forms
from accessiq.web.forms import FormDep
from accessiq.web.security import AdminDep, safe_next
from accessiq.web.templating import redirect, render

router = APIRouter(include_in_schema=False)

USERS_PER_PAGE = 50
MEMBERS_PER_PAGE = 100
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
GroupId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/users")
def user_list(
    request: Request,
    store: StoreDep,
    admin: AdminDep,
    directory: Annotated[str | None, Query(max_length=200), PlainRef] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    with store.transaction() as session:
        found = dirs.get_directory(session, directory) if directory else None
        listed = identity.list_users(
            session,
            found,
            status=status if status in ("active", "deactivated") else None,
            search=q or None,
            limit=USERS_PER_PAGE + 1,
            offset=(page - 1) * USERS_PER_PAGE,
        )
        users = identity.users_json(session, listed[:USERS_PER_PAGE])
        directories = [{"id": d.id, "name": d.name} for d in dirs.list_directories(session)]
    return render(
        request,
        "identity/users.html",
        {
            "section": "users",
            "users": users,
            "directories": directories,
            "directory": directory or "",
            "status": status or "",
            "q": q or "",
            "page": page,
            "more": len(listed) > USERS_PER_PAGE,
        },
    )


@router.get("/users/{user_id}")
def user_detail(request: Request, user_id: UserId, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        found = identity.get_user(session, user_id)
        user = identity.users_json(session, [found])[0]
        groups = identity.user_groups(session, found)
        # Said before the Activate button is pressed, and for as long as it holds after.
        warning = identity.reactivation_warning(session, found)
    return render(
        request, "identity/user.html", {"section": "users", "user": user, "groups": groups, "warning": warning}
    )


@router.post("/users/{user_id}/{action}")
def user_action(
    request: Request,
    user_id: UserId,
    action: Annotated[str, Path(pattern="^(activate|deactivate)$")],
    store: StoreDep,
    admin: AdminDep,
) -> Response:
    with store.transaction() as session:
        user = identity.get_user(session, user_id)
        if action == "activate":
            warning = identity.reactivation_warning(session, user)
            identity.activate_user(session, user)
        else:
            identity.deactivate_user(session, user)
        email = user.email
    if action == "deactivate":
        return redirect(request, f"/users/{user_id}", f"{email} is deactivated. Sync will not reactivate this user.")
    if warning:
        # The page repeats why in full, under the heading; the message only points there.
        return redirect(
            request, f"/users/{user_id}", f"{email} is active, but only until the next sync: see below.", "warn"
        )
    return redirect(request, f"/users/{user_id}", f"{email} is active.")


@router.get("/groups")
def group_list(
    request: Request,
    store: StoreDep,
    admin: AdminDep,
    directory: Annotated[str | None, Query(max_length=200), PlainRef] = None,
) -> Response:
    with store.transaction() as session:
        found = dirs.get_directory(session, directory) if directory else None
        groups = identity.list_groups(session, found)
        directories = [{"id": d.id, "name": d.name} for d in dirs.list_directories(session)]
    return render(
        request,
        "identity/groups.html",
        {
            "section": "groups",
            "groups": groups,
            "directories": directories,
            "directory": directory or "",
        },
    )


@router.get("/groups/{group_id}")
def group_detail(
    request: Request,
    group_id: GroupId,
    store: StoreDep,
    admin: AdminDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    with store.transaction() as session:
        group = access.group_detail(session, identity.get_group(session, group_id))
    start = (page - 1) * MEMBERS_PER_PAGE
    return render(
        request,
        "identity/group.html",
        {
            "section": "groups",
            "group": group,
            "members": group["members"][start : start + MEMBERS_PER_PAGE],
            "page": page,
            "more": len(group["members"]) > start + MEMBERS_PER_PAGE,
        },
    )


@router.get("/organizations")
def organization_list(request: Request, store: StoreDep, admin: AdminDep) -> Response:
    with store.transaction() as session:
        organizations = identity.list_organizations(session)
        roles = [{"name": r.name, "rank": r.rank, "builtin": r.builtin} for r in identity.list_roles(session)]
    return render(
        request,
        "identity/organizations.html",
        {
            "section": "organizations",
            "organizations": organizations,
            "roles": roles,
        },
    )


@router.post("/organizations")
def organization_create(request: Request, store: StoreDep, admin: AdminDep, form: FormDep) -> Response:
    slug, name = forms.text(form, "slug"), forms.text(form, "name")
    back = safe_next(forms.text(form, "next") or "/organizations")
    try:
        with store.transaction() as session:
            identity.create_organization(session, slug, name or None)
    except AccessIQError as exc:
        return redirect(request, back, str(exc), "error")
    return redirect(request, back, f"Organization {slug} created.")


@router.get("/organizations/{slug}")
def organization_detail(
    request: Request,
    slug: Annotated[str, Path(max_length=100), PlainRef],
    store: StoreDep,
    admin: AdminDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    with store.transaction() as session:
        org = identity.get_organization(session, slug)
        members = identity.organization_members(
            session, org, limit=MEMBERS_PER_PAGE + 1, offset=(page - 1) * MEMBERS_PER_PAGE
        )
        sources = access.organization_sources(session, org)
        organization = {"id": org.id, "slug": org.slug, "name": org.name}
    return render(
        request,
        "identity/organization.html",
        {
            "section": "organizations",
            "organization": organization,
            "sources": sources,
            "members": members[:MEMBERS_PER_PAGE],
            "page": page,
            "more": len(members) > MEMBERS_PER_PAGE,
        },
    )
