"""The sign-in page tells an administrator locked out by failed sign-ins when to try again."""

from __future__ import annotations

import re
from typing import Any

from browser_steps import ADMIN_EMAIL, ADMIN_PASSWORD, Server, create_admin, shot


def test_sign_in_page_shows_too_many_attempts(page: Any, server: Server) -> None:
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    create_admin(server.store)
    page.goto("/login")
    for attempt in range(5):
        page.fill("#email", ADMIN_EMAIL)
        page.fill("#password", f"not the password {attempt}")
        with page.expect_response("**/login") as answered:
            page.get_by_role("button", name="Sign in").click()
        assert answered.value.status == 401
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")

    page.fill("#password", ADMIN_PASSWORD)
    with page.expect_response("**/login") as answered:
        page.get_by_role("button", name="Sign in").click()
    assert answered.value.status == 429
    assert 0 < int(answered.value.headers["retry-after"]) <= 900
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(re.compile(r"^Too many sign-in attempts; try again in \d+ (minutes?|seconds?)\.$"))
    expect(alert).to_be_visible()
    assert page.input_value("#email") == ADMIN_EMAIL
    shot(page, "39-sign-in-too-many-attempts")
