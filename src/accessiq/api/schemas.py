"""What the REST API takes and returns. Rows live in `accessiq.store.tables`; these are the wire shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from accessiq.dependencies import plain_reference
from accessiq.sync.settings import GroupMappingSpec, Safety


class _Out(BaseModel):
    # Services may add fields before this schema learns them; they are dropped, never leaked.
    model_config = ConfigDict(extra="ignore")


class LastRun(_Out):
    id: int
    status: str
    finished_at: datetime | None
    dry_run: bool
    resolution: str | None = None


class ScheduleOut(_Out):
    """The scheduler's view: next run (None while off), failures in a row, backoff, staleness."""

    enabled: bool
    frequency: str
    next_run_at: datetime | None = None
    consecutive_failures: int = 0
    backoff_until: datetime | None = None
    last_success_at: datetime | None = None
    stale: bool = False


class DirectoryOut(_Out):
    """A directory as the API shows it: connection without secrets; `has_secrets` says whether any are set."""

    id: int
    name: str
    provider: str
    connection: dict[str, Any]
    has_secrets: bool
    settings: dict[str, Any]
    group_mappings: list[GroupMappingSpec]
    users: int
    last_run: LastRun | None
    last_applied_run: LastRun | None = None
    setup_step: str | None = None
    last_full_sync_at: datetime | None
    incremental: bool
    next_sync_at: datetime | None = None
    schedule: ScheduleOut | None = None


class SettingsPatch(BaseModel):
    """Sync settings to change; the fields not given keep their value. See SPEC §3."""

    model_config = ConfigDict(extra="forbid")

    frequency: str | None = None
    schedule_enabled: bool | None = None
    user_filter: dict[str, Any] | None = None
    attribute_mapping: dict[str, str | None] | None = None
    default_organization: str | None = None
    default_role: str | None = None
    deactivation: Literal["deactivate", "ignore"] | None = None
    link_existing_users: Literal["by_email", "never"] | None = None
    # Only the thresholds given change; the others keep their value.
    safety: Safety | None = None
    full_sync_interval: str | None = None
    # Also receive SCIM pushes between pulls (a pulled directory; `scim` ones always do).
    push: bool | None = None


class CheckOut(BaseModel):
    """A connection test: facts that were verified and problems that stop a sync."""

    ok: bool
    details: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    # The error kind when the directory could not be reached or refused the credentials.
    kind: str | None = None
    # Other directories that already sync this tenant: {id, name, reason}.
    same_source: list[dict[str, Any]] = Field(default_factory=list)


class SourceGroupOut(BaseModel):
    id: str
    name: str
    description: str | None = None
    email: str | None = None
    dn: str | None = None


class MappingPreviewIn(BaseModel):
    """An attribute mapping to try on sample users before saving it."""

    model_config = ConfigDict(extra="forbid")

    attribute_mapping: dict[str, str | None] = Field(default_factory=dict)
    limit: int = Field(default=5, ge=1, le=50)


class MappedSample(BaseModel):
    external_id: str
    label: str
    values: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class MappingPreviewOut(BaseModel):
    """The effective mapping (provider defaults plus the given entries) applied to sample users."""

    effective: dict[str, str]
    samples: list[MappedSample]
    # Why there are no samples, when there are none.
    note: str | None = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False
    full: bool = False


class RunErrorOut(BaseModel):
    object: str
    external_id: str | None
    message: str


class ChangeOut(BaseModel):
    """One change of a run; `detail` has `changes: {attribute: [before, after]}` for updates."""

    object: str
    action: str
    external_id: str | None
    label: str
    detail: dict[str, Any]


class RunRef(BaseModel):
    id: int
    name: str


class RunOut(_Out):
    """A sync run in the shape scripts rely on (SPEC §6)."""

    id: int
    directory: RunRef
    status: str
    mode: str
    dry_run: bool
    trigger: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    counts: dict[str, int]
    errors: list[RunErrorOut]
    message: str | None
    notes: list[Any]
    resolution: str | None
    pending_approval: bool
    source_run: int | None
    progress: dict[str, Any]
    holder: str | None = Field(description="the process running it (host:pid:…), while it runs")
    lost: bool = Field(
        description="running, but its process stopped renewing its lease: it died; the next claim fails it"
    )
    changes: list[ChangeOut] | None = None


class GroupStep(BaseModel):
    id: int | None = Field(description="AccessIQ group id (GET /api/v1/groups), null if not stored")
    name: str


class MappingRef(BaseModel):
    id: int
    source_group: str = Field(description="the directory group as the mapping names it")
    organization: str
    role: str


class GrantedBy(BaseModel):
    """Why a membership exists, from its origin: the answer to "why does she hold this role?"."""

    kind: str = Field(description="`manual`, `directory-default` or `group-mapping`")
    directory_id: int | None
    directory: str | None = Field(description="name of the directory whose sync granted it")
    mapping: MappingRef | None = Field(description="the group mapping that granted it")
    path: list[GroupStep] = Field(
        description="for a group mapping: the groups from the mapped group down to the one that holds the "
        "user directly (nested groups), as of the directory's last applied sync"
    )
    summary: str = Field(description="the same explanation in one plain sentence")
    note: str | None = Field(description="what is unusual about it, e.g. that the next sync revokes it")


class Membership(BaseModel):
    organization: str
    role: str
    origin: str
    effective: bool = Field(description="this membership sets the user's effective role in the organization")
    granted_by: GrantedBy


class EffectiveRole(BaseModel):
    """The highest-ranked role a user holds in an organization."""

    organization: str
    role: str


class UserOut(_Out):
    """A user in the SPEC §6 shape."""

    id: int
    email: str
    username: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    status: str
    deactivated_by: str | None = None
    directory: str | None
    external_id: str | None
    attributes: dict[str, Any]
    groups: list[str]
    memberships: list[Membership]
    effective_roles: list[EffectiveRole]


class ActivatedUserOut(UserOut):
    """A user just activated, with what the next sync will do about it."""

    warning: str | None = Field(
        description="set when the directory has the user disabled, removed or out of scope: "
        "the next sync deactivates them again, and what to do about it"
    )


class UserIn(BaseModel):
    """A local user, not linked to any directory."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    given_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=320)


class GroupOut(_Out):
    id: int
    name: str
    description: str | None
    directory: str | None
    external_id: str | None
    members: int


class OrganizationOut(_Out):
    id: int
    slug: str
    name: str
    members: int


class OrganizationMemberOut(_Out):
    """A member of one organization: their effective role there and the memberships behind it."""

    id: int
    email: str
    display_name: str | None
    status: str
    directory: str | None
    role: str = Field(description="effective role in this organization")
    memberships: list[Membership]


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=200)


class MemberIn(BaseModel):
    """A manual membership: sync never changes or removes it."""

    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, Field(min_length=1, description="user id or email"), AfterValidator(plain_reference)]
    role: str = Field(default="member", min_length=1)


class MembershipOut(BaseModel):
    organization: str
    user: str
    role: str
    origin: str


class RoleOut(BaseModel):
    name: str
    rank: int
    builtin: bool


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_-]*$")
    rank: int = Field(ge=0, le=1_000_000)


class Health(BaseModel):
    status: str
    database: str


class ProviderOut(_Out):
    """A directory provider: what a directory document's `provider` may name and how its `connection` looks."""

    name: str = Field(description="The value of `provider` in a directory document.")
    title: str
    description: str
    available: bool = Field(description="False for a planned provider or one not installed on this server.")
    install_hint: str | None = Field(description="What to install when the provider is not available.")
    incremental: bool = Field(description="Reads only the changes since the last run.")
    sandbox: bool = Field(description="`accessiq sandbox NAME` serves a local emulator of it.")
    connection_schema: dict[str, Any] | None = Field(
        description="JSON schema of `connection`; each property's `kind` says how it is entered "
        "(text, secret, multiline_secret, url, list, boolean, choice, file)."
    )
