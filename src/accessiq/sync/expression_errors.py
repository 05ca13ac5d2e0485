"""Why a condition or template does not parse, in an administrator's words instead of the template engine's."""

from __future__ import annotations

import re

from jinja2 import TemplateError

CONDITION_EXAMPLE = "department == 'Sales'"
TEMPLATE_EXAMPLE = "{{ given_name }} {{ family_name }}"

_UNEXPECTED_CHAR = re.compile(r"unexpected char (['\"])(.)\1 at \d+")
_GOT = re.compile(r"expected token '[^']+', got '([^']*)'")
_NO_FILTER = re.compile(r"no (filter|test) named '([^']+)'", re.IGNORECASE)


_SINGLE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")


def explain_syntax_error(exc: TemplateError, source: str, *, condition: bool) -> str:
    """A plain sentence for a syntax error of a condition (`condition=True`) or of a template."""
    message = exc.message or ""
    example = CONDITION_EXAMPLE if condition else TEMPLATE_EXAMPLE
    if condition and _SINGLE_EQUALS.search(source):
        return f"compare with == (a single = is not a comparison), e.g. {example}"
    char = _UNEXPECTED_CHAR.search(message)
    if char:
        if char.group(2) in "'\"":
            return f"a quote is not closed: put text in matching quotes, e.g. {CONDITION_EXAMPLE}"
        return f"the character {char.group(2)!r} cannot be used here; write it like {example}"
    if "end of template" in message or ("end of print statement" in message and "got" not in message):
        closing = "a value, a closing quote or bracket" if condition else "a closing }}, quote or bracket"
        return f"it ends too early: {closing} is missing"
    got = _GOT.search(message)
    if got or "chunk after expression" in message:
        what = f"'{got.group(1)}'" if got else "something after the first expression"
        hint = "put text in quotes and compare with ==" if condition else "put each expression in its own {{ }}"
        return f"{what} is not expected there: {hint}, e.g. {example}"
    unknown = _NO_FILTER.search(message)
    if unknown:
        return f"there is no {unknown.group(1)} named '{unknown.group(2)}'"
    return f"it is not a valid {'condition' if condition else 'template'}; write it like {example}"
