"""Structured logging: key=value lines for people, JSON lines for log shippers; no secret in either."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Field names that hold credentials, at any depth of an event: connection settings, headers, tokens.
_SECRET_NAME = re.compile(
    r"secret|passw|token|authorization|cookie|api[_-]?key|private[_-]?key|certificate|service[_-]?account"
    r"|credential|assertion|passphrase",
    re.IGNORECASE,
)
# Credentials inside text (messages, exception text, reprs): an Authorization scheme and its value,
# or a secret name followed by `=` or `:` and a value, quoted (up to the quote) or bare.
_SECRET_IN_TEXT = re.compile(
    r"(?P<lead>(?-i:\b(?:Bearer|SSWS)\s+)"
    r"|\b[\w$-]*?(?:secret|passw(?:or)?d|token|authorization|cookie|api[_-]?key|private[_-]?key)['\"]?\s*[:=]\s*"
    r"(?P<quote>['\"])?(?:(?-i:Bearer|SSWS|Basic|Token)\s+)?)"
    r"(?(quote)[^'\"]*|[^\s'\"&,;]+)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?<=://)(?P<user>[^\s/:@]*):[^\s/@]+@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)


def _secret_name(name: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return isinstance(name, str) and _SECRET_NAME.search(name) is not None


def _redact_text(text: str) -> str:
    text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(rf"\g<user>:{REDACTED}@", text)
    return _SECRET_IN_TEXT.sub(rf"\g<lead>{REDACTED}", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {key: REDACTED if _secret_name(key) else _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == 2 and _secret_name(value[0]):  # a header as a (name, value) pair
            return (value[0], REDACTED)
        items = [_redact(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    # Any other object is rendered through its repr (an exception, a request): redact that if it must be.
    text = repr(value)
    redacted = _redact_text(text)
    return value if redacted == text else redacted


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace secret values in an event, tracebacks included, by "[redacted]"; runs just before rendering."""
    return {key: REDACTED if _secret_name(key) else _redact(value) for key, value in event_dict.items()}


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Route structlog to stderr at `level`; `fmt` is console or json.

    The stdlib loggers of httpx, httpcore and uvicorn stay as they are: without a handler only their
    warnings reach stderr, and none of those (nor uvicorn's access lines) carries a header.
    """
    exceptions: Processor
    renderer: Processor
    if fmt == "json":
        # Tracebacks as data, without frame locals: those hold decrypted secrets and request headers.
        exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        renderer = structlog.processors.JSONRenderer()
    else:
        # Tracebacks as plain text (never rich's, which shows locals), formatted before the
        # renderer so that redact_secrets sees them.
        exceptions = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            exceptions,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
