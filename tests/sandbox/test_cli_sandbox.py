"""`accessiq sandbox entra`: serving prints what a directory needs; subcommands drive a running sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accessiq.cli import sandbox as cli

from ..connectors.graph_kit import GraphKit

runner = CliRunner()


def invoke(graph: GraphKit, *args: str) -> Any:
    result = runner.invoke(cli.app, ["entra", *args, "--url", graph.url])
    return result


def test_serving_prints_urls_credentials_and_a_directory_document(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: served.update(kwargs, app=app))
    pem = tmp_path / "app.pem"
    result = runner.invoke(
        cli.app,
        [
            "entra",
            "--users",
            "12",
            "--groups",
            "4",
            "--port",
            "9123",
            "--seed",
            "3",
            "--certificate-out",
            str(pem),
        ],
    )
    assert result.exit_code == 0, result.output
    assert served["port"] == 9123 and served["host"] == "127.0.0.1"
    assert "12 users, 4 groups" in result.output
    assert "authority_url: http://127.0.0.1:9123" in result.output
    assert "graph_url: http://127.0.0.1:9123" in result.output
    assert f"certificate: file:{pem}" in result.output
    assert "BEGIN CERTIFICATE" in pem.read_text()


def test_admin_subcommands_change_a_running_sandbox(graph: GraphKit) -> None:
    created = invoke(graph, "add-user", "--given-name", "Zoe", "--surname", "Quinn", "--department", "Legal", "--json")
    assert created.exit_code == 0, created.output
    user = json.loads(created.output)
    assert user["displayName"] == "Zoe Quinn" and user["department"] == "Legal"
    assert user["userPrincipalName"].lower().startswith("zoe.quinn")
    upn = user["userPrincipalName"]
    assert invoke(graph, "update-user", upn, "--set", "jobTitle=CTO", "--set", "accountEnabled=false").exit_code == 0
    assert graph.sandbox.snapshot()["users"][user["id"]]["jobTitle"] == "CTO"
    assert graph.sandbox.snapshot()["users"][user["id"]]["accountEnabled"] is False
    assert invoke(graph, "enable-user", upn).exit_code == 0
    assert invoke(graph, "add-members", "All Staff", upn).exit_code == 0
    everyone = next(g.id for g in graph.sandbox.population.groups if g.name == "All Staff")
    assert user["id"] in graph.sandbox.snapshot()["groups"][everyone]["users"]
    assert invoke(graph, "remove-members", "All Staff", upn).exit_code == 0
    assert invoke(graph, "delete-user", upn).exit_code == 0
    assert user["id"] in graph.sandbox.snapshot()["removed_users"]
    assert invoke(graph, "restore-user", user["id"]).exit_code == 0
    assert invoke(graph, "disable-user", user["id"]).exit_code == 0
    group = json.loads(invoke(graph, "add-group", "Pilots", "--json").output)
    assert invoke(graph, "update-group", "Pilots", "--set", "description=Flying").exit_code == 0
    assert invoke(graph, "delete-group", group["id"]).exit_code == 0
    assert group["id"] not in graph.sandbox.snapshot()["groups"]


def test_fault_expiry_and_permission_subcommands(graph: GraphKit) -> None:
    assert invoke(graph, "fault", "throttle", "--count", "2", "--retry-after", "-1").exit_code == 0
    assert graph.sandbox.faults[0].retry_after is None and graph.sandbox.faults[0].count == 2
    assert invoke(graph, "expire-delta", "--mode", "location").exit_code == 0
    assert invoke(graph, "permissions", "User.Read.All").exit_code == 0
    assert graph.sandbox.apps[graph.sandbox.client_id].roles == {"User.Read.All"}
    info = json.loads(invoke(graph, "info", "--json").output)
    assert info["tenant_id"] == graph.sandbox.tenant_id
    assert "by_endpoint" in json.loads(invoke(graph, "stats").output)
    assert invoke(graph, "reset").exit_code == 0


def test_errors_exit_non_zero_with_the_reason(graph: GraphKit) -> None:
    missing = invoke(graph, "disable-user", "nobody@nowhere.example")
    assert missing.exit_code == 3 and "nobody@nowhere.example" in missing.output
    bad = invoke(graph, "update-user", "x", "--set", "novalue")
    assert bad.exit_code == 2
    down = runner.invoke(cli.app, ["entra", "info", "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 6 and "no sandbox answers" in down.output


def _loaded_sandboxes(*args: str) -> set[str]:
    """The sandbox modules a fresh `accessiq ARGS` process imports."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from accessiq.cli import app\n"
        f"result = CliRunner().invoke(app, {list(args)!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(' '.join(m for m in sys.modules if m.startswith('accessiq.sandbox.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_a_command_loads_no_sandbox_and_a_sandbox_command_loads_only_its_own() -> None:
    assert _loaded_sandboxes("directories", "--help") == set()
    okta = _loaded_sandboxes("sandbox", "okta", "--help")
    assert "accessiq.sandbox.okta_commands" in okta
    assert not {m for m in okta if m.rsplit(".", 1)[1].startswith(("entra", "google", "ldap"))}
