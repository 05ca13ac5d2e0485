"""`accessiq sandbox ldap`: serving prints a ready directory document; subcommands change a running slapd."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml
from typer.testing import CliRunner

from accessiq.connectors.base import UserUpserted
from accessiq.connectors.ldap import LdapConnector
from accessiq.connectors.ldap_settings import LdapConnection
from accessiq.sandbox import free_port
from accessiq.sandbox.ldap_commands import SANDBOX, ldap_app

from ..connectors.contract import Mirror
from ..connectors.ldap_kit import LdapKit, slapd

runner = CliRunner()


@pytest.fixture
def kit() -> Iterator[LdapKit]:
    with slapd(users=30, groups=8, seed=2) as running:
        yield running


def invoke(kit: LdapKit, *args: str) -> str:
    result = runner.invoke(ldap_app, [*args, "--url", kit.sandbox.url])
    assert result.exit_code == 0, result.output
    return result.output


def serve_command(port: int, *, users: int, groups: int) -> list[str]:
    """`accessiq sandbox ldap` serving on `port`, as a process of its own."""
    command = [sys.executable, "-m", "accessiq", "sandbox", "ldap", "--users", str(users), "--groups", str(groups)]
    return [*command, "--port", str(port)]


def test_serving_prints_a_directory_document_that_reads_it() -> None:
    from ..connectors.ldap_kit import require_slapd

    require_slapd()
    port = free_port()
    done = subprocess.run(
        [*serve_command(port, users=12, groups=3), "--serve-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"LDAP sandbox (slapd) on ldap://127.0.0.1:{port}: 12 users, 3 groups" in done.stdout
    document = yaml.safe_load(done.stdout.split("Directory document:", 1)[1].split("\nApply it", 1)[0])
    assert document["provider"] == "ldap" and document["connection"]["url"] == f"ldap://127.0.0.1:{port}"
    LdapConnection(**document["connection"])


def test_subcommands_change_the_running_directory(kit: LdapKit) -> None:
    connector = LdapConnector(
        LdapConnection(**{k: v for k, v in json.loads(invoke(kit, "info", "--json"))["document"]["connection"].items()})
    )
    person = next(p for p in kit.sandbox.population.people if p.active)
    group = next(g for g in kit.sandbox.population.groups if g.kind == "department")
    created = json.loads(invoke(kit, "add-user", "--given-name", "Ada", "--surname", "Byron", "--json"))
    invoke(kit, "update-user", person.username, "--set", "title=Chief Tester")
    invoke(kit, "rename", person.username, "ada.renamed")
    invoke(kit, "move", "ada.renamed", "Legal")
    invoke(kit, "add-members", group.name, created["uid"])
    invoke(kit, "disable-user", created["uid"])
    mirror = Mirror.of(connector.read(None))
    user = mirror.users[person.id]
    assert user.data["uid"] == "ada.renamed" and user.data["title"] == "Chief Tester"
    assert user.org_unit and "ou=Legal" in user.org_unit
    assert created["entryUUID"] in mirror.memberships()[group.id][0]
    assert not mirror.users[created["entryUUID"]].active
    invoke(kit, "delete-user", created["uid"])
    assert created["entryUUID"] not in {e.user.external_id for e in connector.read(None) if isinstance(e, UserUpserted)}


def test_an_unknown_user_is_a_clear_error(kit: LdapKit) -> None:
    result = runner.invoke(ldap_app, ["disable-user", "nobody.here", "--url", kit.sandbox.url])
    assert result.exit_code == 3 and "nobody.here" in result.output


def test_the_sandbox_spec_offers_a_demo(kit: LdapKit) -> None:
    assert SANDBOX.start_demo is not None
    demo = SANDBOX.start_demo()
    try:
        assert demo.document["provider"] == "ldap"
        assert demo.server.url.startswith("ldap://127.0.0.1:")
        assert LdapConnector(LdapConnection(**demo.document["connection"])).check().ok
    finally:
        demo.server.stop()


def test_sigterm_stops_slapd_too() -> None:
    """`kill PID` of the serving command leaves no slapd behind on the port."""
    from ..connectors.ldap_kit import require_slapd

    require_slapd()
    port = free_port()
    command = serve_command(port, users=5, groups=2)
    serving = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serving.stdout is not None
        assert "LDAP sandbox (slapd) on" in serving.stdout.readline()
        assert _listening(port)
        serving.terminate()
        assert serving.wait(timeout=30) == 0
        assert not _listening(port)
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
