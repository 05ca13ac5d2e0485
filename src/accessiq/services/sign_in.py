"""Sign-in throttling: after too many failed sign-ins an account, or a client address, waits.

The counters live in the store (`sign_in_throttles`), so every `accessiq serve` behind a
load balancer on one PostgreSQL counts the same failures. An attempt locks its two rows
(account, address) while it is checked, verified and recorded, so parallel guesses cannot
slip past the limit. The account is the email as typed, known or not: a lockout says
nothing about whether an administrator exists.

The REST API is not throttled: its tokens are 256-bit random strings, which no rate of
guessing finds, unlike a password.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from accessiq.config import Settings
from accessiq.errors import AccessIQError
from accessiq.services.accounts import authenticate, digest
from accessiq.store.bulk import insert_missing
from accessiq.store.tables import Administrator, SignInThrottle, utcnow


@dataclass(frozen=True)
class Limits:
    """How many failures an account and an address may have within `window`; a lockout lasts `window`."""

    per_account: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            per_account=settings.sign_in_max_failures,
            per_address=settings.sign_in_max_failures_per_address,
            window=timedelta(seconds=settings.sign_in_window_seconds),
        )


class TooManyAttemptsError(AccessIQError):
    """The account or the address failed too often; `retry_after` says in how many seconds to try again."""

    http_status = 429
    kind = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many sign-in attempts; try again in {wait_in_words(retry_after)}.")
        self.retry_after = retry_after


def wait_in_words(seconds: int) -> str:
    """A wait as people say it: "40 seconds", "1 minute", "15 minutes" (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def unlock(session: Session, email: str, address: str | None = None) -> bool:
    """Forget the failed sign-ins of an account (and of a client address); True when one was counted."""
    keys = [account_key(email)] + ([address_key(address)] if address else [])
    removed = session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(keys)))
    return bool(getattr(removed, "rowcount", 0))


def account_key(email: str) -> str:
    return digest("account:" + email.strip().casefold())


def address_key(address: str) -> str:
    """The key of a client address; IPv6 counts per /64, since one host easily holds a whole /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return digest("address:" + address)
    if ip.version == 6:
        return digest(f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}")
    return digest(f"address:{ip}")


def sign_in(
    session: Session, email: str, password: str, *, address: str | None, limits: Limits, now: datetime | None = None
) -> Administrator | None:
    """`auth.authenticate` behind the throttle: raises TooManyAttemptsError while the account or address waits.

    A locked attempt does not verify the password at all, so the right password does not help either.
    """
    attempt = _begin_attempt(session, email, address, limits, now or utcnow())
    admin = authenticate(session, email, password)
    if admin is None:
        attempt.failed()
    else:
        attempt.succeeded()
    return admin


@dataclass
class _Attempt:
    """One sign-in attempt holding its counters, to record its outcome."""

    session: Session
    limits: Limits
    now: datetime
    account: SignInThrottle
    address: SignInThrottle | None

    def failed(self) -> None:
        self._count(self.account, self.limits.per_account)
        if self.address is not None:
            self._count(self.address, self.limits.per_address)

    def succeeded(self) -> None:
        """A successful sign-in clears the account's failures; the address keeps its own."""
        self.session.delete(self.account)

    def _count(self, row: SignInThrottle, limit: int) -> None:
        window_end = row.window_started_at + self.limits.window
        if row.failures == 0 or window_end <= self.now:
            row.failures, row.window_started_at, row.locked_until = 0, self.now, None
            window_end = self.now + self.limits.window
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = self.now + self.limits.window
        row.expires_at = max(window_end, row.locked_until or window_end)


def _begin_attempt(session: Session, email: str, address: str | None, limits: Limits, now: datetime) -> _Attempt:
    """Lock this attempt's counters; raise TooManyAttemptsError while the account or address must wait."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.expires_at < now))
    keys = sorted({account_key(email)} | ({address_key(address)} if address else set()))
    _insert_missing(session, keys, now)
    # In key order, so two attempts sharing a row never wait on each other the other way round.
    rows = {
        row.key: row
        for row in session.scalars(
            select(SignInThrottle).where(SignInThrottle.key.in_(keys)).order_by(SignInThrottle.key).with_for_update()
        )
    }
    waits = [row.locked_until - now for row in rows.values() if row.locked_until and row.locked_until > now]
    if waits:
        raise TooManyAttemptsError(math.ceil(max(waits).total_seconds()))
    return _Attempt(session, limits, now, rows[account_key(email)], rows[address_key(address)] if address else None)


def _insert_missing(session: Session, keys: list[str], now: datetime) -> None:
    # Two processes may meet a new key at once; the second insert is a no-op (then both lock the row).
    values = [{"key": key, "failures": 0, "window_started_at": now, "expires_at": now} for key in keys]
    insert_missing(session, SignInThrottle, values)
