"""Browser tests: the real app on a real port, driven by Debian's Chromium through Playwright.

Chromium is /usr/bin/chromium (never a Playwright download). Without it the
tests skip, except with CI=true, where they fail. Screenshots of every page go
to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from browser_steps import GatedLauncher, Server

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.store.database import open_store

CHROMIUM = Path(os.environ.get("ACCESSIQ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("the playwright package is not installed")
        pytest.skip("the playwright package is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def allowed_endpoints() -> list[str]:
    """The operator's ACCESSIQ_ALLOWED_ENDPOINTS: sandboxes on loopback ports the OS picks.

    A test module overrides this fixture to allow more (an LDAP server, say).
    """
    return ["http://127.0.0.1:*"]


@pytest.fixture
def server(tmp_path: Path, allowed_endpoints: list[str]) -> Iterator[Server]:
    # The wizard connects snapshots in tmp_path and Graph sandboxes on loopback ports the OS picks.
    settings = Settings(
        data_dir=tmp_path, secret_key=TEST_KEY, snapshot_dir=tmp_path, allowed_endpoints=allowed_endpoints
    )
    store = open_store(settings)
    app = create_app(store, settings=settings, inline_worker=True)
    launcher = GatedLauncher(store)
    app.state.launcher = launcher
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", store, launcher, tmp_path)
    launcher.gate.set()
    uv.should_exit = True
    thread.join(timeout=10)
    launcher.close()
    store.dispose()


def _expected(text: str) -> bool:
    # A form refused with 401/422 renders its page with that status; Chromium logs every such load.
    return text.startswith("Failed to load resource: the server responded with a status of 4")


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server.url)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    opened.on(
        "console",
        lambda message: (
            server.console_errors.append(message.text)
            if message.type == "error" and not _expected(message.text)
            else None
        ),
    )
    opened.on("pageerror", lambda error: server.console_errors.append(str(error)))
    yield opened
    context.close()
    assert server.console_errors == [], server.console_errors
