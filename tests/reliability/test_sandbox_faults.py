"""The sandboxes' injected faults speak each provider's wire format, on the request they are meant for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from accessiq.sandbox import entra as graph
from accessiq.sandbox import google as gsuite
from accessiq.sandbox import okta
from accessiq.sandbox.google import GROUP_READ, JWT_BEARER, TOKEN_AUDIENCE, USER_READ


def test_graph_permission_revoked_on_a_later_page_is_graphs_own_403(rigs: Callable[[str], Any]) -> None:
    rig = rigs("entra")
    rig.reset()
    rig.inject(graph.Fault("forbidden", after=1, path_contains="/users"))
    token = httpx.post(
        f"{rig.url}/{rig.sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": rig.sandbox.client_id,
            "client_secret": rig.sandbox.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    ).json()["access_token"]
    with httpx.Client(base_url=rig.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/v1.0/users").status_code == 200
        denied = client.get("/v1.0/users")
    assert denied.status_code == 403
    error = denied.json()["error"]
    assert error["code"] == "Authorization_RequestDenied"
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert rig.served() == 1


def test_okta_faults_answer_with_oktas_error_envelope(rigs: Callable[[str], Any]) -> None:
    rig = rigs("okta")
    rig.reset()
    rig.inject(okta.Fault("forbidden", path_contains="/api/v1/groups"))
    rig.inject(okta.Fault("log_window", path_contains="/api/v1/logs"))
    headers = {"Authorization": f"SSWS {rig.sandbox.api_token}", "Accept": "application/json"}
    with httpx.Client(base_url=rig.url, headers=headers) as client:
        denied = client.get("/api/v1/groups")
        window = client.get("/api/v1/logs", params={"since": "2020-01-01T00:00:00.000Z"})
    assert (denied.status_code, denied.json()["errorCode"]) == (403, "E0000006")
    assert (window.status_code, window.json()["errorCode"]) == (400, "E0000053")
    assert set(denied.json()) >= {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}
    assert denied.headers["x-okta-request-id"]


def test_a_cut_connection_stops_in_the_middle_of_the_body(rigs: Callable[[str], Any]) -> None:
    rig = rigs("okta")
    rig.reset()
    rig.inject(okta.Fault("cut", path_contains="/api/v1/users"))
    headers = {"Authorization": f"SSWS {rig.sandbox.api_token}"}
    with httpx.Client(base_url=rig.url, headers=headers) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/v1/users")


def test_a_google_loop_hands_out_a_fresh_token_for_the_page_just_served(rigs: Callable[[str], Any]) -> None:
    rig = rigs("google")
    rig.reset()
    sandbox = rig.sandbox
    rig.inject(gsuite.Fault("loop", after=1, count=2, path_contains="/users"))
    now = int(time.time())
    claims = {
        "iss": sandbox.client_email,
        "sub": sandbox.admin_email,
        "scope": f"{USER_READ} {GROUP_READ}",
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    grant = jwt.encode(claims, sandbox._private_key, algorithm="RS256", headers={"kid": sandbox.key_id})
    token = httpx.post(
        f"{rig.url}/token", data={"grant_type": JWT_BEARER, "assertion": grant}
    ).json()["access_token"]
    params = {"customer": "my_customer", "maxResults": "7"}
    with httpx.Client(base_url=f"{rig.url}/admin/directory/v1", headers={"Authorization": f"Bearer {token}"}) as c:
        first = c.get("/users", params=params).json()
        second = c.get("/users", params={**params, "pageToken": first["nextPageToken"]}).json()
        again = c.get("/users", params={**params, "pageToken": second["nextPageToken"]}).json()
    assert second["nextPageToken"] != first["nextPageToken"]
    assert [u["id"] for u in again["users"]] == [u["id"] for u in second["users"]]
