"""Sign-in throttling of the web UI, per account and per client address, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accessiq.server import create_app
from accessiq.services import accounts as auth
from accessiq.services import sign_in as throttle
from accessiq.store.database import Store
from accessiq.store.tables import SignInThrottle, utcnow

EMAIL = "admin@example.com"
OTHER = "other@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def admins(store: Store) -> None:
    with store.transaction() as session:
        auth.create_administrator(session, EMAIL, PASSWORD)
        auth.create_administrator(session, OTHER, PASSWORD)


def _client(store: Store, address: str = "192.0.2.10") -> TestClient:
    return TestClient(create_app(store), base_url="https://testserver", client=(address, 50000))


@pytest.fixture
def browser(store: Store, admins: None) -> Iterator[TestClient]:
    with _client(store) as client:
        yield client


def sign_in(client: TestClient, email: str, password: str) -> httpx.Response:
    form = client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found, form.text
    data = {"email": email, "password": password, "csrf_token": found.group(1), "next": "/users"}
    return client.post("/login", data=data, follow_redirects=False)


def _fail(client: TestClient, email: str, times: int) -> None:
    for _ in range(times):
        assert sign_in(client, email, "wrong password!").status_code == 401


def _assert_locked(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= 900
    assert f"Too many sign-in attempts; try again in {throttle.wait_in_words(wait)}." in response.text
    assert "aiq_session" not in response.headers.get("set-cookie", "")
    return wait


def test_five_failures_lock_the_account_even_for_the_right_password(browser: TestClient) -> None:
    _fail(browser, EMAIL, 5)
    _assert_locked(sign_in(browser, EMAIL, PASSWORD))
    _assert_locked(sign_in(browser, EMAIL.upper(), PASSWORD))


def test_a_successful_sign_in_resets_the_account(browser: TestClient) -> None:
    _fail(browser, EMAIL, 4)
    assert sign_in(browser, EMAIL, PASSWORD).status_code == 303
    _fail(browser, EMAIL, 4)
    signed_in = sign_in(browser, EMAIL, PASSWORD)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/users"


def test_an_unknown_account_locks_like_a_known_one(browser: TestClient) -> None:
    # Otherwise a lockout would tell an attacker which emails are administrators.
    _fail(browser, "nobody@example.com", 5)
    _assert_locked(sign_in(browser, "nobody@example.com", PASSWORD))


def test_other_accounts_from_the_address_wait_only_for_the_address_limit(store: Store, browser: TestClient) -> None:
    _fail(browser, EMAIL, 5)
    _assert_locked(sign_in(browser, EMAIL, PASSWORD))
    assert sign_in(browser, OTHER, PASSWORD).status_code == 303
    # 5 failures so far from this address; 15 more, each for another account, reach its limit of 20.
    for n in range(15):
        _fail(browser, f"guess{n}@example.com", 1)
    _assert_locked(sign_in(browser, OTHER, PASSWORD))
    with _client(store, "198.51.100.20") as elsewhere:
        assert sign_in(elsewhere, OTHER, PASSWORD).status_code == 303
        _assert_locked(sign_in(elsewhere, EMAIL, PASSWORD))


def test_processes_sharing_the_store_count_the_same_failures(store: Store, browser: TestClient) -> None:
    _fail(browser, EMAIL, 3)
    with _client(store) as second_process:
        _fail(second_process, EMAIL, 2)
        _assert_locked(sign_in(second_process, EMAIL, PASSWORD))
    _assert_locked(sign_in(browser, EMAIL, PASSWORD))


def test_the_lock_ends_after_the_window(store: Store, browser: TestClient) -> None:
    _fail(browser, EMAIL, 5)
    _assert_locked(sign_in(browser, EMAIL, PASSWORD))
    later = timedelta(seconds=901)
    with store.transaction() as session:
        for row in session.scalars(select(SignInThrottle)):
            row.window_started_at -= later
            row.expires_at -= later
            row.locked_until = row.locked_until - later if row.locked_until else None
    assert sign_in(browser, EMAIL, PASSWORD).status_code == 303
    # The old failures are gone with the window: four new ones do not lock.
    _fail(browser, EMAIL, 4)
    assert sign_in(browser, EMAIL, PASSWORD).status_code == 303
    with store.transaction() as session:
        stale = session.scalar(select(func.count()).where(SignInThrottle.expires_at < utcnow()))
    assert stale == 0, "expired counters are deleted"


def test_failures_outside_the_window_do_not_add_up(store: Store, admins: None) -> None:
    limits = throttle.Limits(per_account=3, per_address=100, window=timedelta(minutes=1))
    start = utcnow()
    for minute in range(5):
        with store.transaction() as session:
            now = start + timedelta(minutes=minute, seconds=1)
            assert throttle.sign_in(session, EMAIL, "wrong", address="192.0.2.1", limits=limits, now=now) is None
    with store.transaction() as session:
        now = start + timedelta(minutes=5)
        assert throttle.sign_in(session, EMAIL, PASSWORD, address="192.0.2.1", limits=limits, now=now) is not None


def test_parallel_guesses_do_not_slip_past_the_limit(store: Store, admins: None) -> None:
    limits = throttle.Limits()

    def guess(n: int) -> str:
        try:
            with store.transaction() as session:
                throttle.sign_in(session, EMAIL, f"guess {n}", address=f"192.0.2.{n}", limits=limits)
        except throttle.TooManyAttemptsError:
            return "locked"
        return "wrong"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(guess, range(8)))
    assert outcomes == ["locked"] * 3 + ["wrong"] * 5


class _CountingHasher:
    """Counts password verifications, to show which paths pay for one."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.verified = 0

    def verify(self, hashed: str, password: str) -> bool:
        self.verified += 1
        return bool(self.real.verify(hashed, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_failures_cost_one_hash_whether_the_account_exists_or_not(
    browser: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = _CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", hasher)
    _fail(browser, "nobody@example.com", 1)
    _fail(browser, EMAIL, 1)
    assert hasher.verified == 2
    _fail(browser, EMAIL, 4)
    _assert_locked(sign_in(browser, EMAIL, PASSWORD))
    assert hasher.verified == 6, "a locked attempt verifies nothing"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("192.0.2.1", "192.0.2.2", False),
    ],
)
def test_ipv6_addresses_count_per_64(first: str, second: str, same: bool) -> None:
    assert (throttle.address_key(first) == throttle.address_key(second)) is same


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (40, "40 seconds"), (60, "1 minute"), (61, "2 minutes"), (900, "15 minutes")],
)
def test_the_wait_is_said_in_seconds_or_minutes(seconds: int, words: str) -> None:
    assert throttle.wait_in_words(seconds) == words
