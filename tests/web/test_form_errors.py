"""How a refused form speaks: field labels instead of document keys, every problem, each by its input."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from accessiq.errors import ConfigurationError, FieldProblem
from accessiq.sync.document import validate_connection
from accessiq.web import forms


def test_every_group_mapping_row_problem_is_named_by_its_row() -> None:
    posted = FormData(
        [
            ("source_group", "Engineering"),
            ("organization", ""),
            ("role", "member"),
            ("source_group", ""),
            ("organization", "acme"),
            ("role", "admin"),
        ]
    )
    with pytest.raises(ConfigurationError) as refused:
        forms.group_mappings(posted)
    assert forms.form_errors(refused.value).listed == (
        "Organization in row 1: choose an organization.",
        "Source group in row 2: choose a source group.",
    )


def test_connection_problems_use_the_connectors_labels() -> None:
    with pytest.raises(ConfigurationError) as refused:
        validate_connection("entra", {"client_secret": "s"})
    errors = forms.form_errors(refused.value, "entra")
    assert errors.listed == ("Directory (tenant) ID is required.", "Application (client) ID is required.")
    assert errors.by_input == {
        "connection.tenant_id": "This is required.",
        "connection.client_id": "This is required.",
    }
    assert "tenant_id" not in str(errors) and "connection." not in str(errors)


def test_settings_problems_sit_beside_their_inputs() -> None:
    error = ConfigurationError(
        "x",
        problems=[
            FieldProblem("settings.user_filter.condition", "is not valid: compare with =="),
            FieldProblem("settings.safety.max_deactivation_percent", "must be at most 100"),
            FieldProblem("settings.default_role", "role 'boss' does not exist"),
        ],
    )
    errors = forms.form_errors(error)
    assert errors.listed == (
        "Attribute condition is not valid: compare with ==.",
        "At most this percentage of the directory's users must be at most 100.",
        "Default role: role 'boss' does not exist.",
    )
    assert errors.by_input == {
        "filter_condition": "This is not valid: compare with ==.",
        "max_deactivation_percent": "This must be at most 100.",
        "default_role": "Role 'boss' does not exist.",
    }
