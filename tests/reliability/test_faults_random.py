"""The fault suite at random (`slow`): many scenarios per provider, each a fault of a random kind, on a
random later request, repeated a random number of times, met by a full or an incremental run.

Run it with `python -m pytest -n 0 -m slow tests/reliability`; ACCESSIQ_FAULT_SEED picks the draw
(printed with each scenario) and ACCESSIQ_FAULT_ROUNDS how many scenarios per provider.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from .rigs import FAULTS, FaultCase
from .scenario import APPLIED, run_scenario

SEED = int(os.environ.get("ACCESSIQ_FAULT_SEED", "20261202"))
ROUNDS = int(os.environ.get("ACCESSIQ_FAULT_ROUNDS", "12"))


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("provider", ["entra", "okta", "google", "ldap"])
def test_random_faults_apply_all_or_nothing(
    provider: str, round_: int, rigs: Callable[[str], Any], tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}:{provider}:{round_}")
    name = rng.choice(sorted(FAULTS))
    rig = rigs(provider)
    case = FaultCase(name, full=rng.random() < 0.6 and name not in rig.incremental)
    fault = replace(rig.fault(name), after=rng.randint(0, 8), count=rng.randint(1, 4))
    outcome = run_scenario(rig, case, tmp_path, fault=fault)
    why = f"seed {SEED} round {round_}: {fault}; {outcome.describe()}"
    assert outcome.early_retries == [], why
    if outcome.run["status"] not in APPLIED:
        assert outcome.run["status"] == "failed", why
        assert outcome.partial is not None and outcome.partial.none, why
        assert not outcome.cursor_moved, why
        assert outcome.converged is not None and outcome.converged["status"] in APPLIED, why
    assert outcome.final.none, why
