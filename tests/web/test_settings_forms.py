"""Refused settings keep what the administrator typed and say what is wrong beside each field, in the
field's own words; frequencies are chosen from presets or typed, and shown in words everywhere."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, connected_directory, create_admin, shot, sign_in

from accessiq.services import directories as dirs


def _saved_settings(server: Server, directory: int) -> dict[str, Any]:
    with server.store.transaction() as session:
        return dict(dirs.get_directory(session, directory).settings or {})


def test_refused_settings_keep_the_input_and_mark_every_field(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    before = _saved_settings(server, directory)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/settings")
    page.fill("#frequency", "0 25 * * *")
    page.fill("#filter_condition", "department = 'Sales'")
    page.fill("#max_deactivations", "ten")
    page.check("input[name=filter_groups][value=Sales]")
    page.click("#save-settings")

    summary = page.locator("#form-errors")
    summary.wait_for()
    listed = summary.inner_text()
    assert "3 things need a fix" in listed
    assert "Sync frequency: '0 25 * * *': the hour field (2nd) must be 0\u201323, got 25." in listed
    assert "Attribute condition is not valid: compare with ==" in listed
    assert "At most this many deactivations: 'ten' is not a whole number." in listed
    text = page.inner_text("main")
    for jargon in ("settings.", "user_filter", "expected token", "print statement", "Input should"):
        assert jargon not in text, jargon

    # Each message sits beside its own input, and every input still shows what was typed.
    frequency_error = page.inner_text("#frequency-field [data-error-for=frequency]")
    assert "the hour field (2nd) must be 0\u201323, got 25" in frequency_error
    condition_field = page.locator(".field", has=page.locator("#filter_condition"))
    assert "compare with ==" in condition_field.locator("[data-error-for=filter_condition]").inner_text()
    count_field = page.locator(".field", has=page.locator("#max_deactivations"))
    assert count_field.locator("[data-error-for=max_deactivations]").inner_text() == "'ten' is not a whole number."
    assert page.input_value("#frequency") == "0 25 * * *"
    assert page.is_checked("#frequency-custom-choice")
    assert page.input_value("#filter_condition") == "department = 'Sales'"
    assert page.input_value("#max_deactivations") == "ten"
    assert page.is_checked("input[name=filter_groups][value=Sales]")
    assert _saved_settings(server, directory) == before, "a refused form saves nothing"
    shot(page, "70-settings-refused-every-field-marked")

    # Fixed in place, the same form saves.
    page.fill("#frequency", "0 2 * * *")
    page.get_by_text("Syncs daily at 02:00 UTC.").wait_for()
    page.fill("#filter_condition", "department == 'Sales'")
    page.fill("#max_deactivations", "10")
    page.click("#save-settings")
    page.get_by_text("Settings saved.").wait_for()
    saved = _saved_settings(server, directory)
    assert saved["frequency"] == "0 2 * * *"
    assert saved["user_filter"] == {"groups": ["Sales"], "org_units": [], "condition": "department == 'Sales'"}
    assert saved["safety"]["max_deactivations"] == 10


def test_a_refused_wizard_schedule_keeps_the_cron_and_explains_it(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/setup/schedule")
    page.fill("#frequency", "0 0 2 * * *")
    page.click("#finish")
    error = page.locator("#frequency-field [data-error-for=frequency]")
    error.wait_for()
    assert "has six fields" in error.inner_text() and "remove the seconds field" in error.inner_text()
    assert page.input_value("#frequency") == "0 0 2 * * *"
    assert "settings.frequency" not in page.inner_text("main")
    shot(page, "71-wizard-schedule-six-field-cron-refused")


def _presets(page: Any) -> list[str]:
    return [label.strip() for label in page.locator("#frequency-field .frequency-choices label").all_inner_texts()]


def test_frequency_presets_and_words_everywhere(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    # The wizard's settings step, its schedule step and the Settings tab offer the same choice.
    offered = ["Every 15 minutes", "Hourly", "Daily", "Custom interval or cron"]
    page.goto(f"/directories/{directory}/setup/settings")
    assert _presets(page) == offered
    shot(page, "79-wizard-settings-frequency-presets")
    page.goto(f"/directories/{directory}/setup/schedule")
    assert _presets(page) == offered
    page.goto(f"/directories/{directory}/settings")
    assert _presets(page) == offered
    assert page.is_checked("input[name=frequency][value='1h']")

    page.check("input[name=schedule_enabled]")
    page.check("input[name=frequency][value='24h']")
    page.click("#save-settings")
    page.get_by_text("Settings saved.").wait_for()
    assert page.is_checked("input[name=frequency][value='24h']")
    assert "syncs daily" in page.inner_text(".page-head")

    # A custom cron expression is explained while it is typed, and in words once saved.
    page.fill("#frequency", "0 */6 * * *")
    page.get_by_text("Syncs every 6 hours, on the hour.").wait_for()
    assert page.is_checked("#frequency-custom-choice")
    shot(page, "72-settings-frequency-custom-cron-in-words")
    page.click("#save-settings")
    page.get_by_text("Settings saved.").wait_for()
    assert page.input_value("#frequency") == "0 */6 * * *"
    assert "syncs every 6 hours, on the hour" in page.inner_text(".page-head")

    page.goto(f"/directories/{directory}")
    assert "Every 6 hours, on the hour" in page.inner_text("main")
    shot(page, "80-dashboard-next-sync-in-words")
    page.goto("/directories")
    assert "every 6 hours, on the hour" in page.inner_text("table")
    shot(page, "73-directory-list-frequency-in-words")

    # A cron expression without simpler words is shown as cron.
    page.goto(f"/directories/{directory}/settings")
    page.fill("#frequency", "5 4 * 6 2,4")
    page.get_by_text("Syncs cron: 5 4 * 6 2,4.").wait_for()
    page.fill("#frequency", "5 4 * 6 9")
    page.get_by_text("the day-of-week field (5th) must be 0\u20137 or SUN\u2013SAT, got 9").wait_for()


def test_a_typed_frequency_never_renders_as_markup(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)
    hostile = "<img src=x onerror=alert(1)> * * *"
    page.goto(f"/directories/{directory}/settings")
    page.fill("#frequency", hostile)
    page.locator("#frequency-words .field-error").wait_for()
    assert "<img src=x" in page.inner_text("#frequency-words")
    page.click("#save-settings")
    page.locator("#frequency-field [data-error-for=frequency]").wait_for()
    assert page.input_value("#frequency") == hostile
    assert page.locator("img[src=x]").count() == 0


def test_safety_thresholds_per_kind_are_shown_saved_and_refused_by_name(
    page: Any, server: Server, snapshot: Any
) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/settings")
    defaults = {
        "max_deactivations": "500",
        "max_deactivation_percent": "20.0",
        "max_group_deletions": "50",
        "max_group_deletion_percent": "20.0",
        "max_membership_removals": "500",
        "max_membership_removal_percent": "50.0",
    }
    for name, value in defaults.items():
        assert page.input_value(f"#{name}") == value, name
    safety_text = page.inner_text("main")
    assert "the connection, the user filter, the group mappings or the deactivation choice changed" in safety_text
    assert "Counted for groups of 10 members or more." in safety_text

    page.fill("#max_group_deletions", "-3")
    page.fill("#max_membership_removal_percent", "150")
    page.click("#save-settings")
    summary = page.locator("#form-errors")
    summary.wait_for()
    listed = summary.inner_text()
    assert "At most this many group deletions" in listed
    assert "At most this percentage of one group's members" in listed
    deletions = page.locator(".field", has=page.locator("#max_group_deletions"))
    assert "at least 0" in deletions.locator("[data-error-for=max_group_deletions]").inner_text()
    removals = page.locator(".field", has=page.locator("#max_membership_removal_percent"))
    assert "100" in removals.locator("[data-error-for=max_membership_removal_percent]").inner_text()
    assert page.input_value("#max_group_deletions") == "-3", "what was typed comes back"
    assert "max_group_deletions" not in page.inner_text("main"), "field labels, never setting names"
    shot(page, "71-settings-safety-thresholds-refused")

    page.fill("#max_group_deletions", "5")
    page.fill("#max_membership_removal_percent", "30")
    page.fill("#max_membership_removals", "40")
    page.click("#save-settings")
    page.get_by_text("Settings saved.").wait_for()
    saved = _saved_settings(server, directory)["safety"]
    assert saved["max_group_deletions"] == 5
    assert saved["max_membership_removals"] == 40 and saved["max_membership_removal_percent"] == 30
    shot(page, "72-settings-safety-thresholds-saved")
