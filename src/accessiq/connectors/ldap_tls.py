"""Why a TLS connection to an LDAP server fails, in words an administrator can act on.

libldap on Debian uses GnuTLS and reports a failed certificate check only as
"(unknown error code)"; repeating the handshake with Python's ssl module (after a
StartTLS request when the directory uses one) names the certificate problem.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

# LDAPMessage { messageID 1, ExtendedRequest { requestName 1.3.6.1.4.1.1466.20037 } } (RFC 4511 4.14).
STARTTLS_REQUEST = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037"
_SUCCESS = b"\x0a\x01\x00"  # resultCode ENUMERATED 0


def diagnose_tls(url: str, *, start_tls: bool, ca_file: str | None, timeout: float) -> str | None:
    """The certificate problem of the server at `url`, or None when the handshake works or nothing answers."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    try:
        context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        return f"the CA file {ca_file} cannot be loaded ({exc})"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    with sock:
        try:
            if start_tls:
                sock.sendall(STARTTLS_REQUEST)
                answer = sock.recv(4096)
                if _SUCCESS not in answer[:16]:
                    return "the server refused StartTLS"
            with context.wrap_socket(sock, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError as exc:
            return tls_problem(str(exc.verify_message or exc))
        except ssl.SSLError as exc:
            return tls_problem(str(exc.reason or exc))
        except OSError:
            return None


def tls_problem(detail: str) -> str | None:
    """The certificate problem in a TLS error text from libldap (OpenSSL or GnuTLS), if it is one."""
    lowered = detail.lower()
    known = (
        ("self-signed", "the server's certificate is self-signed and not trusted"),
        ("self signed", "the server's certificate is self-signed and not trusted"),
        ("unable to get local issuer", "the certificate's issuer (CA) is not trusted"),
        ("issuer", "the certificate's issuer (CA) is not trusted"),
        ("not trusted", "the certificate's issuer (CA) is not trusted"),
        ("expired", "the server's certificate has expired"),
        ("hostname", "the certificate does not name this host"),
        ("host name", "the certificate does not name this host"),
        ("does not match", "the certificate does not name this host"),
        ("unexpected eof", "the server closed the connection during the TLS handshake"),
        ("wrong version", "the server does not speak TLS on this port"),
        ("packet", "the server does not speak TLS on this port"),
    )
    for needle, problem in known:
        if needle in lowered:
            return f"{problem} ({detail})"
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return detail
    return None
