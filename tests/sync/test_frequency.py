"""Sync frequencies: every cron mistake named by its part, and every frequency said in words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from accessiq.sync.document import configuration_error
from accessiq.sync.frequency import cron_problem, describe_frequency, frequency_problem, is_cron
from accessiq.sync.settings import SyncSettings


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 25 * * *", "the hour field (2nd) must be 0\u201323, got 25"),
        ("60 * * * *", "the minute field (1st) must be 0\u201359, got 60"),
        ("0 2 0 * *", "the day-of-month field (3rd) must be 1\u201331, got 0"),
        ("0 2 * 13 *", "the month field (4th) must be 1\u201312 or JAN\u2013DEC, got 13"),
        ("0 2 * * 8", "the day-of-week field (5th) must be 0\u20137 or SUN\u2013SAT, got 8"),
        ("0 2 * * funday", "the day-of-week field (5th) must be 0\u20137 or SUN\u2013SAT, got 'funday'"),
        ("*/0 * * * *", "the minute field (1st) has a step '/0'"),
        ("0 1-30 * * *", "the hour field (2nd) must be 0\u201323, got 30"),
        ("0 0 2 * * *", "has six fields, but seconds are not supported: remove the seconds field"),
        ("0 2 * *", "a cron expression has five fields separated by spaces"),
    ],
)
def test_a_cron_mistake_names_the_field_and_its_range(cron: str, problem: str) -> None:
    found = cron_problem(cron)
    assert found is not None and found.startswith(problem), found
    assert not is_cron(cron)


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 * * * *", "30 8 * * mon-fri", "0 0 1 jan *", "0 9 * * 1#1"])
def test_valid_cron_has_no_problem(cron: str) -> None:
    assert cron_problem(cron) is None
    assert is_cron(cron)


def test_a_six_field_cron_is_refused_by_the_settings_with_a_plain_message() -> None:
    with pytest.raises(ValidationError) as raised:
        SyncSettings.model_validate({"frequency": "0 0 2 * * *"})
    error = configuration_error(raised.value, SyncSettings, prefix="settings")
    assert error.field == "settings.frequency"
    assert "remove the seconds field" in error.problems[0].message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("15m", "every 15 minutes"),
        ("30m", "every 30 minutes"),
        ("1m", "every minute"),
        ("90m", "every 90 minutes"),
        ("1h", "hourly"),
        ("60m", "hourly"),
        ("6h", "every 6 hours"),
        ("24h", "daily"),
        ("1d", "daily"),
        ("7d", "weekly"),
        ("45s", "every 45 seconds"),
        ("0 2 * * *", "daily at 02:00 UTC"),
        ("30 14 * * *", "daily at 14:30 UTC"),
        ("0 * * * *", "hourly, on the hour"),
        ("15 * * * *", "hourly, at 15 minutes past"),
        ("*/10 * * * *", "every 10 minutes"),
        ("0 */6 * * *", "every 6 hours, on the hour"),
        ("0 9 * * 1", "weekly on Monday at 09:00 UTC"),
        ("0 9 * * sun", "weekly on Sunday at 09:00 UTC"),
        ("0 7 * * 1-5", "on weekdays (Monday to Friday) at 07:00 UTC"),
        ("0 3 1 * *", "monthly on day 1 at 03:00 UTC"),
        ("5 4 * 6 2,4", "cron: 5 4 * 6 2,4"),
    ],
)
def test_a_frequency_in_words(text: str, words: str) -> None:
    assert describe_frequency(text) == words


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("often", "'often' is neither an interval (15m, 1h, 24h) nor a cron expression"),
        ("every so often", "'every so often' is neither an interval"),
        ("0 2 * *", "'0 2 * *': a cron expression has five fields separated by spaces"),
        ("", "give an interval such as 15m, 1h or 24h, or a cron expression"),
        ("0 25 * * *", "'0 25 * * *': the hour field (2nd) must be 0\u201323, got 25"),
        ("0m", "'0m' is neither an interval"),
    ],
)
def test_a_frequency_problem_in_plain_words(text: str, problem: str) -> None:
    found = frequency_problem(text)
    assert found is not None and found.startswith(problem), found


def test_every_settings_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as raised:
        SyncSettings.model_validate(
            {
                "frequency": "0 25 * * *",
                "user_filter": {"condition": "department = 'Sales'"},
                "safety": {"max_deactivations": "ten", "max_deactivation_percent": 120},
            }
        )
    error = configuration_error(raised.value, SyncSettings, prefix="settings")
    found = {p.field: p.message for p in error.problems}
    assert found == {
        "settings.frequency": "'0 25 * * *': the hour field (2nd) must be 0\u201323, got 25",
        "settings.user_filter.condition": "is not valid: compare with == (a single = is not a comparison), "
        "e.g. department == 'Sales'",
        "settings.safety.max_deactivations": "'ten' is not a whole number",
        "settings.safety.max_deactivation_percent": "must be at most 100",
    }
    assert "end of print statement" not in str(error) and "expected token" not in str(error)
