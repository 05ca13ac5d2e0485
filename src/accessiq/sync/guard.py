"""The safety guard: stop a run before it deactivates too many users."""

from __future__ import annotations

from accessiq.sync.planner import Plan
from accessiq.sync.settings import Safety


def check_safety(plan: Plan, source_users: int, active: int, safety: Safety) -> str | None:
    """Why this plan must wait for an administrator, or None when it may apply.

    `source_users` counts the users of the complete source after the read; `active` this
    directory's active synced users in the store.
    """
    if not source_users and active:
        return (
            f"the directory returned no users, but {active} synced users are active here; "
            "approve the run if the directory really is empty"
        )
    deactivations = len(plan.of("user", "deactivate"))
    if deactivations > safety.max_deactivations:
        return (
            f"the run would deactivate {deactivations} users, more than safety.max_deactivations "
            f"({safety.max_deactivations}); review the changes, then approve or reject the run"
        )
    if active and deactivations * 100 > safety.max_deactivation_percent * active:
        share = deactivations * 100 / active
        return (
            f"the run would deactivate {deactivations} of {active} active users ({share:.0f}%), more "
            f"than safety.max_deactivation_percent ({safety.max_deactivation_percent:g}%); review the "
            "changes, then approve or reject the run"
        )
    return None
