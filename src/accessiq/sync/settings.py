"""A directory's sync settings (SPEC §3), validated so a bad setting is refused naming the field."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from accessiq.sync.mapping import check_condition, check_mapping

_INTERVAL = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_interval(text: str) -> timedelta:
    """`90s`, `15m`, `1h30m`, `24h`, `7d` -> timedelta; ValueError for anything else."""
    compact = text.replace(" ", "")
    parts = _INTERVAL.findall(compact)
    if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
        raise ValueError(f"{text!r} is not an interval like 15m, 1h or 24h")
    delta = timedelta()
    for number, unit in parts:
        delta += timedelta(**{_UNITS[unit.lower()]: int(number)})
    if delta <= timedelta(0):
        raise ValueError("an interval must be longer than zero")
    return delta


def is_cron(text: str) -> bool:
    return len(text.split()) in (5, 6) and croniter.is_valid(text)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserFilter(_Strict):
    """Who is in scope. Each criterion given must hold; within one, any listed item will do."""

    groups: list[str] = Field(default_factory=list, description="members of any of these groups, nested")
    org_units: list[str] = Field(
        default_factory=list, description="LDAP base DNs or Google OU paths, children included"
    )
    condition: str | None = Field(
        default=None, description="sandboxed expression on source fields, e.g. department == 'Sales'"
    )

    @field_validator("condition")
    @classmethod
    def _condition_parses(cls, value: str | None) -> str | None:
        if value is not None:
            check_condition(value)
        return value


class Safety(_Strict):
    """Thresholds that block a run before it deactivates too many users."""

    max_deactivations: int = Field(default=500, ge=0)
    max_deactivation_percent: float = Field(default=20, ge=0, le=100)


class SyncSettings(_Strict):
    frequency: str = "1h"
    schedule_enabled: bool = False
    user_filter: UserFilter = Field(default_factory=UserFilter)
    # AccessIQ attribute <- field path or template; null removes a provider default.
    attribute_mapping: dict[str, str | None] = Field(default_factory=dict)
    default_organization: str | None = None
    default_role: str = "member"
    deactivation: Literal["deactivate", "ignore"] = "deactivate"
    link_existing_users: Literal["by_email", "never"] = "by_email"
    safety: Safety = Field(default_factory=Safety)
    full_sync_interval: str = "24h"

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        value = value.strip()
        if is_cron(value):
            return value
        try:
            parse_interval(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither an interval (15m, 1h, 24h) nor a cron expression ('0 * * * *')"
            ) from None
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

    source_group: str = Field(min_length=1)
    organization: str = Field(min_length=1)
    role: str = "member"


def mapping_key(source_group: str, organization: int | str) -> tuple[str, int | str]:
    """What makes two group mappings the same: the group reference (case-insensitive) and the organization."""
    return source_group.strip().casefold(), organization
