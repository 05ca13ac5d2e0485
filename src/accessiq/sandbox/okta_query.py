"""Okta's `filter` and `search` expressions, as the Okta sandbox accepts them (provider-apis §2.2, §2.3, §2.5).

`filter` takes a fixed set of attributes per resource, `eq` only (date attributes also
`gt ge lt le`), `and`/`or` without `not`, and is case-sensitive. `search` takes any
attribute, `eq sw gt ge lt le pr` with `and`/`or`/`not` and parentheses, `ne` never,
and compares values without case. Anything else is an `OktaQueryError` (E0000053).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r'\s*(?:(?P<paren>[()])|"(?P<string>(?:[^"\\]|\\.)*)"|(?P<word>[^\s()"]+))')
DATE_OPERATORS = frozenset({"eq", "gt", "ge", "lt", "le"})
SEARCH_OPERATORS = frozenset({"eq", "sw", "gt", "ge", "lt", "le", "pr"})


class OktaQueryError(ValueError):
    """An expression Okta refuses with E0000053."""


@dataclass(frozen=True)
class Dialect:
    """What one query parameter of one resource accepts."""

    attributes: Collection[str] | None  # None: any attribute (search)
    date_attributes: Collection[str]
    search: bool = False


def compile_query(expression: str, dialect: Dialect) -> Predicate:
    """A predicate over a resource's JSON for `expression`; OktaQueryError when Okta would refuse it."""
    tokens = _tokens(expression)
    parser = _Parser(tokens, dialect)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise OktaQueryError(f"unexpected {tokens[parser.position][1]!r} in {expression!r}")
    return predicate


def resolve(record: Mapping[str, Any], path: str) -> list[Any]:
    """The values at a dotted path; a list on the way (System Log `target`) gives each element's value."""
    values: list[Any] = [record]
    for part in path.split("."):
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            found += [item[part] for item in items if isinstance(item, Mapping) and part in item]
        values = found
    return [v for value in values for v in (value if isinstance(value, list) else [value])]


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise OktaQueryError(f"cannot parse {expression!r} near position {position}")
        position = match.end()
        if match["paren"]:
            tokens.append(("paren", match["paren"]))
        elif match["string"] is not None:
            tokens.append(("string", match["string"].replace('\\"', '"')))
        elif match["word"]:
            tokens.append(("word", match["word"]))
    if not tokens:
        raise OktaQueryError("an empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], dialect: Dialect) -> None:
        self.tokens = tokens
        self.position = 0
        self.dialect = dialect

    def _peek_word(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "word":
            word = self.tokens[self.position][1]
            return word.lower() if self.dialect.search else word
        return None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise OktaQueryError("the expression ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Predicate:
        terms = [self.term()]
        while self._peek_word() == "or":
            self.position += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda r: any(t(r) for t in terms))

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self._peek_word() == "and":
            self.position += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda r: all(f(r) for f in factors))

    def factor(self) -> Predicate:
        if self._peek_word() == "not":
            if not self.dialect.search:
                raise OktaQueryError("`not` is not supported in filter expressions")
            self.position += 1
            inner = self.factor()
            return lambda r: not inner(r)
        kind, value = self._take()
        if kind == "paren" and value == "(":
            inner = self.expression()
            if self._take() != ("paren", ")"):
                raise OktaQueryError("a parenthesis is not closed")
            return inner
        if kind != "word":
            raise OktaQueryError(f"expected an attribute, found {value!r}")
        return self.comparison(value)

    def comparison(self, attribute: str) -> Predicate:
        dialect = self.dialect
        if dialect.attributes is not None and attribute not in dialect.attributes:
            raise OktaQueryError(f"filtering on {attribute!r} is not supported")
        _, operator = self._take()
        operator = operator.lower() if dialect.search else operator
        is_date = attribute in dialect.date_attributes
        allowed = SEARCH_OPERATORS if dialect.search else DATE_OPERATORS if is_date else frozenset({"eq"})
        if operator not in allowed:
            raise OktaQueryError(f"operator {operator!r} is not supported for {attribute!r}")
        if operator == "pr":
            return lambda r: any(v not in (None, "") for v in resolve(r, attribute))
        kind, raw = self._take()
        if kind == "paren":
            raise OktaQueryError(f"expected a value after {attribute} {operator}")
        wanted: Any = raw
        if kind == "word":
            wanted = {"true": True, "false": False, "null": None}.get(raw.lower(), raw)
        if is_date:
            try:
                when = _date(str(wanted))
            except ValueError:
                raise OktaQueryError(f"{raw!r} is not a date like 2021-07-01T00:00:00.000Z") from None
            return lambda r: any(_compare(_date_or_none(v), when, operator) for v in resolve(r, attribute))
        fold = dialect.search

        def test(record: Mapping[str, Any]) -> bool:
            for value in resolve(record, attribute):
                left, right = (value, wanted)
                if fold and isinstance(left, str) and isinstance(right, str):
                    left, right = left.lower(), right.lower()
                if operator == "sw":
                    if isinstance(left, str) and isinstance(right, str) and left.startswith(right):
                        return True
                elif _compare(left, right, operator):
                    return True
            return False

        return test


def _compare(left: Any, right: Any, operator: str) -> bool:
    if left is None:
        return False
    try:
        if operator == "eq":
            return bool(left == right)
        if operator == "gt":
            return bool(left > right)
        if operator == "ge":
            return bool(left >= right)
        if operator == "lt":
            return bool(left < right)
        if operator == "le":
            return bool(left <= right)
    except TypeError:
        return False
    return False


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _date_or_none(value: Any) -> datetime | None:
    try:
        return _date(str(value)) if value else None
    except ValueError:
        return None
