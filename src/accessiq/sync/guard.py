"""The safety guard: stop a run before it deactivates too many users."""

from __future__ import annotations

from datetime import timedelta

from accessiq.sync.planner import Plan
from accessiq.sync.settings import Safety

# How far back the guard looks for the deactivations of earlier pushes (see check_safety).
PUSH_WINDOW = timedelta(hours=1)


def check_safety(
    plan: Plan, source_users: int, active: int, safety: Safety, *, earlier_pushed: int | None = None
) -> str | None:
    """Why this plan must wait for an administrator, or None when it may apply.

    `source_users` counts the users of the complete source after the read; `active` this
    directory's active synced users in the store. For a push, `earlier_pushed` counts the users
    that pushes deactivated within PUSH_WINDOW (since the last approval): a SCIM client deletes
    one user per request, so the thresholds hold for the burst, not for each request. A push
    names what it removes, so an emptied source is no sign of a broken read there.
    """
    pushed = earlier_pushed or 0
    if earlier_pushed is None and not source_users and active:
        return (
            f"the directory returned no users, but {active} synced users are active here; "
            "approve the run if the directory really is empty"
        )
    deactivations = len(plan.of("user", "deactivate")) + pushed
    active += pushed
    what = "the run would deactivate" if not pushed else "with the pushes of the last hour, the run would deactivate"
    if deactivations > safety.max_deactivations:
        return (
            f"{what} {deactivations} users, more than safety.max_deactivations "
            f"({safety.max_deactivations}); review the changes, then approve or reject the run"
        )
    if active and deactivations * 100 > safety.max_deactivation_percent * active:
        share = deactivations * 100 / active
        return (
            f"{what} {deactivations} of {active} active users ({share:.0f}%), more "
            f"than safety.max_deactivation_percent ({safety.max_deactivation_percent:g}%); review the "
            "changes, then approve or reject the run"
        )
    return None
