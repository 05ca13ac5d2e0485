"""The error taxonomy. Run log, API and CLI each turn these into a status, a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class AccessIQError(Exception):
    """Base of every error the product reports to a person instead of a traceback."""

    exit_code = 1
    http_status = 400
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class FieldProblem:
    """One refused value: where (a document path such as `settings.frequency`) and what is wrong, in plain words."""

    field: str | None
    message: str


class ConfigurationError(AccessIQError):
    """A document, setting or argument that cannot be accepted. `field` names where.

    `problems` holds every refused value when several were found at once (the first is
    `field`); a form shows each beside its own input.
    """

    exit_code = 2
    http_status = 422
    kind = "configuration"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        problems: Iterable[FieldProblem] = (),
    ) -> None:
        listed = tuple(problems) or (FieldProblem(field, f"{message} ({hint})" if hint else message),)
        if len(listed) > 1:
            # Each problem carries its own hint.
            text, hint = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in listed), None
        else:
            text = f"{field}: {message}" if field else message
        super().__init__(text, hint=hint)
        self.field = field
        self.problems = listed


class NotFoundError(AccessIQError):
    exit_code = 3
    http_status = 404
    kind = "not_found"


class ConflictError(AccessIQError):
    """The request clashes with the current state (a duplicate slug, an email taken)."""

    exit_code = 4
    http_status = 409
    kind = "conflict"


class RunInProgressError(ConflictError):
    """Another live process holds the directory's run (`accessiq sync --no-wait`).

    Exit code 75, EX_TEMPFAIL of sysexits.h: nothing is wrong, try again later.
    """

    exit_code = 75
    kind = "run_in_progress"


class PlanRejectedError(AccessIQError):
    """A stored plan can no longer be applied as is: the store moved since it was made."""

    exit_code = 5
    http_status = 409
    kind = "plan_rejected"


class ConnectorError(AccessIQError):
    """The directory could not be read. Fails the run; nothing is applied."""

    exit_code = 6
    http_status = 502
    kind = "connector"


class AuthenticationError(ConnectorError):
    """Bad tenant, client id, secret, token or bind credentials."""

    kind = "authentication"


class PermissionDeniedError(ConnectorError):
    """Credentials are valid but lack a permission; the message names it."""

    kind = "permission"


class UnreachableError(ConnectorError):
    """The endpoint did not answer (DNS, refused connection, TLS, timeout after retries)."""

    kind = "unreachable"


class TransientError(ConnectorError):
    """A provider error that retrying later may cure (429, 5xx) after our own retries ran out."""

    kind = "transient"


class SourceError(ConnectorError):
    """The provider answered with something we cannot use (malformed page, unexpected status)."""

    kind = "source"


class RunCanceledError(AccessIQError):
    """An administrator canceled the run; what it had not applied is not applied."""

    kind = "canceled"
