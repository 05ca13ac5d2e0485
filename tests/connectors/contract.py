"""The connector contract: what every provider must do, whatever its wire format.

A provider's test module subclasses `ConnectorContract` and provides two fixtures:
`connector` (a ready connector on a known source) and `expected` (what that
source holds). Incremental connectors also provide `mutate`, a function that
changes the source; the contract then checks a read from the cursor sees it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from accessiq.connectors import connector_class
from accessiq.connectors.base import (
    CheckResult,
    ConnectionSettings,
    Connector,
    GroupRemoved,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceUser,
    UserRemoved,
    UserUpserted,
)

CHANGE_EVENTS = (UserUpserted, UserRemoved, GroupUpserted, GroupRemoved)


@dataclass
class Expected:
    """What the test source holds: user ids (with their enabled state) and groups with direct members."""

    users: dict[str, bool]  # external id -> active
    groups: dict[str, tuple[frozenset[str], frozenset[str]]]  # id -> (member users, member groups)
    group_names: dict[str, str] = field(default_factory=dict)


@dataclass
class Mirror:
    """A read folded the way the engine folds it: the source as the connector reported it."""

    users: dict[str, SourceUser] = field(default_factory=dict)
    groups: dict[str, GroupUpserted] = field(default_factory=dict)
    members: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    full: bool | None = None
    notes: list[str] = field(default_factory=list)
    rejected: list[RecordRejected] = field(default_factory=list)
    cursor: dict[str, Any] | None = None

    @classmethod
    def of(cls, events: Iterable[SourceEvent], base: Mirror | None = None) -> Mirror:
        mirror = base or cls()
        for event in events:
            mirror.apply(event)
        return mirror

    def apply(self, event: SourceEvent) -> None:
        if isinstance(event, ReadStarted):
            self.full = event.full
            if event.note:
                self.notes.append(event.note)
            if event.full:
                self.users.clear()
                self.groups.clear()
                self.members.clear()
        elif isinstance(event, UserUpserted):
            self.users[event.user.external_id] = event.user
        elif isinstance(event, UserRemoved):
            self.users.pop(event.external_id, None)
            for users, _ in self.members.values():
                users.discard(event.external_id)
        elif isinstance(event, GroupUpserted):
            gid = event.group.external_id
            self.groups[gid] = event
            users, groups = self.members.get(gid, (set(), set()))
            if event.replace_members:
                users, groups = set(), set()
            users = (users - event.removed_users) | event.added_users
            groups = (groups - event.removed_groups) | event.added_groups
            self.members[gid] = (users, groups)
        elif isinstance(event, GroupRemoved):
            self.groups.pop(event.external_id, None)
            self.members.pop(event.external_id, None)
            for _, groups in self.members.values():
                groups.discard(event.external_id)
        elif isinstance(event, RecordRejected):
            self.rejected.append(event)
        elif isinstance(event, ReadFinished):
            self.cursor = event.cursor

    def memberships(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        return {gid: (frozenset(u), frozenset(g)) for gid, (u, g) in self.members.items()}


class ConnectorContract:
    """Tests every connector passes. Subclasses override the `connector` and `expected` fixtures."""

    @pytest.fixture
    def connector(self) -> Connector:
        raise NotImplementedError("a provider's contract test provides a connector fixture")

    @pytest.fixture
    def expected(self) -> Expected:
        raise NotImplementedError("a provider's contract test provides an expected fixture")

    @pytest.fixture
    def mutate(self) -> Callable[[], None] | None:
        """Changes the source (one user's display name at least); None for sources that cannot change."""
        return None

    # --------------------------------------------------------------- the class

    def test_registered_under_its_provider_name(self, connector: Connector) -> None:
        assert connector_class(connector.provider) is type(connector)

    def test_settings_model_refuses_unknown_fields_and_names_its_secrets(self, connector: Connector) -> None:
        model = connector.settings_model
        assert issubclass(model, ConnectionSettings)
        assert set(model.secret_fields) <= set(model.model_fields)
        assert model.model_config.get("extra") == "forbid"
        for name in model.secret_fields:
            secret = getattr(connector.settings, name)
            if isinstance(secret, str) and secret:
                assert secret not in repr(connector.settings), f"{name} leaks into repr()"

    def test_names_its_tenant_by_non_secret_connection_fields(self, connector: Connector) -> None:
        model = connector.settings_model
        assert connector.tenant_fields, "two directories over one tenant could not be told apart"
        assert set(connector.tenant_fields) <= set(model.model_fields) - set(model.secret_fields)
        assert connector.tenant(connector.settings.model_dump(mode="json"))

    def test_a_first_full_read_note_is_ordinary(self, connector: Connector) -> None:
        # A first sync's note explains a full read: information for the run log, never a warning.
        note = next(e for e in connector.read(None) if isinstance(e, ReadStarted)).note
        assert note is None or note in connector.ordinary_notes, note

    def test_default_mapping_gives_the_core_attributes(self, connector: Connector) -> None:
        assert {"email", "username"} <= set(connector.default_mapping)
        assert all(isinstance(v, str) and v for v in connector.default_mapping.values())

    # --------------------------------------------------------------- check

    def test_check_succeeds_on_good_settings(self, connector: Connector) -> None:
        result = connector.check()
        assert isinstance(result, CheckResult)
        assert result.ok and not result.problems
        assert result.details and all(isinstance(d, str) for d in result.details)

    # --------------------------------------------------------------- read

    def test_read_starts_with_read_started_and_ends_with_read_finished(self, connector: Connector) -> None:
        events = list(connector.read(None))
        assert isinstance(events[0], ReadStarted) and events[0].full
        assert isinstance(events[-1], ReadFinished)
        kinds = Counter(type(e) for e in events)
        assert kinds[ReadStarted] == 1 and kinds[ReadFinished] == 1

    def test_ids_are_non_empty_strings(self, connector: Connector) -> None:
        for event in connector.read(None):
            if isinstance(event, UserUpserted):
                assert isinstance(event.user.external_id, str) and event.user.external_id
            elif isinstance(event, GroupUpserted):
                assert isinstance(event.group.external_id, str) and event.group.external_id
                assert isinstance(event.group.name, str) and event.group.name
                members = event.added_users | event.added_groups | event.removed_users | event.removed_groups
                assert all(isinstance(m, str) and m for m in members)
            elif isinstance(event, UserRemoved | GroupRemoved):
                assert isinstance(event.external_id, str) and event.external_id

    def test_a_full_read_reports_every_user_once_with_its_state(
        self, connector: Connector, expected: Expected
    ) -> None:
        events = list(connector.read(None))
        upserts = Counter(
            (e.user.external_id, json.dumps(dict(e.user.data), sort_keys=True, default=str))
            for e in events
            if isinstance(e, UserUpserted)
        )
        assert max(upserts.values()) == 1, "the same user record was sent twice in one read"
        mirror = Mirror.of(events)
        assert not mirror.rejected
        assert {uid: u.active for uid, u in mirror.users.items()} == expected.users

    def test_a_full_read_reports_groups_with_their_direct_members(
        self, connector: Connector, expected: Expected
    ) -> None:
        mirror = Mirror.of(connector.read(None))
        assert mirror.memberships() == expected.groups
        known = set(mirror.users) | set(mirror.groups)
        for users, groups in mirror.members.values():
            assert users <= set(mirror.users) and groups <= known
        for gid, name in expected.group_names.items():
            assert mirror.groups[gid].group.name == name

    def test_ids_are_stable_across_reads(self, connector: Connector) -> None:
        first, second = Mirror.of(connector.read(None)), Mirror.of(connector.read(None))
        assert set(first.users) == set(second.users)
        assert set(first.groups) == set(second.groups)
        assert first.memberships() == second.memberships()

    def test_cursor_is_plain_json(self, connector: Connector) -> None:
        mirror = Mirror.of(connector.read(None))
        assert mirror.cursor is None or json.loads(json.dumps(mirror.cursor)) == mirror.cursor
        if connector.incremental:
            assert mirror.cursor, "an incremental connector hands out a cursor"

    def test_reading_from_the_cursor_after_no_change_reports_no_change(self, connector: Connector) -> None:
        first = Mirror.of(connector.read(None))
        events = list(connector.read(first.cursor))
        assert isinstance(events[0], ReadStarted) and isinstance(events[-1], ReadFinished)
        if connector.incremental:
            assert not events[0].full
            assert not [e for e in events if isinstance(e, CHANGE_EVENTS)]
        else:
            # A connector without change tracking reads everything, and says so.
            assert events[0].full
            assert Mirror.of(events).users.keys() == first.users.keys()

    def test_reading_from_the_cursor_after_a_change_reports_it(
        self, connector: Connector, mutate: Callable[[], None] | None
    ) -> None:
        if mutate is None:
            pytest.skip("this source cannot change during a test")
        first = Mirror.of(connector.read(None))
        mutate()
        after = Mirror.of(
            connector.read(first.cursor),
            base=Mirror(
                users=dict(first.users),
                groups=dict(first.groups),
                members={k: (set(u), set(g)) for k, (u, g) in first.members.items()},
            ),
        )
        fresh = Mirror.of(connector.read(None))
        assert {k: dict(v.data) for k, v in after.users.items()} == {
            k: dict(v.data) for k, v in fresh.users.items()
        }
        assert after.memberships() == fresh.memberships()
        assert {k: u.active for k, u in after.users.items()} == {k: u.active for k, u in fresh.users.items()}

    def test_list_groups_matches_the_groups_a_read_reports(self, connector: Connector) -> None:
        listed = {g.external_id: g.name for g in connector.list_groups()}
        read = {gid: e.group.name for gid, e in Mirror.of(connector.read(None)).groups.items()}
        assert listed == read
