"""Endpoint origins: which hosts a connector may talk to, and how an allow-list names them.

An entry is an origin, `scheme://host[:port]`, without path. The host may start
with `*.` for any subdomain (`https://*.okta.com`), the port may be `*` for any
port (`http://127.0.0.1:*`, for sandboxes on ports the OS picks). Providers
declare their public endpoints in this form (`ConnectionSettings.public_endpoints`)
and the operator allows others with ACCESSIQ_ALLOWED_ENDPOINTS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ldap": 389, "ldaps": 636}
ANY_PORT = -1


def is_loopback(host: str | None) -> bool:
    """True for hosts that never leave the machine, where plain http:// is acceptable.

    Only an IP literal in a loopback range or exactly `localhost`: a name such as
    `127.evil.example` is resolved by DNS and may lead anywhere.
    """
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of `url`, lower-cased and without a default port; "" when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname
    if not parts.scheme or not host:
        return ""
    scheme = parts.scheme.lower()
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


@dataclass(frozen=True)
class OriginPattern:
    """One allow-list entry: a scheme, a host (or `*.domain`) and a port (or any port)."""

    scheme: str
    host: str
    port: int | None  # None: the scheme's default port; ANY_PORT: every port

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        """An entry like `https://login.microsoftonline.us` or `http://127.0.0.1:*`; ValueError says what is wrong."""
        entry = text.strip().rstrip("/")
        wildcard_port = entry.endswith(":*")
        try:
            parts = urlsplit(entry[:-2] if wildcard_port else entry)
            port = parts.port
        except ValueError:
            raise ValueError(f"{text!r} has an invalid port") from None
        host = (parts.hostname or "").lower()
        if not parts.scheme or not host:
            raise ValueError(f"{text!r} is not an origin like https://host or http://127.0.0.1:*")
        if parts.path or parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{text!r} must be an origin only (scheme://host[:port]), without path or user")
        if "*" in host.removeprefix("*."):
            raise ValueError(f"{text!r}: a host wildcard is only a leading `*.`, as in https://*.okta.com")
        scheme = parts.scheme.lower()
        if scheme == "http" and not is_loopback(host):
            raise ValueError(f"{text!r}: plain http:// is accepted only for loopback addresses; use https://")
        if wildcard_port:
            port = ANY_PORT
        elif port == DEFAULT_PORTS.get(scheme):
            port = None
        return cls(scheme, host, port)

    def matches(self, url: str) -> bool:
        """True when `url` is on an origin this entry names."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        scheme = parts.scheme.lower()
        if scheme != self.scheme or not host:
            return False
        if self.host.startswith("*."):
            if not host.endswith(self.host[1:]):
                return False
        elif host != self.host:
            return False
        if self.port == ANY_PORT:
            return True
        default = DEFAULT_PORTS.get(scheme)
        return (port if port is not None else default) == (self.port if self.port is not None else default)


@dataclass(frozen=True)
class EndpointAllowList:
    """Origins a connector may be pointed at; empty allows nothing."""

    patterns: tuple[OriginPattern, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EndpointAllowList:
        return cls(tuple(OriginPattern.parse(entry) for entry in entries if entry.strip()))

    def allows(self, url: str) -> bool:
        return any(pattern.matches(url) for pattern in self.patterns)

    def __or__(self, other: EndpointAllowList) -> EndpointAllowList:
        return EndpointAllowList(self.patterns + other.patterns)
