"""One fault scenario: a directory synced once, a change in the source, a faulty run, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accessiq.config import Settings
from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import open_store
from accessiq.sync.document import validate_document

from ..conftest import TEST_KEY
from ..runs_kit import sync
from .ledger import LEDGER
from .rigs import FaultCase
from .store_state import Difference, compare, copy_store, read_state

APPLIED = ("succeeded", "succeeded_with_errors")


@dataclass
class Outcome:
    provider: str
    fault: str
    run: dict[str, Any]
    injected: int
    # A failed run: what it changed in the store (must be nothing) and whether the cursor moved.
    partial: Difference | None
    cursor_moved: bool
    # The store at the end (after the faulty run, or after the next clean run when it failed)
    # against the store a clean run makes from the same start.
    final: Difference
    converged: dict[str, Any] | None
    early_retries: list[str]

    def describe(self) -> str:
        run = self.run
        return (
            f"{self.provider} / {self.fault}: run {run['status']} ({run.get('mode')}), "
            f"{self.injected} faults served; message: {run.get('message')}; notes: {run.get('notes')}; "
            f"differences: {self.final.examples[:6]}"
            + (f"; changed by the failed run: {self.partial.examples[:6]}" if self.partial else "")
        )


def run_scenario(rig: Any, case: FaultCase, workdir: Path, fault: Any = None) -> Outcome:
    """`fault`: the rig's own fault object for `case` when not the rig's default one (randomized runs)."""
    rig.reset()
    store = open_store(Settings(data_dir=workdir / "main", secret_key=TEST_KEY))
    reference = None
    try:
        directory = connect(store, rig.document())
        baseline = sync(store, directory)
        assert baseline["status"] == "succeeded", baseline
        rig.change_source()
        before = read_state(store, directory)
        reference = copy_store(store, workdir / "reference")
        served = rig.served()
        rig.inject(fault if fault is not None else rig.fault(case.name))
        full = case.full and case.name not in rig.incremental
        run = sync(store, directory, full=full)
        injected = rig.served() - served
        rig.clear()
        early = rig.early_retries()
        after = read_state(store, directory)
        clean = sync(reference, directory, full=full)
        assert clean["status"] == "succeeded", clean
        expected = read_state(reference, directory)
        partial, moved, converged = None, False, None
        if run["status"] in APPLIED:
            final = compare(expected, after)
        else:
            partial = compare(before, after)
            moved = before.cursor != after.cursor
            converged = sync(store, directory)
            final = compare(expected, read_state(store, directory))
    finally:
        store.dispose()
        if reference is not None:
            reference.dispose()
    outcome = Outcome(rig.name, case.name, run, injected, partial, moved, final, converged, early)
    record(outcome)
    return outcome


def connect(store: Any, document: dict[str, Any]) -> int:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        identity.create_organization(session, "eng")
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return int(directory.id)


def record(outcome: Outcome) -> None:
    figures = LEDGER.providers[outcome.provider]
    figures.scenarios += 1
    figures.faults.add(outcome.fault)
    figures.faults_injected += outcome.injected
    if outcome.run["status"] in APPLIED:
        figures.succeeded += 1
    elif outcome.partial is not None and outcome.partial.none and not outcome.cursor_moved:
        figures.failed_cleanly += 1
    else:
        figures.partial_applies += 1
    figures.lost += outcome.final.total_lost
    figures.duplicated += outcome.final.total_duplicated
    figures.changed += outcome.final.total_changed
    figures.early_retries += len(outcome.early_retries)
    print(
        f"\n[{outcome.provider}] {outcome.fault}: {outcome.run['status']}, {outcome.injected} faults, "
        f"lost {outcome.final.total_lost}, duplicated {outcome.final.total_duplicated}, "
        f"changed {outcome.final.total_changed}"
    )
