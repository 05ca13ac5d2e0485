"""The sandbox attribute templates and filter conditions run in, with a time and a size budget.

Jinja2's immutable sandbox already refuses Python internals (`''.__class__`) and mutation. A
mapping is written by an administrator but runs on every user of a directory, so it is held to
more: no loops, macros or call blocks (`{% for %}` nested twice over a record's list is hours of
work per user); no operation whose result would pass `MAX_TEXT` characters or `MAX_ITEMS`
items (`'x' * 10**9`, `9 ** 9 ** 9`, `'%999999999d' % 1`, `'x'.center(10**9)`, `replace('',
...)`) is even started; text methods are the ones that read or reshape text; a render that
passes `BUDGET_SECONDS` stops. Anything refused while a record is mapped is an error on that
record.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg

MAX_TEXT = 64 * 1024  # characters of any text a template makes, its output included
MAX_ITEMS = 100_000  # items of any list it makes
MAX_NUMBER_BITS = 4096  # bits of any integer it computes
MAX_ARGUMENT = 10_000  # largest number a method or filter takes as an argument (a width, a count)
MAX_SOURCE = 4096  # characters of one template or condition
BUDGET_SECONDS = 1.0
_MAX_RANGE = 1000
# What a template may do with text: read it and reshape it, never grow it without bound.
_TEXT_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper",
        "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace",
        "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines",
        "startswith", "strip", "swapcase", "title", "upper", "zfill",
    }
)  # fmt: skip
# The filters a mapping may use; the rest (random, wordwrap, indent, urlize, xmlattr, pprint,
# safe) are nondeterministic, grow text by a factor of their arguments, or make markup.
_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "format", "groupby", "int", "items", "join", "last", "length",
        "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "select",
        "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate",
        "unique", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip
_REFUSED_NODES = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_deadline: ContextVar[float | None] = ContextVar("template_deadline", default=None)


class TemplateBudgetError(SecurityError):
    """A template went past the sandbox's time or size budget."""


@contextmanager
def budget() -> Any:
    """Give the templates rendered inside `BUDGET_SECONDS` between them."""
    token = _deadline.set(time.monotonic() + BUDGET_SECONDS)
    try:
        yield
    finally:
        _deadline.reset(token)


def _tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateBudgetError(f"the template took longer than {BUDGET_SECONDS:g} s")


def _fits(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")
    if isinstance(value, list | tuple | dict | set) and len(value) > MAX_ITEMS:
        raise TemplateBudgetError(f"the template made a list longer than {MAX_ITEMS} items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_NUMBER_BITS:
        raise TemplateBudgetError("the template made a number too large")
    return value


def fits_output(text: str) -> str:
    """A rendered template, refused when it is longer than `MAX_TEXT`."""
    return str(_fits(text))


def _size(value: Any) -> int:
    return len(value) if isinstance(value, Sized) else 0


def _small_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
            raise TemplateBudgetError(f"the template passed {value}, more than {MAX_ARGUMENT}, as an argument")


def _percent_format(template: Any) -> None:
    """Refuse a %-format whose widths or precisions are large or taken from the arguments."""
    if not isinstance(template, str):
        return
    for width, precision in _PERCENT_SPEC.findall(template):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_ARGUMENT):
                raise TemplateBudgetError("the template formats with a width or precision that is too large")


def _joined_size(separator: Any, items: Any) -> int:
    # A generator is measured once made, by the size check on the result.
    if isinstance(items, str | dict | set | frozenset) and len(items) <= MAX_ITEMS:
        items = list(items)
    elif not isinstance(items, list | tuple):
        return 0
    return _size(separator) * max(len(items) - 1, 0) + sum(_size(str(item)) for item in items)


def _check_text_call(method: Any, args: tuple[Any, ...]) -> None:
    """The text methods that can grow their input: estimate the result before making it."""
    name, text = method.__name__, method.__self__
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        times = len(text) + 1 if not old else text.count(old)
        if len(text) + times * max(len(new) - len(old), 0) > MAX_TEXT:
            raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")
    elif name == "join" and args and _joined_size(text, args[0]) > MAX_TEXT:
        raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the budget above."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False)
        self.globals = {"range": _bounded_range, "dict": dict}
        self.filters = {
            name: _budgeted_filter(name, function) for name, function in self.filters.items() if name in _FILTERS
        }

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for text, times in ((left, right), (right, left)):
                if isinstance(times, int) and _size(text) * max(times, 0) > MAX_TEXT:
                    raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")
            if isinstance(left, int) and isinstance(right, int) and (
                left.bit_length() + right.bit_length() > MAX_NUMBER_BITS
            ):
                raise TemplateBudgetError("the template made a number too large")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and max(left.bit_length(), 1) * right > MAX_NUMBER_BITS and abs(left) > 1:
                raise TemplateBudgetError("the template made a number too large")
        elif operator == "%":
            _percent_format(left)
        elif operator == "+" and _size(left) + _size(right) > MAX_TEXT:
            raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")
        return _fits(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _small_arguments(args, kwargs)
        if isinstance(getattr(__obj, "__self__", None), str):
            _check_text_call(__obj, args)
        return _fits(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _TEXT_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"a mapping may not read {attribute!r} of a {type(obj).__name__} value")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
            getattr(value, "__self__", None), str
        ):
            raise SecurityError("str.format is not available in a mapping; join text with ~")
        return None


def refused_statement(tree: nodes.Template) -> str | None:
    """What a parsed template does that a mapping may not (a loop, a macro), or None."""
    for lookup in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = getattr(lookup, "attr", None) or getattr(getattr(lookup, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return f"a mapping may not read {name!r}: names starting with _ are Python internals"
    for node in tree.find_all(_REFUSED_NODES):
        kind = {nodes.For: "loops ({% for %})", nodes.Macro: "macros", nodes.CallBlock: "call blocks"}.get(
            type(node), "includes and imports"
        )
        return f"{kind} are not allowed in a mapping; use filters such as join, first or select instead"
    return None


def _bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > _MAX_RANGE:
        raise TemplateBudgetError(f"range() gives at most {_MAX_RANGE} numbers in a mapping")
    return values


def _budgeted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # A filter's first argument is the value it filters, after the context or environment it
    # may ask for; only the arguments after the value are widths and counts.
    value_at = 0 if _PassArg.from_obj(function) is None else 1

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        _tick()
        value, rest = (args[value_at] if len(args) > value_at else None), args[value_at + 1 :]
        _small_arguments(rest, kwargs)
        if name == "format":
            _percent_format(value)
        elif name == "join":
            separator = rest[0] if rest else kwargs.get("d", "")
            if value is not None and _joined_size(separator, value) > MAX_TEXT:
                raise TemplateBudgetError(f"the template made a text longer than {MAX_TEXT} characters")
        elif name == "replace" and len(rest) >= 2 and isinstance(value, str):
            _check_text_call(value.replace, rest)
        return _fits(function(*args, **kwargs))

    return run
