"""The figures a fault run reports: per provider, faults injected, runs and how they ended, objects lost."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class ProviderFigures:
    scenarios: int = 0
    faults_injected: int = 0
    succeeded: int = 0
    failed_cleanly: int = 0
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    partial_applies: int = 0
    early_retries: int = 0
    faults: set[str] = field(default_factory=set)


@dataclass
class FaultLedger:
    """Collected over a session by every fault scenario; printed at its end."""

    providers: dict[str, ProviderFigures] = field(default_factory=lambda: defaultdict(ProviderFigures))

    def lines(self) -> list[str]:
        if not self.providers:
            return []
        head = (
            f"{'provider':<8} {'scenarios':>9} {'faults':>7} {'succeeded':>9} {'failed':>7} "
            f"{'lost':>5} {'dup':>5} {'changed':>7} {'partial':>7} {'early':>5}"
        )
        out = ["faults from the directory: injected faults and objects lost or duplicated (target: 0)", head]
        total = ProviderFigures()
        for name in sorted(self.providers):
            f = self.providers[name]
            out.append(
                f"{name:<8} {f.scenarios:>9} {f.faults_injected:>7} {f.succeeded:>9} {f.failed_cleanly:>7} "
                f"{f.lost:>5} {f.duplicated:>5} {f.changed:>7} {f.partial_applies:>7} {f.early_retries:>5}"
            )
            for attr in ("scenarios", "faults_injected", "succeeded", "failed_cleanly", "lost", "duplicated",
                         "changed", "partial_applies", "early_retries"):
                setattr(total, attr, getattr(total, attr) + getattr(f, attr))
        out.append(
            f"{'all':<8} {total.scenarios:>9} {total.faults_injected:>7} {total.succeeded:>9} "
            f"{total.failed_cleanly:>7} {total.lost:>5} {total.duplicated:>5} {total.changed:>7} "
            f"{total.partial_applies:>7} {total.early_retries:>5}"
        )
        out.append(
            "failed = failed cleanly (nothing applied, cursor unchanged); partial = a failed run that changed the "
            "store; early = retries sooner than Retry-After / X-Rate-Limit-Reset asked"
        )
        return out


LEDGER = FaultLedger()
