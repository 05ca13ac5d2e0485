"""Local, wire-faithful emulations of directory providers, for demos, tests and benchmarks.

Each provider module builds an ASGI app over a seeded `people.Population`;
`SandboxServer` runs any of them on a loopback port in a background thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    import typer


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SandboxServer:
    """Serves an ASGI app with uvicorn in a daemon thread; a context manager that stops it on exit."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class DemoSandbox:
    """A sandbox started in-process for `accessiq serve --demo`, and the directory document that reads it."""

    server: SandboxServer
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxSpec:
    """What a provider's sandbox module offers; its connector names it in `Connector.sandbox`.

    `commands` is mounted as `accessiq sandbox PROVIDER`: with no subcommand it serves a seeded
    sandbox in the foreground and prints a directory document; its subcommands change a running
    one. `start_demo`, when given, starts one in-process for `serve --demo`.
    """

    commands: typer.Typer
    start_demo: Callable[[], DemoSandbox] | None = None


class OAuthError(Exception):
    """An error of a sandbox's token endpoint, in the OAuth shape (`error`, `error_description`)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
