"""Directory secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from accessiq.errors import ConfigurationError

KEY_FILE = "accessiq.key"


class SecretBox:
    """Encrypts and decrypts a directory's secrets as one JSON object."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
            raw = key.encode() if isinstance(key, str) else key
            self._fingerprint_key = hmac.new(raw, b"accessiq secret fingerprint", hashlib.sha256).digest()
        except (ValueError, TypeError):
            raise ConfigurationError(
                "not a valid Fernet key (32 url-safe base64-encoded bytes)",
                field="ACCESSIQ_SECRET_KEY",
                hint="generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
            ) from None

    def seal(self, secrets: dict[str, Any]) -> bytes | None:
        return self._fernet.encrypt(json.dumps(secrets).encode()) if secrets else None

    def fingerprint(self, value: Any) -> str:
        """A keyed digest of a secret value: it tells whether a secret changed, and nothing about it
        to anyone without the master key."""
        text = json.dumps(value, sort_keys=True, default=str).encode()
        return hmac.new(self._fingerprint_key, text, hashlib.sha256).hexdigest()[:32]

    def open(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            secrets: dict[str, Any] = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ConfigurationError(
                "stored directory secrets cannot be decrypted with this key",
                field="ACCESSIQ_SECRET_KEY",
                hint="use the key the secrets were written with, or re-apply the directory's secrets",
            ) from None
        return secrets


def load_or_create_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, else the one in the data directory, generated there on first start."""
    if configured:
        return configured
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # Create with 0600 from the start so the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
