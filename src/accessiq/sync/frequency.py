"""A sync frequency: an interval (`15m`, `1h`, `24h`) or a five-field cron expression, checked and put in words.

Cron runs in UTC, as the scheduler computes it. Six-field cron (with seconds) is refused:
no directory needs to sync more than once a minute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from croniter import croniter

_INTERVAL = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DASH = "\u2013"  # an en dash: "0\u201359"
_ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    # Where the first name sits: months are named from 1, weekdays from 0.
    first_name: int = 0


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField("month", 1, 12, _MONTHS, 1),
    _CronField("day-of-week", 0, 7, _DAYS, 0),
)
CRON_FORMAT = "minute hour day-of-month month day-of-week, e.g. 0 2 * * * for daily at 02:00 UTC"


def parse_interval(text: str) -> timedelta:
    """`90s`, `15m`, `1h30m`, `24h`, `7d` -> timedelta; ValueError for anything else."""
    compact = text.replace(" ", "")
    parts = _INTERVAL.findall(compact)
    if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
        raise ValueError(f"{text!r} is not an interval like 15m, 1h or 24h")
    delta = timedelta()
    for number, unit in parts:
        delta += timedelta(**{_UNITS[unit.lower()]: int(number)})
    if delta <= timedelta(0):
        raise ValueError("an interval must be longer than zero")
    return delta


_CRON_PART = re.compile(r"[\d*?/,#LW-]+")


def looks_like_cron(text: str) -> bool:
    """True when `text` is meant as cron, valid or not: a `*`, or several parts made of cron's characters."""
    parts = text.split()
    return "*" in text or (len(parts) >= 3 and all(_CRON_PART.fullmatch(p) or _names_day(p) for p in parts))


def _names_day(part: str) -> bool:
    return any(name in part.lower() for name in _MONTHS + _DAYS)


def is_cron(text: str) -> bool:
    """A valid five-field cron expression."""
    return len(text.split()) == 5 and cron_problem(text) is None


def cron_problem(text: str) -> str | None:
    """What is wrong with a cron expression, in plain words naming the part; None when it is valid."""
    parts = text.split()
    if len(parts) == 6:
        return (
            "has six fields, but seconds are not supported: remove the seconds field and keep five "
            "(minute hour day-of-month month day-of-week)"
        )
    if len(parts) != 5:
        return f"a cron expression has five fields separated by spaces ({CRON_FORMAT}); this has {len(parts)}"
    for position, (part, spec) in enumerate(zip(parts, _CRON_FIELDS, strict=True)):
        problem = _field_problem(part, spec)
        if problem:
            return f"the {spec.name} field ({_ORDINALS[position]}) {problem}"
    if not croniter.is_valid(text):
        return f"is not a valid cron expression ({CRON_FORMAT})"
    return None


def _field_problem(part: str, spec: _CronField) -> str | None:
    for item in part.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"has a step '/{step}': a step is a whole number of at least 1, e.g. */15"
        if base in ("*", "?"):
            continue
        low_text, _, high_text = base.partition("-")
        for value in (low_text, high_text) if high_text else (low_text,):
            number = _value(value, spec)
            if number is None:
                if "#" in value or value.upper().endswith(("L", "W")):
                    continue  # croniter's extensions (last day, nth weekday) are checked by croniter
                return f"must be {_range(spec)}, got '{value}'"
            if not spec.low <= number <= spec.high:
                return f"must be {_range(spec)}, got {number}"
    return None


def _value(text: str, spec: _CronField) -> int | None:
    if text.isdigit():
        return int(text)
    if text.lower() in spec.names:
        return spec.names.index(text.lower()) + spec.first_name
    return None


def _range(spec: _CronField) -> str:
    span = f"{spec.low}{_DASH}{spec.high}"
    if spec.names:
        span += f" or {spec.names[0].upper()}{_DASH}{spec.names[-1].upper()}"
    return span


def frequency_problem(text: str) -> str | None:
    """Why `text` is not a frequency, in plain words; None when it is one."""
    value = text.strip()
    if not value:
        return "give an interval such as 15m, 1h or 24h, or a cron expression"
    if looks_like_cron(value):
        problem = cron_problem(value)
        return None if problem is None else f"{value!r}: {problem}"
    try:
        parse_interval(value)
    except ValueError:
        return f"{value!r} is neither an interval (15m, 1h, 24h) nor a cron expression ({CRON_FORMAT})"
    return None


def describe_frequency(text: str) -> str:
    """A frequency in words: "every 30 minutes", "hourly", "daily at 02:00 UTC", else "cron: …"."""
    value = text.strip()
    if is_cron(value):
        return _describe_cron(value.split()) or f"cron: {value}"
    try:
        return describe_interval(parse_interval(value))
    except ValueError:
        return value


def describe_interval(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for size, single, unit in (
        (7 * 86400, "weekly", "week"),
        (86400, "daily", "day"),
        (3600, "hourly", "hour"),
        (60, "every minute", "minute"),
        (1, "every second", "second"),
    ):
        if seconds % size == 0:
            count = seconds // size
            return single if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


def _describe_cron(parts: list[str]) -> str | None:
    minute, hour, day, month, weekday = parts
    if month != "*":
        return None
    if (minute, hour, day, weekday) == ("*", "*", "*", "*"):
        return "every minute"
    step = re.fullmatch(r"\*/(\d+)", minute)
    if step and (hour, day, weekday) == ("*", "*", "*"):
        return describe_interval(timedelta(minutes=int(step.group(1))))
    if not minute.isdigit():
        return None
    past = "on the hour" if int(minute) == 0 else f"at {int(minute)} minutes past"
    if (hour, day, weekday) == ("*", "*", "*"):
        return f"hourly, {past}"
    hours = re.fullmatch(r"\*/(\d+)", hour)
    if hours and (day, weekday) == ("*", "*"):
        return f"every {int(hours.group(1))} hours, {past}"
    if not hour.isdigit():
        return None
    at = f"at {int(hour):02d}:{int(minute):02d} UTC"
    if (day, weekday) == ("*", "*"):
        return f"daily {at}"
    if day == "*" and weekday.isdigit():
        return f"weekly on {_DAY_NAMES[int(weekday)]} {at}"
    if day == "*" and weekday.lower() in _DAYS:
        return f"weekly on {_DAY_NAMES[_DAYS.index(weekday.lower())]} {at}"
    if day == "*" and weekday.lower() in ("1-5", "mon-fri"):
        return f"on weekdays (Monday to Friday) {at}"
    if weekday == "*" and day.isdigit():
        return f"monthly on day {int(day)} {at}"
    return None
