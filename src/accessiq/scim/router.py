"""The SCIM 2.0 endpoint of push directories: `/scim/v2/{directory}/Users`, `/Groups` and discovery.

Thin: it authenticates the directory's bearer token, parses requests into scim2-models objects,
calls `accessiq.services.scim`, and serialises the answers as `application/scim+json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    NotImplementedException,
    Patch,
    PatchOp,
    PayloadTooLargeException,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)

from accessiq.dependencies import StoreDep
from accessiq.errors import AccessIQError
from accessiq.scim.errors import PREFIX, ScimResponse
from accessiq.services import Store, scim, scim_tokens
from accessiq.services.scim import POLICY, ScimUser

MAX_BODY = 1_000_000  # bytes

_bearer = HTTPBearer(auto_error=False, description="The directory's SCIM token (`accessiq directories scim-token`)")


class ScimAuthError(AccessIQError):
    http_status = 401
    kind = "not_authenticated"


_CONFIG = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=scim.MAX_PAGE),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=False),
    etag=ETag(supported=True),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Bearer token",
            description="The directory's SCIM token, from `accessiq directories scim-token DIR`.",
            primary=True,
        )
    ],
)
_PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[ResourceType.from_resource(ScimUser), ResourceType.from_resource(Group)],
    config=_CONFIG,
    policy=POLICY,
)


def _directory(
    request: Request,
    store: StoreDep,
    directory: Annotated[str, Path(max_length=200)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    background: BackgroundTasks,
) -> int:
    """The directory the path names, when the bearer token is one of its live SCIM tokens; 401 otherwise."""
    token = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else ""
    with store.read() as session:
        found = scim_tokens.token_directory(session, token) if token else None
        if found is None:
            raise ScimAuthError("a valid SCIM token for this directory is required")
        token_id, token_directory = found
        try:
            directory_id = scim.push_directory(session, directory)
        except AccessIQError:
            directory_id = None
        # Another directory's token, or a directory that does not take pushes: the same answer.
        if directory_id != token_directory:
            raise ScimAuthError("a valid SCIM token for this directory is required")
        if scim_tokens.token_use_due(session, token_id):
            background.add_task(_mark_used, store, token_id)
    return directory_id


def _mark_used(store: Store, token_id: int) -> None:
    with store.transaction(write=True) as session:
        scim_tokens.mark_token_used(session, token_id)


DirectoryDep = Annotated[int, Depends(_directory)]


async def _payload(request: Request) -> Any:
    """The JSON body, at most MAX_BODY bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLargeException(detail=f"the body is larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLargeException(detail=f"the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidSyntaxException(detail="the body is not JSON") from None


PayloadDep = Annotated[Any, Depends(_payload)]
FilterQuery = Annotated[str | None, Query(max_length=10 * scim.MAX_FILTER)]
Attributes = Annotated[str | None, Query(max_length=2000)]
ResourceId = Annotated[str, Path(max_length=200)]
IfMatch = Annotated[str | None, Header(max_length=200)]


def _parameters(attributes: str | None, excluded: str | None) -> ResponseParameters[Any] | None:
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters.model_validate({"attributes": attributes, "excludedAttributes": excluded})
    except SCIMException:
        raise
    except ValueError as exc:
        raise InvalidSyntaxException(detail=f"attributes: {str(exc).splitlines()[0][:200]}") from None


def _location(request: Request, directory: str, resource: Any, endpoint: str) -> None:
    if resource.meta is not None:
        base = str(request.base_url).rstrip("/")
        resource.meta.location = f"{base}{PREFIX}/{directory}/{endpoint}/{resource.id}"


def _one(
    request: Request,
    directory: str,
    resource: Any,
    endpoint: str,
    context: Context,
    status: int = 200,
    parameters: ResponseParameters[Any] | None = None,
) -> ScimResponse:
    _location(request, directory, resource, endpoint)
    body = resource.model_dump(scim_ctx=context, response_parameters=parameters, scim_provider=_PROVIDER)
    response = ScimResponse(body, status_code=status)
    if resource.meta is not None and resource.meta.version:
        response.headers["ETag"] = resource.meta.version
    if status == 201 and resource.meta is not None and resource.meta.location:
        response.headers["Location"] = resource.meta.location
    return response


def _list(
    request: Request, directory: str, page: scim.ResourcePage, endpoint: str, model: Any, parameters: Any
) -> ScimResponse:
    for resource in page.resources:
        _location(request, directory, resource, endpoint)
    answer = ListResponse[model](  # type: ignore[valid-type]
        total_results=page.total, start_index=page.start, items_per_page=len(page.resources), resources=page.resources
    )
    return ScimResponse(
        answer.model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters, scim_provider=_PROVIDER
        )
    )


def _parse(model: Any, payload: Any, context: Context) -> Any:
    if not isinstance(payload, dict):
        raise InvalidSyntaxException(detail="the body must be a JSON object")
    try:
        return model.model_validate(payload, scim_ctx=context, scim_policy=POLICY, scim_provider=_PROVIDER)
    except SCIMException:
        raise
    except ValidationError as exc:
        raise _refusal(exc) from None


def _refusal(exc: ValidationError) -> SCIMException:
    """The SCIM error a validation failure stands for: one scim2-models raised inside, or invalidValue."""
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SCIMException):
            return cause
    errors = exc.errors()
    where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
    message = errors[0]["msg"] if errors else "invalid value"
    return InvalidValueException(detail=f"{where}: {message}"[:300])


def _listing(model: Any, items: Iterable[Any]) -> ScimResponse:
    """A discovery endpoint's ListResponse: all of it, on one page."""
    found = list(items)
    answer = ListResponse[model](  # type: ignore[valid-type]
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return ScimResponse(answer.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _described(items: Iterable[Any], wanted: Callable[[Any], bool], what: str, name: str) -> ScimResponse:
    for item in items:
        if wanted(item):
            return ScimResponse(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise NotFoundException(detail=f"no {what} {name[:200]!r}")


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX + "/{directory}", include_in_schema=False)

    @router.get("/ServiceProviderConfig")
    def service_provider_config(_: DirectoryDep) -> ScimResponse:
        return ScimResponse(_CONFIG.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))

    @router.get("/ResourceTypes")
    def resource_types(_: DirectoryDep) -> ScimResponse:
        return _listing(ResourceType, _PROVIDER.resource_types)

    @router.get("/ResourceTypes/{name}")
    def resource_type(_: DirectoryDep, name: str) -> ScimResponse:
        return _described(_PROVIDER.resource_types, lambda item: name in (item.id, item.name), "resource type", name)

    @router.get("/Schemas")
    def schemas(_: DirectoryDep) -> ScimResponse:
        return _listing(Schema, _PROVIDER.schemas)

    @router.get("/Schemas/{schema_id}")
    def schema(_: DirectoryDep, schema_id: str) -> ScimResponse:
        return _described(_PROVIDER.schemas, lambda item: item.id == schema_id, "schema", schema_id)

    @router.post("/.search")
    def search_everything(_: DirectoryDep) -> ScimResponse:
        raise NotImplementedException(detail="search /Users/.search or /Groups/.search, one resource type at a time")

    _resource_routes(router, "Users", ScimUser, scim.list_users, scim.get_user, scim.create_user,
                     scim.replace_user, scim.patch_user, scim.delete_user)
    _resource_routes(router, "Groups", Group, scim.list_groups, scim.get_group, scim.create_group,
                     scim.replace_group, scim.patch_group, scim.delete_group)
    return router


def _resource_routes(
    router: APIRouter,
    endpoint: str,
    model: Any,
    list_: Any,
    get: Any,
    create: Any,
    replace: Any,
    patch: Any,
    delete: Any,
) -> None:
    # Parameterised once, when the routes are built: the first request pays nothing for them.
    patch_model = PatchOp[model]  # type: ignore[valid-type]
    search_model = SearchRequest[model]  # type: ignore[valid-type]

    @router.get(f"/{endpoint}")
    def list_resources(
        request: Request,
        store: StoreDep,
        directory_id: DirectoryDep,
        directory: str,
        filter: FilterQuery = None,
        startIndex: Annotated[int, Query(ge=-(2**31), le=2**31)] = 1,
        count: Annotated[int | None, Query(ge=-(2**31), le=2**31)] = None,
        attributes: Attributes = None,
        excludedAttributes: Attributes = None,
    ) -> ScimResponse:
        parameters = _parameters(attributes, excludedAttributes)
        with store.read() as session:
            page = list_(session, directory_id, filter, startIndex, count)
        return _list(request, directory, page, endpoint, model, parameters)

    @router.post(f"/{endpoint}/.search")
    async def search_resources(
        request: Request, store: StoreDep, directory_id: DirectoryDep, directory: str, payload: PayloadDep
    ) -> ScimResponse:
        search = _parse(search_model, payload, Context.SEARCH_REQUEST)
        start = search.start_index or 1
        filter_text = str(search.filter) if search.filter is not None else None

        def read() -> scim.ResourcePage:
            with store.read() as session:
                return list_(session, directory_id, filter_text, start, search.count)

        page = await run_in_threadpool(read)
        return _list(request, directory, page, endpoint, model, search)

    @router.get(f"/{endpoint}/{{resource_id}}")
    def get_resource(
        request: Request,
        store: StoreDep,
        directory_id: DirectoryDep,
        directory: str,
        resource_id: str,
        attributes: Attributes = None,
        excludedAttributes: Attributes = None,
        if_none_match: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Response:
        parameters = _parameters(attributes, excludedAttributes)
        with store.read() as session:
            resource = get(session, directory_id, resource_id)
        if if_none_match and resource.meta is not None and resource.meta.version in if_none_match:
            return Response(status_code=304, headers={"ETag": resource.meta.version})
        return _one(request, directory, resource, endpoint, Context.RESOURCE_QUERY_RESPONSE, parameters=parameters)

    @router.post(f"/{endpoint}")
    async def create_resource(
        request: Request, store: StoreDep, directory_id: DirectoryDep, directory: str, payload: PayloadDep
    ) -> ScimResponse:
        resource = _parse(model, payload, Context.RESOURCE_CREATION_REQUEST)
        created = await run_in_threadpool(create, store, directory_id, resource)
        return _one(request, directory, created, endpoint, Context.RESOURCE_CREATION_RESPONSE, 201)

    @router.put(f"/{endpoint}/{{resource_id}}")
    async def replace_resource(
        request: Request,
        store: StoreDep,
        directory_id: DirectoryDep,
        directory: str,
        resource_id: ResourceId,
        payload: PayloadDep,
        if_match: IfMatch = None,
    ) -> ScimResponse:
        resource = _parse(model, payload, Context.RESOURCE_REPLACEMENT_REQUEST)
        replaced = await run_in_threadpool(replace, store, directory_id, resource_id, resource, if_match)
        return _one(request, directory, replaced, endpoint, Context.RESOURCE_REPLACEMENT_RESPONSE)

    @router.patch(f"/{endpoint}/{{resource_id}}")
    async def patch_resource(
        request: Request,
        store: StoreDep,
        directory_id: DirectoryDep,
        directory: str,
        resource_id: ResourceId,
        payload: PayloadDep,
        if_match: IfMatch = None,
    ) -> ScimResponse:
        operation = _parse(patch_model, payload, Context.RESOURCE_PATCH_REQUEST)
        patched = await run_in_threadpool(patch, store, directory_id, resource_id, operation, if_match)
        return _one(request, directory, patched, endpoint, Context.RESOURCE_PATCH_RESPONSE)

    @router.delete(f"/{endpoint}/{{resource_id}}", status_code=204)
    def delete_resource(
        store: StoreDep, directory_id: DirectoryDep, resource_id: ResourceId
    ) -> Response:
        delete(store, directory_id, resource_id)
        return Response(status_code=204)
