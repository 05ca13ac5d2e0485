"""Hostile data, property-based: whatever a document, a template or a directory record holds, the
answer is a refusal naming the field or an error on that record, never an exception out of a run.

The directory's records come from whoever can edit a profile in the source (a display name, a
custom attribute, a group description); a mapping template from an administrator of AccessIQ.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from accessiq.connectors import active_directory as ad
from accessiq.connectors import okta
from accessiq.connectors.base import (
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceUser,
    UserRemoved,
    UserUpserted,
)
from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.connectors.file import FileConnection, FileConnector
from accessiq.connectors.google import _source_group as google_group
from accessiq.connectors.google import _user_record as google_record
from accessiq.connectors.ldap import LdapConnector
from accessiq.connectors.ldap_entries import openldap_disabled
from accessiq.connectors.ldap_settings import LdapConnection
from accessiq.errors import ConfigurationError
from accessiq.sync.document import parse_document
from accessiq.sync.emails import email_key, email_problem
from accessiq.sync.mapping import CompiledMapping, MappingError
from accessiq.sync.planner import plan_sync
from accessiq.sync.scope import transitive_users
from accessiq.sync.source import SourceSnapshot
from accessiq.sync.template_sandbox import MAX_TEXT

from ..sync.planner_kit import context, group, rule, source, state, stored, user

HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text a directory could send: every plane, controls, NUL, surrogate escapes, long runs.
texts = st.text(alphabet=st.characters(codec=None), max_size=60) | st.sampled_from(
    ["", "\x00", "\u202e", "\u200b", "x" * 5000, "-1", "²", "١٢٣", "NaN", "9" * 30, "true", "{{ 7 * 7 }}"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
USER_KEYS = [
    *("id", "email", "mail", "active", "status", "profile", "name", "primaryEmail", "suspended", "archived"),
    *("accountEnabled", "userPrincipalName", "displayName", "org_unit", "orgUnitPath", "emails", "@removed"),
]


def records(keys: list[str]) -> st.SearchStrategy[Any]:
    """Records with the keys a provider sends, each holding anything, sometimes not even an object."""
    shaped = st.fixed_dictionaries({}, optional={key: json_values for key in keys}).flatmap(
        lambda record: st.dictionaries(texts, json_values, max_size=3).map(lambda extra: {**extra, **record})
    )
    return shaped | json_values


def planned(events: list[SourceEvent]) -> None:
    """Fold a connector's events as a run does and plan them: nothing here may raise."""
    snapshot = SourceSnapshot()
    for _ in snapshot.fold([ReadStarted(full=True), *events, ReadFinished()]):
        pass
    mapped = context(rule(1, "Engineering", "acme-eng", "admin"), default_organization="acme")
    plan_sync(snapshot, state(stored("someone", 7, "taken@example.com", directory_id=2)), mapped)


# --- the directory document -------------------------------------------------------------


@HOSTILE
@given(st.text(max_size=400))
def test_any_text_is_a_document_or_a_refusal(text: str) -> None:
    with contextlib.suppress(ConfigurationError):
        parse_document(text)


@HOSTILE
@given(json_values, st.sampled_from(["name", "provider", "connection", "settings", "group_mappings", "extra"]))
def test_any_value_in_any_field_is_a_document_or_a_refusal_naming_a_field(value: Any, field: str) -> None:
    document = {"name": "Corp", "provider": "file", "connection": {"path": "/tmp/x.json"}, field: value}
    for text in (json.dumps(document), yaml.safe_dump(document)):
        try:
            parse_document(text)
        except ConfigurationError as exc:
            assert str(exc)


def _refused_quickly(text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=message):
        parse_document(text)
    assert time.monotonic() - started < 2


def test_documents_that_would_exhaust_the_parser_are_refused_quickly() -> None:
    laughs = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(12)
    )
    _refused_quickly(laughs + "name: x\nprovider: file\nconnection: {path: *m}\n", "more than 100 aliases")
    _refused_quickly("name: " + "[" * 100_000 + "]" * 100_000, "nested more than 64 levels")
    _refused_quickly('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 64 levels")
    block = "".join("  " * depth + f"k{depth}:\n" for depth in range(200)) + "  " * 200 + "x: 1\n"
    _refused_quickly(block, "nested more than 64 levels")
    _refused_quickly("name: x\nprovider: file\nconnection: {path: " + "9" * 5000 + "}", "not a usable document")
    _refused_quickly("name: a\nname: b\nprovider: file\nconnection: {path: p}\n", "the key 'name' is given twice")
    _refused_quickly('{"name": "a", "name": "b"}', "the key 'name' is given twice")
    _refused_quickly("!!python/object/apply:os.system ['true']", "not valid YAML")
    _refused_quickly("x" * (1024 * 1024 + 1), "longer than 1024 KiB")


# --- attribute templates ----------------------------------------------------------------

_ARGUMENTS = st.integers(min_value=-3, max_value=10**12).map(str) | st.sampled_from(["'x'", "''", "'%999999d'", "mail"])
_EXPRESSIONS = st.recursive(
    st.sampled_from(["mail", "'x'", "'ab' * 40", "9", "range(50)", "given", "mail.split('@')", "[1, 2]"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["*", "**", "%", "+", "~", "//"]), _ARGUMENTS | inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["center", "ljust", "zfill", "replace", "join", "split", "count"]), _ARGUMENTS)
        .map(lambda t: f"{t[0]}.{t[1]}({t[2]}, {t[2]})" if t[1] == "replace" else f"{t[0]}.{t[1]}({t[2]})"),
        st.tuples(inner, st.sampled_from(["center", "join", "replace", "format", "truncate", "batch", "list", "sum"]),
                  _ARGUMENTS).map(lambda t: f"({t[0]} | {t[1]}({t[2]}))"),
    ),
    max_leaves=6,
)


@HOSTILE
@given(_EXPRESSIONS, json_values)
def test_a_template_renders_within_its_budget_or_fails_on_that_record(expression: str, given_name: Any) -> None:
    try:
        mapping = CompiledMapping.build({}, {"x": "{{ " + expression + " }}"})
    except ConfigurationError:
        return
    started = time.monotonic()
    try:
        value = mapping.apply({"mail": "ann@example.com", "given": given_name})["x"]
    except MappingError:
        value = None
    assert time.monotonic() - started < 3, expression
    assert value is None or len(value) <= MAX_TEXT


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 9 ** (9 ** 9) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' | format(999999999, 1) }}",
        "{{ 'x'.center(10**9) }}",
        "{{ 'x' | center(999999999) }}",
        "{{ ('x' * 60000).replace('', 'yy') }}",
        "{{ 'aa'.replace('a', 'a' * 40).replace('a', 'a' * 40).replace('a', 'a' * 40) }}",
        "{{ range(10**8) | join }}",
        "{{ ([1] * 5000) | join('x' * 5000) }}",
        "{{ '{:>99999999}'.format(1) }}",
        "{{ mail.expandtabs(10000) }}",
        "{{ mail | attr('__class__') }}",
        "{{ mail.encode() }}",
    ],
)
def test_huge_outputs_slow_work_and_internals_are_errors_on_the_record(template: str) -> None:
    mapping = CompiledMapping.build({}, {"x": template})
    started = time.monotonic()
    with pytest.raises(MappingError, match="attribute x: "):
        mapping.apply({"mail": "ann@example.com"})
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", "loops"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macros"),
        ("{{ mail.__class__.__mro__ }}", "names starting with _ are Python internals"),
        ("{{ mail['__class__'] }}", "names starting with _ are Python internals"),
        ("{{ mail | random }}", "no filter named 'random'"),
        ("{{ mail }}" * 1000, "longer than 4096 characters"),
    ],
)
def test_loops_macros_and_internals_are_refused_when_the_mapping_is_saved(template: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        CompiledMapping.build({}, {"title": template})
    assert refused.value.field == "settings.attribute_mapping.title"


def test_a_filter_condition_is_held_to_the_same_sandbox() -> None:
    from accessiq.sync.mapping import Condition, check_condition

    with pytest.raises(ConfigurationError, match="Python internals") as refused:
        check_condition("department.__class__ == 'x'")
    assert refused.value.field == "settings.user_filter.condition"
    with pytest.raises(MappingError, match=r"user_filter\.condition: the template made a text longer"):
        Condition("department * 10**9 == 'x'")({"department": "Sales"})
    assert Condition("department == 'Sales'")({"department": "Sales"})


def test_ordinary_templates_still_work() -> None:
    mapping = CompiledMapping.build(
        {},
        {
            "a": "{{ (mail or upn) | lower }}",
            "b": "{{ mail.split('@')[0] | title }}",
            "c": "{{ groups | join(', ') }}",
            "d": "{% set x = mail %}{{ x | upper }}",
            "e": "{{ '%05d' % 42 }}",
        },
    )
    assert mapping.apply({"mail": "Ann@Example.com", "groups": ["a", "b"]}) == {
        "a": "ann@example.com",
        "b": "Ann",
        "c": "a, b",
        "d": "ANN@EXAMPLE.COM",
        "e": "00042",
    }


# --- every connector's record parsing ---------------------------------------------------


@HOSTILE
@given(st.lists(records(USER_KEYS), max_size=4), st.lists(records(["id", "profile", "description"]), max_size=3))
def test_okta_records(users: list[Any], groups: list[Any]) -> None:
    events = [okta._user_event(item) for item in users]
    for item in groups:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            events.append(GroupUpserted(okta._source_group(item), replace_members=True))
    for item in users + groups:
        okta._deletion(item)
        okta._parse_time_or_none(str(item.get("lastUpdated") if isinstance(item, dict) else item))
    planned(events)


@HOSTILE
@given(st.lists(records(USER_KEYS), max_size=4), st.lists(records(["id", "name", "email", "description"]), max_size=3))
def test_google_records(users: list[Any], groups: list[Any]) -> None:
    events: list[SourceEvent] = []
    for item in users:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            org_unit = item.get("orgUnitPath")
            events.append(
                UserUpserted(
                    SourceUser(
                        item["id"],
                        google_record(item),
                        not item.get("suspended") and not item.get("archived"),
                        org_unit if isinstance(org_unit, str) else None,
                    )
                )
            )
    for item in groups:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            events.append(GroupUpserted(google_group(item), replace_members=True))
    planned(events)


@pytest.fixture(scope="module")
def graph() -> Iterator[EntraConnector]:
    connection = EntraConnection.model_validate(
        {
            "tenant_id": "contoso.onmicrosoft.com",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "client_secret": "s",
        }
    )
    connector = EntraConnector(connection)
    yield connector
    connector.close()


DELTA = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"


@HOSTILE
@given(users=st.lists(records(USER_KEYS), max_size=4), groups=st.lists(records(["id", "members@delta"]), max_size=3))
def test_graph_records(graph: EntraConnector, users: list[Any], groups: list[Any]) -> None:
    events = list(_drain(graph._stream_users({"value": users, "@odata.deltaLink": DELTA})))
    # Every group carries displayName: one without would be fetched on its own from Graph.
    shaped = [{**g, "displayName": g.get("id")} if isinstance(g, dict) else g for g in groups]
    page = {"value": shaped, "@odata.deltaLink": DELTA.replace("users", "groups")}
    events += list(_drain(graph._stream_groups(page, full=True)))
    planned(events)


def _drain(stream: Any) -> Iterator[SourceEvent]:
    try:
        while True:
            yield next(stream)
    except StopIteration:
        return


ldap_values = st.lists(
    st.binary(max_size=24) | texts.map(lambda t: t.encode("utf-8", "surrogatepass")), min_size=1, max_size=3
)
LDAP_ATTRIBUTES = ["entryUUID", "objectGUID", "mail", "cn", "uid", "userAccountControl", "shadowExpire",
                   "nsAccountLock", "pwdAccountLockedTime", "member", "memberUid", "objectSid", "primaryGroupID",
                   "description", "displayName"]  # fmt: skip


@pytest.mark.parametrize("flavor", ["openldap", "active_directory"])
@HOSTILE
@given(entries=st.lists(st.dictionaries(st.sampled_from(LDAP_ATTRIBUTES), ldap_values, max_size=8), max_size=4))
def test_ldap_and_active_directory_entries(flavor: str, entries: list[dict[str, list[bytes]]]) -> None:
    connection = LdapConnection.model_validate(
        {
            "url": "ldaps://dc1.corp:636",
            "bind_dn": "cn=sync,dc=corp",
            "bind_password": "s",
            "base_dn": "dc=corp",
            "flavor": flavor,
        }
    )
    connector = LdapConnector(connection, fields=["mail", "cn"])
    known = connector._identities(iter((f"cn=u{i},dc=corp", e) for i, e in enumerate(entries)))
    connector._remember_groups(known, [(f"cn=g{i},dc=corp", e) for i, e in enumerate(entries)])
    events: list[SourceEvent] = []
    for i, entry in enumerate(entries):
        found = connector._user(f"cn=u{i},dc=corp", dict(entry))
        events.append(UserUpserted(found) if not isinstance(found, RecordRejected) else found)
        events.append(connector._group(f"cn=g{i},dc=corp", dict(entry), known))
        openldap_disabled(entry)
        for value in entry.get("userAccountControl", []):
            ad.is_disabled(value)
        for value in entry.get("objectSid", []):
            ad.sid_rid(value)
    planned(events)


@HOSTILE
@given(st.lists(records(USER_KEYS), max_size=5), st.lists(records(["id", "name", "members"]), max_size=3))
def test_file_snapshot_records(tmp_path_factory: pytest.TempPathFactory, users: list[Any], groups: list[Any]) -> None:
    path = tmp_path_factory.mktemp("snapshot") / "snapshot.json"
    path.write_text(json.dumps({"users": users, "groups": groups}, default=str))
    events = list(FileConnector(FileConnection(path=str(path))).read())
    assert isinstance(events[0], ReadStarted) and isinstance(events[-1], ReadFinished)
    planned(events[1:-1])


def test_file_snapshot_edge_cases_are_errors_on_their_record(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    deep: Any = "x"
    for _ in range(100):
        deep = {"d": deep}
    path.write_text(
        '{"users": ['
        '{"id": "a", "email": "a@example.com", "active": "false"},'
        '{"id": {"x": 1}, "email": "b@example.com"},'
        '{"id": "c", "email": "c@example.com", "score": NaN},'
        f'{{"id": "d", "email": "d@example.com", "deep": {json.dumps(deep)}}},'
        f'{{"id": "{"e" * 201}", "email": "e@example.com"}},'
        '{"id": "f", "email": "f@example.com", "org_unit": ["/x"]},'
        '{"id": "g", "email": "g@example.com"}'
        '], "groups": [{"id": "h", "name": "' + "n" * 401 + '", "members": ["g"]}]}'
    )
    snapshot = SourceSnapshot()
    for _ in snapshot.fold(FileConnector(FileConnection(path=str(path))).read()):
        pass
    rejected = {(obj, ext): message for obj, ext, message in snapshot.rejected if ext}
    nameless = sorted(message for _, ext, message in snapshot.rejected if ext is None)
    assert rejected[("user", "a")] == "'active' must be true or false"
    assert nameless == ["has an id of 201 characters, more than 200", "users[1] has no 'id'"]
    assert "cannot be stored" in rejected[("user", "c")]
    assert "levels deep" in rejected[("user", "d")]
    assert "has an org unit that is not text" in rejected[("user", "f")]
    assert "more than 400" in rejected[("group", "h")]
    assert list(snapshot.users) == ["g"]


# --- look-alike emails --------------------------------------------------------------------

_CONFUSABLE = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "i": "\u0456"}


def _variants(email: str) -> st.SearchStrategy[str]:
    """The address as an attacker would dress it: case, full-width, Cyrillic look-alikes, invisibles."""
    local = email.split("@")[0]
    return st.one_of(
        st.just(email.upper()),
        st.just(email.title()),
        st.just(unicodedata.normalize("NFKC", email).swapcase()),
        st.just("".join(chr(ord(ch) + 0xFEE0) if "a" <= ch <= "z" else ch for ch in local) + "@example.com"),
        st.just("".join(_CONFUSABLE.get(ch, ch) for ch in local) + "@example.com"),
        st.integers(0, len(local)).map(lambda i: local[:i] + "\u200b" + local[i:] + "@example.com"),
        st.integers(0, len(local)).map(lambda i: local[:i] + "\u202e" + local[i:] + "@example.com"),
        st.just(local + "@ex\u0430mple.com"),
        st.just(local.upper() + "@EXAMPLE.COM"),
        st.just(local + "@example.com\u0301"),
    )


@HOSTILE
@given(st.data(), st.sampled_from(["ann.lee", "paypal", "ops", "ceo"]), st.booleans())
def test_a_look_alike_of_anothers_email_never_reaches_that_account(data: Any, local: str, linked: bool) -> None:
    email = f"{local}@example.com"
    variant = data.draw(_variants(email))
    assume(variant != email)
    # The owner is a user of another directory, or a local user that by_email linking may take.
    owner = stored("owner", 1, email, directory_id=2 if linked else None)
    plan = plan_sync(source(user("attacker", variant)), state(owner), context())
    owned = [op for op in plan.operations if op.detail.get("user_id") == owner.id or op.label == owner.email]
    created = [op for op in plan.operations if op.action == "create"]
    if email_key(variant) == email_key(email):
        assert not created, "a case variant is the same address: never a second account"
        assert [op.action for op in plan.operations] in ([], ["link"]) or plan.errors
        if linked:
            assert not plan.operations and plan.errors, "another directory's user is never taken over"
    else:
        assert not owned, "a look-alike never touches the account it imitates"
        assert email_problem(variant) is not None or created, variant
        if email_problem(variant) is not None:
            assert not created and plan.errors[0].message == email_problem(variant)


def test_email_normalisation_is_nfkc_and_casefold() -> None:
    assert email_key("ANN@Example.COM") == email_key("ann@example.com")
    assert email_key("Straße@example.com") == email_key("STRASSE@example.com")
    assert email_problem("\uff41\uff4e\uff4e@example.com") is not None  # full-width
    assert email_problem("\u0430nn@example.com") is not None  # Cyrillic a among Latin letters
    assert email_problem("ann\u200b@example.com") is not None  # zero-width space
    assert email_problem("иван@пример.рф") is None  # one script is an ordinary address
    assert email_problem("山田@例え.jp") is None and email_problem("yamada-やまだ@example.jp") is None


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_an_ascii_address_is_refused_exactly_for_its_control_characters(local: str) -> None:
    email = f"{local}@example.com"
    controls = [ch for ch in email if unicodedata.category(ch) == "Cc"]
    assert (email_problem(email) is not None) == bool(controls), email


# --- groups: cycles and very deep nesting --------------------------------------------------


@HOSTILE
@given(st.integers(2, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=80))
def test_nested_groups_with_cycles_flatten_to_what_is_reachable(size: int, edges: list[tuple[int, int]]) -> None:
    groups = {f"g{i}": group(f"g{i}", users=(f"u{i}",)) for i in range(size)}
    for parent, child in edges:
        if parent < size and child < size:
            groups[f"g{parent}"].groups.add(f"g{child}")
    reachable, pending = {"g0"}, ["g0"]
    while pending:
        for child in groups[pending.pop()].groups:
            if child not in reachable:
                reachable.add(child)
                pending.append(child)
    assert transitive_users("g0", groups) == {f"u{g[1:]}" for g in reachable}


def test_a_chain_of_five_thousand_nested_groups_and_a_cycle_plan_without_recursion() -> None:
    depth = 5000
    chain = [group(f"g{i}", name="Top" if i == 0 else None, users=(f"u{i}",)) for i in range(depth)]
    for parent, child in itertools.pairwise(chain):
        parent.groups.add(child.group.external_id)
    chain[-1].groups.add("g0")  # and back to the top
    people = [user(f"u{i}") for i in range(depth)]
    plan = plan_sync(source(*people, *chain), state(), context(rule(1, "Top", "acme-eng", "admin")))
    grants = [op for op in plan.operations if op.object == "org_membership" and op.action == "grant"]
    assert len(grants) == depth and not plan.errors


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(USER_KEYS), min_size=1, max_size=3))
def test_folding_never_raises_for_removed_and_rejected_records(items: list[Any]) -> None:
    events: list[SourceEvent] = []
    for item in items:
        ext = item.get("id") if isinstance(item, dict) else None
        events.append(RecordRejected("user", ext if isinstance(ext, str) else None, "bad"))
        if isinstance(ext, str):
            events.append(UserRemoved(ext))
    planned(events)
