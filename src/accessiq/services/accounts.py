"""Who may use the API and the web UI: administrators, API tokens and browser sessions.

Passwords are kept as Argon2id hashes (argon2-cffi). API tokens and session ids
are long random strings, so a SHA-256 digest is enough to store them: nothing
reversible is ever written.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from accessiq.errors import ConfigurationError, ConflictError, NotFoundError
from accessiq.store.tables import Administrator, ApiToken, WebSession, utcnow

TOKEN_PREFIX = "aiq_"
SCOPES = ("read", "write")
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD = 12

_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# Verifying against this keeps a sign-in for an unknown email as slow as one for a known email.


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so both cases take as long (made once)."""
    return _hasher.hash("not a real password, only for timing")


def digest(value: str) -> str:
    """SHA-256 hex digest of a token or session id, the form in which the store keeps them."""
    return hashlib.sha256(value.encode()).hexdigest()


# -- administrators ----------------------------------------------------------------------------


def count_administrators(session: Session) -> int:
    return int(session.scalar(select(func.count(Administrator.id))) or 0)


def create_administrator(session: Session, email: str, password: str) -> Administrator:
    """A new administrator; the password must be at least 12 characters."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise ConfigurationError(f"{email!r} is not a valid email address", field="email")
    if len(password) < MIN_PASSWORD:
        raise ConfigurationError(f"use at least {MIN_PASSWORD} characters", field="password")
    if session.scalar(select(Administrator.id).where(Administrator.email_key == email.casefold())):
        raise ConflictError(f"an administrator {email} already exists")
    admin = Administrator(email=email, email_key=email.casefold(), password_hash=_hasher.hash(password), disabled=False)
    session.add(admin)
    session.flush()
    return admin


def set_password(session: Session, admin: Administrator, password: str) -> None:
    """Replace the password and end the administrator's browser sessions."""
    if len(password) < MIN_PASSWORD:
        raise ConfigurationError(f"use at least {MIN_PASSWORD} characters", field="password")
    admin.password_hash = _hasher.hash(password)
    session.execute(delete(WebSession).where(WebSession.administrator_id == admin.id))


def get_administrator(session: Session, email: str) -> Administrator:
    admin = session.scalar(select(Administrator).where(Administrator.email_key == email.strip().casefold()))
    if admin is None:
        raise NotFoundError(f"no administrator {email!r}")
    return admin


def list_administrators(session: Session) -> list[Administrator]:
    return list(session.scalars(select(Administrator).order_by(Administrator.email_key)))


def authenticate(session: Session, email: str, password: str) -> Administrator | None:
    """The administrator whose email and password these are, or None."""
    admin = session.scalar(select(Administrator).where(Administrator.email_key == email.strip().casefold()))
    try:
        _hasher.verify(admin.password_hash if admin else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if admin is None or admin.disabled:
        return None
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.last_login_at = utcnow()
    return admin


# -- API tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    """A token as created: the secret is shown this once and never again."""

    token: ApiToken
    secret: str


def create_token(session: Session, name: str, *, scope: str = "write", created_by: str | None = None) -> IssuedToken:
    name = name.strip()
    if not name:
        raise ConfigurationError("give the token a name that says who or what uses it", field="name")
    if scope not in SCOPES:
        raise ConfigurationError(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name[:200], prefix=secret[:12], token_hash=digest(secret), scope=scope, created_by=created_by)
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def token_for(session: Session, secret: str) -> ApiToken | None:
    """The live token with this secret (not revoked); None otherwise. Only reads: see `mark_token_used`."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    return token


_USE_RECORDED_EVERY = timedelta(minutes=1)


def token_use_due(token: ApiToken, now: datetime | None = None) -> bool:
    """Whether this use should be recorded: at most once a minute, or every API call would be a write."""
    return token.last_used_at is None or (now or utcnow()) - token.last_used_at > _USE_RECORDED_EVERY


def mark_token_used(session: Session, token_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - _USE_RECORDED_EVERY))
        .values(last_used_at=now)
    )


# -- browser sessions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """A browser session: who it is and the CSRF token its forms carry."""

    administrator_id: int
    email: str
    csrf_token: str
    session_id: int


def start_session(session: Session, admin: Administrator) -> tuple[str, SignedIn]:
    """A new session for `admin`; returns (cookie value, the session)."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    cookie = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=digest(cookie),
        administrator_id=admin.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    return cookie, SignedIn(admin.id, admin.email, row.csrf_token, row.id)


def session_for(session: Session, cookie: str, now: datetime | None = None) -> SignedIn | None:
    """The live session this cookie names, or None (unknown, expired, or its administrator disabled)."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(cookie)))
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    admin = session.get(Administrator, row.administrator_id)
    if admin is None or admin.disabled:
        return None
    return SignedIn(admin.id, admin.email, row.csrf_token, row.id)


def end_session(session: Session, cookie: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == digest(cookie)))
