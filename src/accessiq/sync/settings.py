"""A directory's sync settings (SPEC §3), validated so a bad setting is refused naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from accessiq.errors import ConfigurationError
from accessiq.sync.frequency import frequency_problem, is_cron, parse_interval
from accessiq.sync.mapping import check_condition, check_mapping

__all__ = ["GroupMappingSpec", "Safety", "SyncSettings", "UserFilter", "is_cron", "parse_interval"]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserFilter(_Strict):
    """Who is in scope. Each criterion given must hold; within one, any listed item will do."""

    groups: list[str] = Field(
        default_factory=list, title="Only members of these groups", description="members of any of these groups, nested"
    )
    org_units: list[str] = Field(
        default_factory=list,
        title="Organizational units",
        description="LDAP base DNs or Google OU paths, children included",
    )
    condition: str | None = Field(
        default=None,
        title="Attribute condition",
        description="sandboxed expression on source fields, e.g. department == 'Sales'",
    )

    @field_validator("condition")
    @classmethod
    def _condition_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_condition(value)
            except ConfigurationError as exc:
                # As a ValueError pydantic reports it together with the other settings' problems.
                raise ValueError(exc.problems[0].message) from None
        return value


class Safety(_Strict):
    """Thresholds that block a run before it removes too much, per kind, as counts and percentages.

    A run stops as `blocked` when any one is exceeded. The group and membership percentages count
    only for a directory of at least `PERCENT_FLOOR` groups and a group of at least that many
    members: a small group losing one of its three members is not a mass removal.
    """

    max_deactivations: int = Field(default=500, ge=0, title="At most this many deactivations")
    max_deactivation_percent: float = Field(
        default=20, ge=0, le=100, allow_inf_nan=False, title="At most this percentage of the directory's users"
    )
    max_group_deletions: int = Field(default=50, ge=0, title="At most this many group deletions")
    max_group_deletion_percent: float = Field(
        default=20, ge=0, le=100, allow_inf_nan=False, title="At most this percentage of the directory's groups"
    )
    max_membership_removals: int = Field(
        default=500, ge=0, title="At most this many members removed from one group"
    )
    max_membership_removal_percent: float = Field(
        default=50, ge=0, le=100, allow_inf_nan=False, title="At most this percentage of one group's members"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # YAML and JSON turn `yes`/`true` into a boolean, which pydantic would take for 1.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value


# Below this many groups (or members of a group) the percentage thresholds for groups and
# memberships, and the collapse check, do not apply; the counts still do.
PERCENT_FLOOR = 10


class SyncSettings(_Strict):
    frequency: str = Field(default="1h", title="Sync frequency")
    schedule_enabled: bool = Field(default=False, title="Automatic sync")
    user_filter: UserFilter = Field(default_factory=UserFilter, title="User filter")
    # AccessIQ attribute <- field path or template; null removes a provider default.
    attribute_mapping: dict[str, str | None] = Field(default_factory=dict, title="Attribute mapping")
    default_organization: str | None = Field(default=None, title="Default organization")
    default_role: str = Field(default="member", title="Default role")
    deactivation: Literal["deactivate", "ignore"] = Field(
        default="deactivate", title="When a user leaves the directory"
    )
    link_existing_users: Literal["by_email", "never"] = Field(
        default="by_email", title="Existing AccessIQ users with the same email"
    )
    safety: Safety = Field(default_factory=Safety, title="Safety thresholds")
    full_sync_interval: str = Field(default="24h", title="Full reconciliation every")
    # A pulled directory may also receive SCIM pushes between pulls (provider `scim` always does).
    push: bool = Field(default=False, title="Receive SCIM pushes between syncs")

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        value = value.strip()
        problem = frequency_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("full_sync_interval")
    @classmethod
    def _full_sync_interval(cls, value: str) -> str:
        parse_interval(value)
        return value

    @model_validator(mode="after")
    def _mapping_compiles(self) -> SyncSettings:
        check_mapping(self.attribute_mapping)
        return self


class GroupMappingSpec(_Strict):
    """Members of `source_group` (nested included) get `role` in `organization`."""

    source_group: str = Field(min_length=1, title="Source group")
    organization: str = Field(min_length=1, title="Organization")
    role: str = Field(default="member", title="Role")


def mapping_key(source_group: str, organization: int | str) -> tuple[str, int | str]:
    """What makes two group mappings the same: the group reference (case-insensitive) and the organization."""
    return source_group.strip().casefold(), organization
