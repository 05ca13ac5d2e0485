"""/api/v1 users, groups, organizations and roles: review what sync did; manage local things by hand."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status

from accessiq.api.deps import PageDep
from accessiq.api.routes.paging import paginate
from accessiq.api.schemas import (
    ActivatedUserOut,
    GroupOut,
    MemberIn,
    MembershipOut,
    OrganizationIn,
    OrganizationMemberOut,
    OrganizationOut,
    RoleIn,
    RoleOut,
    UserIn,
    UserOut,
)
from accessiq.dependencies import PlainRef, SessionDep
from accessiq.services import directories as dirs
from accessiq.services import identity

router = APIRouter()

UserRef = Annotated[str, Path(max_length=320, description="User id or email."), PlainRef]
OrgRef = Annotated[str, Path(max_length=100, description="Organization slug."), PlainRef]
DirectoryFilter = Annotated[str | None, Query(max_length=200, description="Directory id or name."), PlainRef]


# -- users ---------------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], tags=["users"])
def list_users(
    session: SessionDep,
    page: PageDep,
    response: Response,
    directory: DirectoryFilter = None,
    user_status: Annotated[
        Literal["active", "deactivated"] | None, Query(alias="status", description="Only this status.")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Search email and display name.")] = None,
) -> list[dict[str, Any]]:
    """Users with their groups and organization memberships, ordered by email."""
    found = dirs.get_directory(session, directory) if directory else None
    users = identity.list_users(
        session, found, status=user_status, search=q or None, limit=page.limit + 1, offset=page.offset
    )
    if len(users) > page.limit:
        response.headers["X-Next-Offset"] = str(page.offset + page.limit)
    return identity.users_json(session, users[: page.limit])


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, tags=["users"])
def create_user(body: UserIn, session: SessionDep) -> dict[str, Any]:
    """A local user that no directory manages."""
    user = identity.create_user(
        session, body.email, given_name=body.given_name, family_name=body.family_name, username=body.username
    )
    return identity.users_json(session, [user])[0]


@router.get("/users/{user}", response_model=UserOut, tags=["users"])
def get_user(user: UserRef, session: SessionDep) -> dict[str, Any]:
    """A user; each membership says why it exists (`granted_by`), `effective_roles` the highest per organization."""
    return identity.users_json(session, [identity.get_user(session, user)])[0]


@router.post("/users/{user}/deactivate", response_model=UserOut, tags=["users"])
def deactivate_user(user: UserRef, session: SessionDep) -> dict[str, Any]:
    """Deactivate as an administrator: sync will not reactivate the user."""
    found = identity.deactivate_user(session, identity.get_user(session, user))
    return identity.users_json(session, [found])[0]


@router.delete("/users/{user}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
def delete_user(user: UserRef, session: SessionDep) -> Response:
    """Delete a deactivated user with their memberships, so their email can be used again (409 if active)."""
    identity.delete_user(session, identity.get_user(session, user))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users/{user}/activate", response_model=ActivatedUserOut, tags=["users"])
def activate_user(user: UserRef, session: SessionDep) -> dict[str, Any]:
    """Activate a user; `warning` says when the directory would have the next sync deactivate them again."""
    found = identity.get_user(session, user)
    warning = identity.reactivation_warning(session, found)
    identity.activate_user(session, found)
    return identity.users_json(session, [found])[0] | {"warning": warning}


# -- groups --------------------------------------------------------------------------------------


@router.get("/groups", response_model=list[GroupOut], tags=["groups"])
def list_groups(
    session: SessionDep, page: PageDep, response: Response, directory: DirectoryFilter = None
) -> list[dict[str, Any]]:
    """Groups with their member counts, by name."""
    found = dirs.get_directory(session, directory) if directory else None
    return paginate(identity.list_groups(session, found), page, response)


# -- organizations -------------------------------------------------------------------------------


@router.get("/organizations", response_model=list[OrganizationOut], tags=["organizations"])
def list_organizations(session: SessionDep, page: PageDep, response: Response) -> list[dict[str, Any]]:
    return paginate(identity.list_organizations(session), page, response)


@router.post(
    "/organizations", response_model=OrganizationOut, status_code=status.HTTP_201_CREATED, tags=["organizations"]
)
def create_organization(body: OrganizationIn, session: SessionDep) -> dict[str, Any]:
    org = identity.create_organization(session, body.slug, body.name)
    return {"id": org.id, "slug": org.slug, "name": org.name, "members": 0}


@router.get("/organizations/{org}", response_model=OrganizationOut, tags=["organizations"])
def get_organization(org: OrgRef, session: SessionDep) -> dict[str, Any]:
    found = identity.get_organization(session, org)
    listed: dict[str, Any] = next(o for o in identity.list_organizations(session) if o["id"] == found.id)
    return listed


@router.get("/organizations/{org}/members", response_model=list[OrganizationMemberOut], tags=["organizations"])
def list_members(org: OrgRef, session: SessionDep, page: PageDep, response: Response) -> list[dict[str, Any]]:
    """Members by email, each with their effective role here and why they hold it (`granted_by`)."""
    found = identity.get_organization(session, org)
    members = identity.organization_members(session, found, limit=page.limit + 1, offset=page.offset)
    if len(members) > page.limit:
        response.headers["X-Next-Offset"] = str(page.offset + page.limit)
    return members[: page.limit]


@router.post(
    "/organizations/{org}/members",
    response_model=MembershipOut,
    status_code=status.HTTP_201_CREATED,
    tags=["organizations"],
)
def add_member(org: OrgRef, body: MemberIn, session: SessionDep) -> dict[str, Any]:
    """Grant or change a manual membership; sync never touches it."""
    found_org = identity.get_organization(session, org)
    user = identity.get_user(session, body.user)
    role = identity.get_role(session, body.role)
    identity.add_member(session, found_org, user, role)
    return {"organization": found_org.slug, "user": user.email, "role": role.name, "origin": "manual"}


@router.delete("/organizations/{org}/members/{user}", status_code=status.HTTP_204_NO_CONTENT, tags=["organizations"])
def remove_member(org: OrgRef, user: UserRef, session: SessionDep) -> Response:
    """Remove a manual membership; memberships from sync follow the directory."""
    identity.remove_member(session, identity.get_organization(session, org), identity.get_user(session, user))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- roles ---------------------------------------------------------------------------------------


@router.get("/roles", response_model=list[RoleOut], tags=["roles"])
def list_roles(session: SessionDep) -> list[dict[str, Any]]:
    """Roles, highest rank first: a user's effective role in an organization is the highest they hold."""
    return [{"name": r.name, "rank": r.rank, "builtin": r.builtin} for r in identity.list_roles(session)]


@router.post("/roles", response_model=RoleOut, status_code=status.HTTP_201_CREATED, tags=["roles"])
def create_role(body: RoleIn, session: SessionDep) -> dict[str, Any]:
    role = identity.create_role(session, body.name, body.rank)
    return {"name": role.name, "rank": role.rank, "builtin": role.builtin}
