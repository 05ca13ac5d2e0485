"""Logs carry no secrets: tracebacks without frame locals, secret fields and credentials in text redacted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from accessiq.logs import configure_logging, redact_secrets

FORMATS = ["json", "console"]


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def connect_with_a_secret_in_scope() -> None:
    secret = "s3cr3t"
    raise ConnectionError(f"the directory refused a {len(secret)}-character secret")


def test_tracebacks_leave_frame_variables_out(capsys: pytest.CaptureFixture[str]) -> None:
    written: dict[str, str] = {}
    for fmt in FORMATS:
        configure_logging("info", fmt)
        try:
            connect_with_a_secret_in_scope()
        except ConnectionError:
            structlog.get_logger().exception("connect.failed")
        written[fmt] = out = capsys.readouterr().err
        assert "connect.failed" in out and "connect_with_a_secret_in_scope" in out, out
        assert "s3cr3t" not in out and "locals" not in out, out
    frames = json.loads(written["json"])["exception"][0]["frames"]
    assert frames and all(set(frame) == {"filename", "lineno", "name"} for frame in frames)


@pytest.mark.parametrize("fmt", FORMATS)
def test_secret_fields_and_authorization_headers_are_redacted(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    configure_logging("info", fmt)
    structlog.get_logger().warning(
        "token.refused",
        client_secret="cs-value",
        headers={"Authorization": "Bearer abc123", "X-Api-Key": "k-value", "Accept": "application/json"},
        connection={"url": "ldaps://dc.example.com", "bind_password": "bind-value", "tries": [{"token": "t-value"}]},
        detail="sent Authorization: Bearer abc123; okta answered to SSWS 00okta-value",
    )
    out = capsys.readouterr().err
    for secret in ("cs-value", "abc123", "k-value", "bind-value", "t-value", "00okta-value"):
        assert secret not in out, out
    for kept in ("token.refused", "application/json", "ldaps://dc.example.com", "[redacted]"):
        assert kept in out, out
    if fmt == "json":
        event = json.loads(out)
        assert event["client_secret"] == "[redacted]"
        assert event["headers"] == {
            "Authorization": "[redacted]",
            "X-Api-Key": "[redacted]",
            "Accept": "application/json",
        }
        assert event["connection"]["tries"] == [{"token": "[redacted]"}]
        assert event["detail"] == "sent Authorization: Bearer [redacted]; okta answered to SSWS [redacted]"


@pytest.mark.parametrize("fmt", FORMATS)
def test_credentials_in_exception_text_are_redacted(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    configure_logging("info", fmt)
    try:
        raise PermissionError("the token endpoint refused client_secret=cs-value&grant_type=client_credentials")
    except PermissionError:
        structlog.get_logger().exception("token.failed")
    out = capsys.readouterr().err
    assert "cs-value" not in out, out
    assert "client_secret=[redacted]&grant_type=client_credentials" in out, out


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer eyJ0.eXAi.sig", "Authorization: Bearer [redacted]"),
        ("authorization=SSWS 00abc", "authorization=SSWS [redacted]"),
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic [redacted]"),
        ("{'client_secret': 'x1', 'client_id': 'app'}", "{'client_secret': '[redacted]', 'client_id': 'app'}"),
        ('{"password": "p w"}', '{"password": "[redacted]"}'),
        ("grant_type=refresh_token&refresh_token=r1", "grant_type=refresh_token&refresh_token=[redacted]"),
        ("postgresql://aiq:pw@db:5432/aiq", "postgresql://aiq:[redacted]@db:5432/aiq"),
        (
            "key -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- end",
            "key [redacted] end",
        ),
        ("a bearer of good news; the token endpoint", "a bearer of good news; the token endpoint"),
    ],
)
def test_credentials_in_text(text: str, redacted: str) -> None:
    assert redact_secrets(None, "info", {"event": text}) == {"event": redacted}
