"""Faults from the directory: every provider's sandbox misbehaves, and a run applies all or nothing.

For each fault and provider, on a directory that already had a successful sync and whose
source has changed since, the run either succeeds and the store holds exactly what a clean
run makes of the same source, or it fails with nothing applied and the cursor where it was,
and the next run converges. The guard is wide open, so a broken read that looked complete
would show as deactivations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .rigs import FAULTS
from .scenario import APPLIED, run_scenario


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("provider", ["entra", "okta", "google", "ldap"])
def test_a_run_under_a_fault_applies_all_or_nothing(
    provider: str, fault: str, rigs: Callable[[str], Any], tmp_path: Path
) -> None:
    case, rig = FAULTS[fault], rigs(provider)
    outcome = run_scenario(rig, case, tmp_path)
    why = outcome.describe()
    assert outcome.injected > 0, f"the fault never fired: {why}"
    assert outcome.early_retries == [], why
    status = outcome.run["status"]
    expect = rig.expect.get(fault, case.expect)
    if expect != "either":
        assert (status in APPLIED) == (expect == "succeeded"), why
    if status not in APPLIED:
        assert status == "failed", why
        assert outcome.partial is not None and outcome.partial.none, why
        assert not outcome.cursor_moved, why
        message = str(outcome.run.get("message") or "").lower()
        assert all(word in message for word in case.says), why
        assert outcome.converged is not None and outcome.converged["status"] in APPLIED, why
    assert outcome.final.none, why
