"""The bearer tokens identity providers push with: one directory each, stored as SHA-256 digests.

A new token is shown once. Making one rotates: the tokens before it keep working for a grace
period, long enough to paste the new one into the identity provider, then stop.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from accessiq.errors import ConfigurationError
from accessiq.services.accounts import digest
from accessiq.store.tables import Directory, ScimToken, utcnow
from accessiq.sync.frequency import parse_interval

TOKEN_PREFIX = "aiqscim_"
DEFAULT_GRACE = timedelta(hours=1)
MAX_GRACE = timedelta(days=30)
# Writing "last used" once a minute is plenty, and keeps GETs from writing.
_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: the secret (shown once), and until when the tokens it replaces still work."""

    token: str
    prefix: str
    previous_expire_at: datetime | None


def parse_grace(text: str) -> timedelta:
    """`0` (the old tokens stop at once), or an interval like `15m`, `1h`, `7d`."""
    if text.strip() in ("0", "0s", "0m", "0h", "now"):
        return timedelta(0)
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise ConfigurationError(str(exc), field="grace") from None


def receives_pushes(directory: Directory) -> bool:
    """True for a directory with a SCIM endpoint: provider `scim`, or a pulled one with `push: true`."""
    return directory.provider == "scim" or (directory.settings or {}).get("push") is True


def issue_token(session: Session, directory: Directory, grace: timedelta = DEFAULT_GRACE) -> IssuedToken:
    """A new SCIM token for `directory`; its live tokens stop working after `grace`."""
    if not receives_pushes(directory):
        raise ConfigurationError(
            f"directory {directory.name!r} does not receive pushes (its provider is {directory.provider})",
            field="push",
            hint="a directory with provider: scim, or with push: true, receives SCIM pushes",
        )
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ConfigurationError("the grace period is between 0 and 30 days", field="grace")
    now = utcnow()
    ends = now + grace
    live = _live(directory.id, now)
    replaced = session.scalar(select(ScimToken.id).where(live).limit(1)) is not None
    session.execute(
        update(ScimToken)
        .where(live, or_(ScimToken.expires_at.is_(None), ScimToken.expires_at > ends))
        .values(expires_at=ends)
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[: len(TOKEN_PREFIX) + 4]
    session.add(ScimToken(directory_id=directory.id, prefix=prefix, token_hash=digest(token), created_at=now))
    session.flush()
    return IssuedToken(token, prefix, ends if replaced else None)


def _live(directory_id: int, now: datetime) -> ColumnElement[bool]:
    return (ScimToken.directory_id == directory_id) & or_(ScimToken.expires_at.is_(None), ScimToken.expires_at > now)


def token_directory(session: Session, token: str) -> tuple[int, int] | None:
    """(token id, directory id) of a live token, or None: unknown, malformed or expired."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ScimToken).where(ScimToken.token_hash == digest(token)))
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return row.id, row.directory_id


def token_use_due(session: Session, token_id: int) -> bool:
    used = session.scalar(select(ScimToken.last_used_at).where(ScimToken.id == token_id))
    return used is None or utcnow() - used >= _USE_RESOLUTION


def mark_token_used(session: Session, token_id: int) -> None:
    session.execute(update(ScimToken).where(ScimToken.id == token_id).values(last_used_at=utcnow()))


def token_summaries(session: Session, directory: Directory) -> list[dict[str, object]]:
    """The directory's live tokens, without secrets: prefix, created, expires, last used."""
    rows = session.scalars(
        select(ScimToken).where(_live(directory.id, utcnow())).order_by(ScimToken.id)
    )
    return [
        {
            "prefix": row.prefix,
            "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        }
        for row in rows
    ]
