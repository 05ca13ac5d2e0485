"""What the security tests attack with: a listener on 127.0.0.2, documents pointing at it, a signed-in browser.

The listener is what an attacker would run: a small HTTP server that records every request.

It answers as a Microsoft Entra sign-in endpoint would, so a connector pointed at
it goes as far as sending its credentials: an OpenID configuration whose token
endpoint is the listener itself, and a token for any client.
Every other request gets 404 with `BODY`, which an error message must not quote
unless the endpoint is trusted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from fastapi.testclient import TestClient

from accessiq.services import accounts as auth
from accessiq.store.database import Store

BODY = "LISTENER-PAGE: internal service answer that must stay on the server"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Listener:
    host: str = "127.0.0.2"
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener._record(self, "")
                if self.path.endswith("/.well-known/openid-configuration"):
                    tenant = self.path.split("/")[1]
                    root = f"{listener.url}/{tenant}"
                    self._answer(
                        200,
                        {
                            "issuer": f"{listener.url}/{tenant}/v2.0",
                            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                            "token_endpoint": f"{root}/oauth2/v2.0/token",
                        },
                    )
                else:
                    self._answer(404, BODY)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                listener._record(self, self.rfile.read(length).decode("utf-8", "replace"))
                self._answer(200, {"access_token": "listener-token", "token_type": "Bearer", "expires_in": 3599})

            def _answer(self, status: int, body: object) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads `requests` instead."""

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def received(self, text: str) -> bool:
        """True when `text` reached the listener anywhere: path, headers or body."""
        return any(
            text in r.path or text in r.body or any(text in value for value in r.headers.values())
            for r in self.requests
        )

    def _record(self, handler: BaseHTTPRequestHandler, body: str) -> None:
        self.requests.append(Received(handler.command, handler.path, dict(handler.headers.items()), body))

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def entra_document(endpoint: str, client_secret: str, name: str = "Contoso") -> dict[str, Any]:
    """An Entra directory whose sign-in and Graph endpoints are `endpoint`."""
    return {
        "name": name,
        "provider": "entra",
        "connection": {
            "tenant_id": "contoso.example",
            "client_id": "00000000-0000-0000-0000-000000000001",
            "client_secret": client_secret,
            "authority_url": endpoint,
            "graph_url": endpoint,
        },
    }


def refused_field(response: Any) -> str | None:
    """The field a 422 configuration error names (None when the answer is not such an error)."""
    if response.status_code != 422:
        return None
    error = response.json()["error"]
    return str(error["field"]) if error["kind"] == "configuration" else None


def admin_form(store: Store, client: TestClient) -> Callable[[str, dict[str, str]], Any]:
    """`post(path, fields)`: a form post from a signed-in administrator's browser, CSRF token included."""
    with store.transaction() as session:
        admin = auth.create_administrator(session, "admin@example.com", "correct horse battery staple")
        cookie, signed_in = auth.start_session(session, admin)
    client.cookies.set("aiq_session", cookie)

    def post(path: str, fields: dict[str, str]) -> Any:
        return client.post(path, data={**fields, "csrf_token": signed_in.csrf_token}, follow_redirects=False)

    return post
