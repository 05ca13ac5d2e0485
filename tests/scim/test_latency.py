"""Deprovisioning latency: from the SCIM request to the user deactivated and their memberships revoked."""

from __future__ import annotations

import statistics
import time

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from accessiq.connectors.base import GroupUpserted, SourceGroup, SourceUser, UserUpserted
from accessiq.jobs.push import PushChange, push
from accessiq.store.database import Store

from .conftest import PATCH_SCHEMA, Scim, issue, make_directory, users

PEOPLE = 1000


def seed_people(store: Store, directory: int, people: int = PEOPLE) -> list[str]:
    """`people` users, all in Engineering (mapped to acme-eng admin), pushed in one run; their ids."""
    ids = [f"{n:032x}" for n in range(people)]

    def change(_: Session) -> PushChange[None]:
        people = [
            UserUpserted(
                SourceUser(
                    external_id=i,
                    data={
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "id": i,
                        "userName": f"p{n}@example.com",
                        "name": {"givenName": f"P{n}", "familyName": "Doe"},
                        "emails": [{"value": f"p{n}@example.com", "primary": True}],
                        "active": True,
                    },
                )
            )
            for n, i in enumerate(ids)
        ]
        group = GroupUpserted(
            SourceGroup(external_id="g-eng", name="Engineering", data={"displayName": "Engineering", "id": "g-eng"}),
            added_users=frozenset(ids),
            replace_members=True,
        )
        return PushChange([*people, group], None)

    assert push(store, directory, change).status == "succeeded"
    return ids


def test_deprovisioning_takes_under_a_second(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store, safety={"max_deactivations": 500, "max_deactivation_percent": 100})
    ids = seed_people(store, directory)
    scim = Scim(app_client, directory, issue(store, directory))
    body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    # The first request after the 1000-user seed also records the token's use, and SQLite then
    # checkpoints the seed's write-ahead log: a one-off cost of the seed, not of a deprovisioning.
    assert scim("GET", f"/Users/{ids[-1]}").status_code == 200
    # The first deprovisioning after the seed is held to 3 s (it has taken 1.2 s on a busy CI
    # machine, 0.07 s on a quiet one); the five after it to a second each.
    started = time.perf_counter()
    assert scim("PATCH", f"/Users/{ids[-1]}", body).status_code == 200
    first = time.perf_counter() - started
    assert first < 3.0, first
    timings = []
    for n in range(5):
        started = time.perf_counter()
        answer = scim("PATCH", f"/Users/{ids[n]}", body)
        # The answer comes once the run has applied: the user is deactivated and their access gone.
        timings.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        assert users_of(store, directory, f"p{n}@example.com") == {"status": "deactivated", "orgs": {}}
    print(f"deprovisioning latency over {PEOPLE} users ({store.dialect}): "
          f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")
    assert max(timings) < 1.0


def users_of(store: Store, directory: int, email: str) -> dict[str, object]:
    found = users(store, directory)[email]
    return {"status": found["status"], "orgs": found["orgs"]}
