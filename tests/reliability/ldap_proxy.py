"""A TCP proxy in front of a real slapd that misbehaves on purpose, LDAP message by LDAP message.

It frames the BER stream both ways (every LDAPMessage is a SEQUENCE with its length), so
a fault can hit "the third search" and, in its answer, "the entry after the second":
cut the connection in the middle of that entry, stall, drop the page's end, corrupt an
entry, hand back an earlier paged-results cookie, or answer the search itself with an
LDAP result code (insufficientAccessRights, busy, e-syncRefreshRequired) as a server would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

SEARCH_REQUEST = 0x63
SEARCH_ENTRY = 0x64
SEARCH_DONE = 0x65
PAGED_RESULTS_OID = b"1.2.840.113556.1.4.319"
SYNC_REQUEST_OID = b"1.3.6.1.4.1.4203.1.9.1.1"


@dataclass
class ProxyFault:
    """A fault for the search requests after `after` matching ones, `count` times.

    kind: cut (mid-entry, after `entries` entries) | stall (`seconds` before anything of the answer,
    then the connection drops) | truncate (the page's entries, never its end) | corrupt (an entry
    that does not decode) | loop (the first page of a paged search again, cookie and all) |
    refuse (the search is answered with `result`, e.g. 50 insufficientAccessRights).
    """

    kind: str
    after: int = 0
    count: int = 1
    entries: int = 2
    seconds: float = 0.0
    result: int = 50
    # Only searches that carry this control (the syncrepl request, say); None: every search.
    control: bytes | None = None


@dataclass
class _Connection:
    client: socket.socket
    server: socket.socket
    pending: dict[int, ProxyFault] = field(default_factory=dict)
    entries: dict[int, int] = field(default_factory=dict)
    # Each search's entries as they come, and the first page of a paged search this connection
    # saw (its entries and its SearchResultDone), which `loop` serves again.
    answers: dict[int, list[bytes]] = field(default_factory=dict)
    first_page: list[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class LdapFaultProxy:
    """Listens on a loopback port and forwards to `upstream`; `inject` arms a fault."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._faults: list[ProxyFault] = []
        self._lock = threading.Lock()
        self.served = 0
        self._stopped = False
        self._connections: list[_Connection] = []
        threading.Thread(target=self._accept, name="ldap-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def inject(self, fault: ProxyFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for conn in list(self._connections):
            conn.close()

    # ------------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = _Connection(client, server)
            self._connections.append(conn)
            threading.Thread(target=self._upstream, args=(conn,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(conn,), daemon=True).start()

    def _take(self, message: bytes) -> ProxyFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.control is not None and fault.control not in message:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.count -= 1
                self._faults = [f for f in self._faults if f.count > 0]
                self.served += 1
                return fault
        return None

    def _upstream(self, conn: _Connection) -> None:
        """Client to server: searches are where faults start."""
        try:
            for message in _messages(conn.client):
                msgid, op = _header(message)
                if op == SEARCH_REQUEST:
                    fault = self._take(message)
                    if fault is not None and fault.kind == "refuse":
                        conn.client.sendall(search_done(msgid, fault.result))
                        continue
                    if fault is not None:
                        with conn.lock:
                            conn.pending[msgid] = fault
                conn.server.sendall(message)
        except OSError:
            pass
        conn.close()

    def _downstream(self, conn: _Connection) -> None:
        """Server to client: answers of a faulted search are cut, stalled, corrupted or rewritten."""
        try:
            for message in _messages(conn.server):
                msgid, op = _header(message)
                with conn.lock:
                    fault = conn.pending.get(msgid)
                answer = conn.answers.setdefault(msgid, [])
                answer.append(message)
                if op == SEARCH_DONE:
                    conn.answers.pop(msgid, None)
                    if conn.first_page is None and _paged_cookie(message):
                        conn.first_page = answer
                if fault is not None and fault.kind == "loop" and conn.first_page is not None:
                    # Served instead of this page: the first page again, cookie and all, as a server that
                    # went back would. The real answer is swallowed.
                    if op == SEARCH_DONE:
                        for earlier in conn.first_page:
                            conn.client.sendall(_renumbered(earlier, msgid))
                    continue
                if fault is None or fault.kind == "loop":
                    conn.client.sendall(message)
                    continue
                if fault.kind == "stall":
                    time.sleep(fault.seconds)
                    break
                if op == SEARCH_ENTRY:
                    seen = conn.entries.get(msgid, 0)
                    conn.entries[msgid] = seen + 1
                    if fault.kind == "cut" and seen >= fault.entries:
                        conn.client.sendall(message[: len(message) // 2])
                        break
                    if fault.kind == "corrupt" and seen >= fault.entries:
                        message = _corrupt(message)
                if op == SEARCH_DONE and fault.kind in ("truncate", "cut"):
                    break
                conn.client.sendall(message)
        except OSError:
            pass
        conn.close()


# ---------------------------------------------------------------------- BER


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _messages(sock: socket.socket) -> Iterator[bytes]:
    """Whole LDAPMessages (tag, length, content) as they come."""
    while True:
        head = _read_exactly(sock, 2)
        if head[1] < 0x80:
            length, extra = head[1], b""
        else:
            extra = _read_exactly(sock, head[1] & 0x7F)
            length = int.from_bytes(extra, "big")
        yield head + extra + _read_exactly(sock, length)


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the TLV at `at`."""
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, at + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[at + 2 : at + 2 + n], "big")
    return tag, at + 2 + n, at + 2 + n + length


def _header(message: bytes) -> tuple[int, int]:
    """(messageID, protocolOp tag) of an LDAPMessage."""
    _, start, _ = _tlv(message, 0)
    _, id_start, id_end = _tlv(message, start)
    return int.from_bytes(message[id_start:id_end], "big", signed=True), message[id_end]


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _integer(tag: int, value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return bytes([tag]) + _length(len(raw)) + raw


def search_done(msgid: int, result: int, message: str = "") -> bytes:
    """A SearchResultDone with `result` (an LDAPResult with empty matchedDN), as slapd sends one."""
    text = message.encode()
    body = _integer(0x0A, result) + b"\x04\x00" + b"\x04" + _length(len(text)) + text
    op = bytes([SEARCH_DONE]) + _length(len(body)) + body
    content = _integer(0x02, msgid) + op
    return b"\x30" + _length(len(content)) + content


def _corrupt(message: bytes) -> bytes:
    """The same entry, its protocolOp claiming more bytes than the message holds: it cannot decode."""
    _, start, _ = _tlv(message, 0)
    _, _, id_end = _tlv(message, start)
    tag, op_start, op_end = _tlv(message, id_end)
    content = message[op_start:op_end]
    op = bytes([tag]) + _length(len(content) + 7) + content
    inner = message[start:id_end] + op
    return b"\x30" + _length(len(inner)) + inner


def _paged_cookie(message: bytes) -> bytes:
    """The cookie of the paged-results control of a SearchResultDone (empty when the search is done)."""
    at = message.find(PAGED_RESULTS_OID)
    if at < 0:
        return b""
    at += len(PAGED_RESULTS_OID)
    # Control ::= SEQUENCE { controlType, criticality BOOLEAN OPTIONAL, controlValue OCTET STRING }
    while message[at] != 0x04:
        _, _, end = _tlv(message, at)
        at = end
    _, value_start, _ = _tlv(message, at)
    _, seq_start, _ = _tlv(message, value_start)
    _, _, size_end = _tlv(message, seq_start)
    _, cookie_start, cookie_end = _tlv(message, size_end)
    return message[cookie_start:cookie_end]


def _renumbered(message: bytes, msgid: int) -> bytes:
    """The same LDAPMessage under another messageID."""
    _, start, _ = _tlv(message, 0)
    _, _, id_end = _tlv(message, start)
    content = _integer(0x02, msgid) + message[id_end:]
    return b"\x30" + _length(len(content)) + content
