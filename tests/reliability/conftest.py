"""Fixtures for the reliability suites: one sandbox server per provider for the session, and the figures.

The figures of every fault scenario are printed at the end of the session (and with `-s`
as each scenario ends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from .ledger import LEDGER
from .rigs import HTTP_TIMEOUT, RIGS


@pytest.fixture(scope="session")
def rigs() -> Iterator[Callable[[str], Any]]:
    """`rigs(provider)`: that provider's rig, its server started on first use and kept for the session."""
    started: dict[str, Any] = {}
    with ExitStack() as stack:

        def get(provider: str) -> Any:
            if provider not in started:
                started[provider] = RIGS[provider](stack)
            return started[provider]

        yield get


@pytest.fixture(autouse=True)
def patient_for_half_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's HTTP timeout, short: a stalled answer is waited for briefly, then retried."""
    monkeypatch.setenv("ACCESSIQ_HTTP_TIMEOUT", str(HTTP_TIMEOUT))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in LEDGER.lines():
        terminalreporter.write_line(line)
