"""Secrets a form carries back sealed open only for the directory and field they were typed for."""

from __future__ import annotations

from cryptography.fernet import Fernet

from accessiq.services import configure
from accessiq.store.crypto import SecretBox


def test_a_sealed_secret_opens_only_for_its_directory_and_field() -> None:
    box = SecretBox(Fernet.generate_key())
    sealed = configure.seal_pending_secrets(box, 7, {"client_secret": "s3cret", "tenant_id": "t"}, "entra")
    assert set(sealed) == {"client_secret"}, "only secrets are sealed"
    assert "s3cret" not in sealed["client_secret"]
    assert configure.open_pending_secrets(box, 7, sealed) == {"client_secret": "s3cret"}
    assert configure.open_pending_secrets(box, 8, sealed) == {}, "another directory"
    assert configure.open_pending_secrets(box, 7, {"certificate": sealed["client_secret"]}) == {}, "another field"
    new = configure.pending_owner("Contoso", "entra")
    assert configure.open_pending_secrets(box, new, sealed) == {}


def test_a_forged_or_foreign_token_is_ignored() -> None:
    box = SecretBox(Fernet.generate_key())
    foreign = SecretBox(Fernet.generate_key()).seal({"directory": 7, "field": "client_secret", "value": "x"})
    assert foreign is not None
    tokens = {"client_secret": foreign.decode(), "certificate": "not a token", "api_token": "é"}
    assert configure.open_pending_secrets(box, 7, tokens) == {}
