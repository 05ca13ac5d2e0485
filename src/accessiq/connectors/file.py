"""The `file` provider: a JSON snapshot of users and groups.

Every read of a changed file reads all of it. The cursor holds the digest of the bytes last read
(and the records they held that were refused), so a run that finds the same bytes again reads no
change, as a delta query that returns nothing would, instead of parsing and comparing it all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
from pydantic import Field

from accessiq.connectors.base import (
    CheckResult,
    ConnectionSettings,
    Connector,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceGroup,
    SourceUser,
    UserUpserted,
)
from accessiq.errors import SourceError, UnreachableError


class FileConnection(ConnectionSettings):
    """Connection block of a `file` directory: where the snapshot lies on the server."""

    # Through the API or the web UI the file must lie in the snapshot directory (ACCESSIQ_SNAPSHOT_DIR).
    path_fields: ClassVar[tuple[str, ...]] = ("path",)

    path: str = Field(
        title="Snapshot file",
        description='Path on the server of a JSON file {"users": [...], "groups": [...]}; through the web UI '
        "and the API it must lie in the snapshot directory (ACCESSIQ_SNAPSHOT_DIR).",
        json_schema_extra={"kind": "file"},
    )


class FileConnector(Connector):
    """Reads `{"users": [...], "groups": [...]}`; `id` is the external id, extra fields map by path."""

    provider = "file"
    title = "JSON snapshot file"
    description = "A JSON export of users and groups, for tests, demos and offline imports."
    settings_model = FileConnection
    tenant_fields = ("path",)
    org_unit_example = "/Sales"  # a record's "org_unit" field
    default_mapping = {
        "email": "email",
        "username": "username",
        "given_name": "given_name",
        "family_name": "family_name",
        "display_name": "display_name",
    }
    example_fields = ("department", "location.city")
    incremental = True
    cursor_is_whole_read = True

    settings: FileConnection

    def _load(self, content: bytes | None = None) -> dict[str, Any]:
        path = Path(self.settings.path)
        try:
            document = _parse(self._bytes() if content is None else content)
        except json.JSONDecodeError as exc:
            raise SourceError(f"snapshot file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except (RecursionError, ValueError) as exc:  # nesting past Python's stack; text that is not UTF-8
            raise SourceError(f"snapshot file {path} cannot be read: {str(exc)[:120]}") from None
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("users", []), list)
            or not isinstance(document.get("groups", []), list)
        ):
            raise SourceError(f"snapshot file {path} must be an object with 'users' and 'groups' lists")
        return document

    def check(self) -> CheckResult:
        document = self._load()
        return CheckResult(
            ok=True,
            details=[
                f"{len(document.get('users', []))} users and {len(document.get('groups', []))} "
                f"groups in {self.settings.path}"
            ],
        )

    def _bytes(self) -> bytes:
        path = Path(self.settings.path)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise UnreachableError(f"snapshot file {path} does not exist", hint="check connection.path") from None
        except OSError as exc:
            raise UnreachableError(f"cannot read snapshot file {path}: {exc.strerror}") from None

    def read(self, cursor: dict[str, Any] | None = None) -> Iterator[SourceEvent]:
        content = self._bytes()
        digest = hashlib.sha256(content).hexdigest()
        if cursor is not None and cursor.get("v") == _CURSOR_VERSION and cursor.get("sha256") == digest:
            # The very bytes the last applied read saw: no record changed. Its refusals stand.
            yield ReadStarted(full=False)
            for obj, external_id, message in cursor.get("rejected", []):
                yield RecordRejected(obj, external_id, message)
            yield ReadFinished(cursor=cursor)
            return
        rejected: list[list[Any]] = []
        yield ReadStarted(full=True)
        for event in self._records(self._load(content)):
            if isinstance(event, RecordRejected):
                rejected.append([event.object, event.external_id, event.message])
            yield event
        yield ReadFinished(cursor={"v": _CURSOR_VERSION, "sha256": digest, "rejected": rejected})

    def _records(self, document: dict[str, Any]) -> Iterator[SourceEvent]:
        """Every user and group of the document, or why one is refused."""
        users = _keyed(document.get("users", []))
        groups = _keyed(document.get("groups", []))
        for position, record in enumerate(document.get("users", [])):
            if not isinstance(record, dict) or not _has_id(record):
                yield RecordRejected("user", None, f"users[{position}] has no 'id'")
                continue
            active = record.get("active", True)
            if not isinstance(active, bool):
                yield RecordRejected("user", str(record["id"]), "'active' must be true or false")
                continue
            yield UserUpserted(SourceUser(str(record["id"]), record, active, record.get("org_unit")))
        for position, group in enumerate(document.get("groups", [])):
            if not isinstance(group, dict) or not _has_id(group):
                yield RecordRejected("group", None, f"groups[{position}] has no 'id'")
                continue
            if not isinstance(group.get("members", []), list):
                yield RecordRejected("group", str(group["id"]), "'members' must be a list of ids")
                continue
            members = [str(member) for member in group.get("members", [])]
            yield GroupUpserted(
                SourceGroup(
                    external_id=str(group["id"]),
                    name=str(group.get("name") or group["id"]),
                    description=group.get("description"),
                    email=group.get("email"),
                    dn=group.get("dn"),
                ),
                # A member id names a user or a group; one that names neither is
                # ignored, as a directory ignores a dangling reference.
                added_users=frozenset(users.intersection(members)),
                added_groups=frozenset(groups.intersection(members)),
                replace_members=True,
            )


_CURSOR_VERSION = 1


def _parse(content: bytes) -> Any:
    """The document, by orjson; what orjson refuses (numbers past 64 bits, deep nesting) by json,
    which also says what is wrong."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content.decode("utf-8"))


def _has_id(record: dict[str, Any]) -> bool:
    """An id is text or a whole number; an object, a list or a boolean names nothing."""
    external_id = record.get("id")
    if type(external_id) is str:  # nearly always
        return external_id != ""
    return isinstance(external_id, str | int) and not isinstance(external_id, bool) and external_id != ""


def _keyed(records: list[Any]) -> set[str]:
    return {str(r["id"]) for r in records if isinstance(r, dict) and _has_id(r)}
