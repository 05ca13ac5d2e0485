"""An attribute mapping is checked against the fields the provider's users have, when it is saved."""

from __future__ import annotations

import pytest

from accessiq.connectors import available_providers
from accessiq.errors import ConfigurationError
from accessiq.services.configure import mapping_examples
from accessiq.sync.document import check_provider_fields, validate_document
from accessiq.sync.mapping import source_paths


@pytest.mark.parametrize(
    ("source", "paths"),
    [
        ("location.city", ["location.city"]),
        ("{{ given_name }} {{ family_name }}", ["given_name", "family_name"]),
        ("{{ (mail or userPrincipalName) | lower }}", ["mail", "userPrincipalName"]),
        ("{{ mail.split('@')[0] }}", ["mail"]),
        ("{{ profile['firstName'] ~ profile.lastName }}", ["profile.firstName", "profile.lastName"]),
        ("{% for e in emails %}{{ e.address }}{% endfor %}", ["emails"]),
        ("{% set x = mail %}{{ x | upper }}", ["mail"]),
    ],
)
def test_the_paths_a_mapping_reads(source: str, paths: list[str]) -> None:
    assert source_paths(source) == paths


@pytest.mark.parametrize(
    ("provider", "source", "message"),
    [
        (
            "entra",
            "{{ given_name }} {{ family_name }}",
            "Entra ID users have no field given_name (did you mean givenName?)",
        ),
        ("entra", "family_name", "Microsoft Entra ID users have no field family_name (did you mean surname?)"),
        ("entra", "departmnt", "no field departmnt (did you mean department?)"),
        ("entra", "Mail", "no field Mail (did you mean mail?)"),
        ("entra", "zzzz", "no field zzzz (field names are case-sensitive; check the spelling)"),
        (
            "entra",
            "birthday",
            "cannot sync the field birthday: Microsoft Graph returns it for one user at a time, "
            "never in the lists a sync reads (remove it)",
        ),
        ("okta", "firstName", "Okta users have no field firstName (did you mean profile.firstName?)"),
        ("google", "{{ name.givenname }}", "no field name.givenname (did you mean name.givenName?)"),
        ("google", "givenName", "Google Workspace users have no field givenName (did you mean name.givenName?)"),
    ],
)
def test_a_field_the_provider_lacks_is_refused_with_a_did_you_mean(provider: str, source: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_provider_fields(provider, {"display_name": source})
    assert refused.value.field == "settings.attribute_mapping.display_name"
    assert str(refused.value).startswith("settings.attribute_mapping.display_name: ")
    assert str(refused.value).endswith(message)


@pytest.mark.parametrize(
    ("provider", "source"),
    [
        ("entra", "onPremisesExtensionAttributes.extensionAttribute3"),
        ("entra", "extension_0a1b2c_costCenter"),
        ("okta", "profile.customAttribute"),
        ("google", "customSchemas.HR.costCenter"),
        ("google", "{{ name }}"),
        ("ldap", "anyAttributeTheSchemaDefines"),
        ("file", "any.nested.field"),
    ],
)
def test_custom_attributes_and_open_schemas_are_accepted(provider: str, source: str) -> None:
    check_provider_fields(provider, {"x": source})


def test_a_template_that_does_not_parse_is_reported_as_such() -> None:
    with pytest.raises(ConfigurationError) as refused:
        validate_document({"name": "C", "provider": "entra", "settings": {"attribute_mapping": {"x": "{{ mail "}}})
    assert "template does not parse" in str(refused.value)
    assert source_paths("{{ mail ") == []


def test_the_user_filter_condition_is_checked_too() -> None:
    with pytest.raises(ConfigurationError) as refused:
        validate_document(
            {"name": "C", "provider": "entra", "settings": {"user_filter": {"condition": "departement == 'Sales'"}}}
        )
    assert refused.value.field == "settings.user_filter.condition"
    assert "did you mean department?" in str(refused.value)


@pytest.mark.parametrize("provider", available_providers())
def test_every_example_the_mapping_page_shows_works_for_its_provider(provider: str) -> None:
    examples = mapping_examples(provider)
    assert examples["fields"] and len(examples["templates"]) == 2
    check_provider_fields(
        provider, {f"example{i}": e for i, e in enumerate(examples["fields"] + examples["templates"])}
    )
