"""Who may make a directory reach what on this server (SPEC §6 "Who may do what").

The CLI applies documents as the operator of the server: secret references
(`env:VAR`, `file:PATH`), any endpoint and any file. The REST API and the web UI
apply them for whoever holds a token or a session: there a secret is a value,
endpoints are the provider's public ones or those the operator allows, and
snapshot files lie in the snapshot directory. Faces build the policy; the
directory service asks `InputPolicy.admit` and nothing else decides.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accessiq.config import Settings
from accessiq.connectors.base import ConnectionSettings
from accessiq.endpoints import EndpointAllowList, origin_of
from accessiq.errors import ConfigurationError
from accessiq.store.crypto import KEY_FILE
from accessiq.sync.document import connection_model, validate_connection

_REFERENCE_KINDS = ("env:", "file:")
_OWN_VARIABLES = "ACCESSIQ_"
_SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class StoredConnection:
    """A directory's connection as stored: plain fields, secrets (decrypted) and how secrets were referenced."""

    connection: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict, repr=False)
    secret_refs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputPolicy:
    """What a document applied through one face may reach; build it with `operator()` or `from_settings()`."""

    # The operator on the server (the CLI): references, endpoints and paths are theirs to choose.
    trusted: bool = False
    # `env:PREFIX` and `file:/dir/` entries of ACCESSIQ_ALLOWED_SECRET_REFS.
    secret_refs: tuple[str, ...] = ()
    endpoints: EndpointAllowList = field(default_factory=EndpointAllowList)
    snapshot_dir: Path = Path("snapshots")
    # AccessIQ's own files and values, never reachable from the API or the UI.
    data_dir: Path | None = None
    own_files: frozenset[Path] = frozenset()
    own_values: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def operator(cls) -> InputPolicy:
        """Documents applied on the server with `accessiq directories apply` (and the demo)."""
        return cls(trusted=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> InputPolicy:
        """Documents that come through the REST API or the web UI."""
        data_dir = settings.data_dir.resolve()
        own_files = {data_dir / KEY_FILE}
        url = settings.resolved_database_url
        if url.startswith("sqlite:///"):
            database = Path(url.removeprefix("sqlite:///").split("?")[0]).resolve()
            own_files |= {database.with_name(database.name + suffix) for suffix in _SQLITE_SIDECARS}
        values = {settings.secret_key, settings.database_url, url}
        return cls(
            trusted=False,
            secret_refs=tuple(settings.allowed_secret_refs),
            endpoints=settings.endpoint_allow_list,
            snapshot_dir=settings.resolved_snapshot_dir.absolute(),
            data_dir=data_dir,
            own_files=frozenset(own_files),
            own_values=frozenset(v for v in values if v),
        )

    # ------------------------------------------------------------------ the decision

    def admit(self, provider: str, given: Mapping[str, Any], stored: StoredConnection) -> StoredConnection:
        """What to store for the `connection` block `given`, or the ConfigurationError naming the refused field.

        A value equal to the stored one is the choice of whoever set it and passes as
        it is: editing a directory's settings through the UI keeps the endpoint or the
        reference the operator gave it with the CLI, and reads nothing anew.
        """
        model = connection_model(provider)
        connection: dict[str, Any] = {}
        secrets = dict(stored.secrets)
        refs = dict(stored.secret_refs)
        for key, value in given.items():
            name = f"connection.{key}"
            if key in model.secret_fields:
                if not self.trusted and value is not None and value == refs.get(key):
                    continue
                secrets[key], ref = self._secret(value, name)
                if ref:
                    refs[key] = ref
                else:
                    refs.pop(key, None)
            elif key in model.path_fields and isinstance(value, str) and not self.trusted:
                unchanged = value == stored.connection.get(key)
                connection[key] = value if unchanged else self.snapshot_path(value, name)
            else:
                connection[key] = value
        validated = validate_connection(provider, {**connection, **secrets})
        if not self.trusted:
            self._check_endpoints(model, validated, stored.connection)
        return StoredConnection(connection, secrets, refs)

    def check_readable(self, provider: str, connection: Mapping[str, Any]) -> None:
        """Refuse to read, for this face, a file the directory names outside the snapshot directory."""
        if self.trusted:
            return
        for key in connection_model(provider).path_fields:
            if connection.get(key) is not None:
                self.snapshot_path(str(connection[key]), f"connection.{key}")

    def snapshot_path(self, value: str, name: str) -> str:
        """The absolute path of a snapshot file named through the API or UI, when it lies in the snapshot directory.

        A relative path is taken in the snapshot directory. Symlinks are followed
        before comparing, so a link in the directory cannot point out of it.
        """
        path = self.snapshot_dir / value
        real = path.resolve()
        if self._is_own_file(real):
            raise ConfigurationError(
                f"{value} is one of AccessIQ's own files, which a directory never reads",
                field=name,
                hint="give the path of a JSON snapshot of users and groups",
            )
        if not real.is_relative_to(self.snapshot_dir.resolve()):
            raise ConfigurationError(
                f"{value} is outside the snapshot directory {self.snapshot_dir} (symlinks followed); a directory "
                "made through the API or the web UI reads snapshot files only there",
                field=name,
                hint=f"put the file in {self.snapshot_dir} (ACCESSIQ_SNAPSHOT_DIR) and give its name, or apply the "
                "directory with `accessiq directories apply` on the server",
            )
        return str(path)

    # ------------------------------------------------------------------ parts

    def _check_endpoints(
        self, model: type[ConnectionSettings], validated: ConnectionSettings, stored: Mapping[str, Any]
    ) -> None:
        for key in model.public_endpoints:
            url = str(getattr(validated, key))
            previous = stored.get(key)
            if previous is not None and origin_of(str(previous)) == origin_of(url):
                continue
            if model.public_origins(key).allows(url) or self.endpoints.allows(url):
                continue
            raise ConfigurationError(
                f"{origin_of(url) or url} is not a public endpoint of this provider; directories made through "
                "the API or the web UI use only the provider's public endpoints and those the operator allows",
                field=f"connection.{key}",
                hint="leave the field empty for the provider's default, ask the operator to allow this origin with "
                "ACCESSIQ_ALLOWED_ENDPOINTS, or apply the directory with `accessiq directories apply` on the server",
            )

    def _secret(self, value: Any, name: str) -> tuple[Any, str | None]:
        """(the secret, the reference to remember for export) for a value given for a secret field."""
        if not isinstance(value, str) or not value.startswith(_REFERENCE_KINDS):
            return value, None
        if self.trusted:
            return _read_reference(value, name), value
        kind, _, target = value.partition(":")
        if kind == "env":
            allowed = any(p.startswith("env:") and target.startswith(p[4:]) for p in self.secret_refs)
            own = target.upper().startswith(_OWN_VARIABLES)
            source = value
        else:
            real = Path(target).resolve()
            allowed = any(
                p.startswith("file:") and real.is_relative_to(Path(p[5:]).resolve()) for p in self.secret_refs
            )
            own = self._is_own_file(real) or (self.data_dir is not None and real.is_relative_to(self.data_dir))
            # The path checked is the path read: a link swapped in between cannot redirect the read.
            source = f"file:{real}"
        if not allowed:
            raise ConfigurationError(
                f"{value!r}: secret references are honoured only in documents applied with "
                "`accessiq directories apply` on the server",
                field=name,
                hint="paste the secret itself, or ask the operator to allow this prefix with "
                "ACCESSIQ_ALLOWED_SECRET_REFS",
            )
        secret = None if own else _read_reference(source, name, shown=value)
        if own or self._is_own_value(secret):
            raise ConfigurationError(
                f"{value!r} reaches AccessIQ's own configuration (its master key, database or data directory), "
                "which is never available as a secret reference",
                field=name,
                hint="paste the secret itself",
            )
        return secret, value

    def _is_own_file(self, real: Path) -> bool:
        """True for the key file and the database, under their own name or another (a link)."""
        return any(real == own or _same_file(real, own) for own in self.own_files)

    def _is_own_value(self, secret: str | None) -> bool:
        """True when a resolved secret is the master key or the database URL under another name."""
        if not secret:
            return False
        own = set(self.own_values)
        if self.data_dir is not None:
            with contextlib.suppress(OSError):  # no key file: the key comes from ACCESSIQ_SECRET_KEY
                own.add((self.data_dir / KEY_FILE).read_text(encoding="utf-8").strip())
        return secret.strip() in own


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _read_reference(reference: str, name: str, *, shown: str | None = None) -> str:
    """The value an `env:VAR` or `file:PATH` reference names."""
    kind, _, target = reference.partition(":")
    if kind == "env":
        if target not in os.environ:
            raise ConfigurationError(f"environment variable {target} is not set", field=name)
        return os.environ[target]
    path = Path(target).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {shown or path}: {exc.strerror}", field=name) from None
