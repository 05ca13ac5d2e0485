"""The HTTP core every REST connector shares: timeouts, retries with backoff, error mapping.

A provider module describes its own error bodies (`ErrorDescriber`) and decides
which statuses it handles itself (`accept`); everything else here is
provider-neutral, so Graph, Okta and Google connectors behave alike on a slow,
throttled or unreachable endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from accessiq import __version__
from accessiq.config import Settings
from accessiq.endpoints import origin_of
from accessiq.errors import (
    AccessIQError,
    AuthenticationError,
    PermissionDeniedError,
    SourceError,
    TransientError,
    UnreachableError,
)

log = structlog.get_logger(__name__)

# Given a final error response, a provider returns the error to raise (a
# ConnectorError, or a ConfigurationError when a setting caused it), or None for
# the generic mapping below.
ErrorDescriber = Callable[[httpx.Response], AccessIQError | None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request the provider may answer better later."""

    attempts: int = 6
    # Exponential fallback when the provider sends no Retry-After: base * 2**n, capped.
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not slept through: the run fails as transient
    # and the next scheduled run tries again.
    max_retry_after: float = 300.0
    # 501 Not Implemented is permanent, so it is not in the 5xx set.
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpOptions:
    """Knobs of the HTTP core; tests swap `sleep` and `jitter` to run without waiting."""

    timeout: float = field(default_factory=lambda: Settings().http_timeout)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    # Returns a factor in [0, 1) that spreads retries of many workers apart.
    jitter: Callable[[], float] = random.random
    transport: httpx.BaseTransport | None = None
    user_agent: str = f"AccessIQ-DirectorySync/{__version__}"


class HttpClient:
    """One provider endpoint (`service` names it in messages) behind retries and error mapping.

    Every request stays on `origin`: a link or an answer pointing elsewhere fails
    before anything, such as a bearer token or a client secret, is sent there.
    Response bodies are quoted in error messages only when `show_bodies` says the
    endpoint is trusted (a provider's public endpoint or one the operator allows).
    """

    def __init__(
        self,
        service: str,
        options: HttpOptions | None = None,
        *,
        origin: str,
        show_bodies: bool = False,
        describe_error: ErrorDescriber | None = None,
        pacer: RateLimitPacer | None = None,
        retry_also: Callable[[httpx.Response], bool] | None = None,
    ) -> None:
        self.service = service
        # Optional: answers outside `RetryPolicy.statuses` that are transient too (Google's 403
        # `userRateLimitExceeded`); they back off exponentially with jitter like a 429 without Retry-After.
        self._retry_also = retry_also
        # Optional: waits before a request that would exceed the provider's announced rate limit.
        self.pacer = pacer
        self.options = options or HttpOptions()
        self.origin = origin_of(origin)
        self.show_bodies = show_bodies
        self._describe_error = describe_error
        self._client = httpx.Client(
            timeout=self.options.timeout,
            transport=self.options.transport,
            headers={"User-Agent": self.options.user_agent},
            # Redirects are answers a provider means for us (Graph's 410 + Location), not hops.
            follow_redirects=False,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | str | None = None,
        accept: Collection[int] = (),
        raise_for_status: bool = True,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; return a 2xx/3xx or an `accept`ed response.

        Any other final status raises the ConnectorError the provider's describer or
        the generic mapping chooses, unless `raise_for_status` is False.
        """
        self._stay_on_origin(url)
        policy = self.options.retry
        attempt = 0
        while True:
            attempt += 1
            if self.pacer is not None:
                pause = self.pacer.wait_before(url)
                if pause > 0:
                    log.info("http.pace", service=self.service, url=_loggable(url), delay=round(pause, 3))
                    self.options.sleep(pause)
            try:
                response = self._client.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    data=data if isinstance(data, Mapping) else None,
                    content=data if isinstance(data, str) else None,
                )
            except httpx.TransportError as exc:
                if attempt >= policy.attempts:
                    raise self._unreachable(url, exc, attempt) from None
                delay = self._backoff(attempt)
                log.info(
                    "http.retry",
                    service=self.service,
                    url=_loggable(url),
                    error=type(exc).__name__,
                    attempt=attempt,
                    delay=round(delay, 3),
                )
                self.options.sleep(delay)
                continue
            if self.pacer is not None and response.status_code != 429:
                # A 429 is waited out by the retry below; the pacer watches the budget of answers.
                self.pacer.observe(url, response.headers)
            if response.status_code in accept or response.status_code < 400:
                return response
            if self._retryable(response) and attempt < policy.attempts:
                wait = self._delay_for(response, attempt)
                if wait is not None:
                    log.info(
                        "http.retry",
                        service=self.service,
                        url=_loggable(url),
                        status=response.status_code,
                        attempt=attempt,
                        delay=round(wait, 3),
                    )
                    response.close()
                    self.options.sleep(wait)
                    continue
            if not raise_for_status:
                return response
            raise self._error_for(response, attempt)

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> tuple[dict[str, Any], httpx.Response]:
        """GET a JSON object; a body that is not one is a SourceError."""
        response = self.request("GET", url, params=params, headers=headers, accept=accept)
        return self.json_object(response), response

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        """The response body as a JSON object, or a SourceError saying what came instead."""
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"{self.service} sent a body that is not JSON for {_loggable(str(response.url))}: "
                f"{self.snippet(response)}"
            ) from None
        if not isinstance(body, dict):
            raise SourceError(f"{self.service} sent JSON that is not an object for {_loggable(str(response.url))}")
        return body

    def snippet(self, response: httpx.Response, limit: int = 300) -> str:
        """The start of the response body for an error message, when this endpoint is trusted."""
        return _snippet(response, limit) if self.show_bodies else self.withheld

    @property
    def withheld(self) -> str:
        """What an error message says instead of the answer of an endpoint that is not trusted."""
        return (
            f"(the answer is not shown: {self.origin} is neither the provider's public endpoint nor one "
            "allowed by ACCESSIQ_ALLOWED_ENDPOINTS)"
        )

    def _stay_on_origin(self, url: str) -> None:
        """Raise SourceError, sending nothing, when `url` is not on this client's origin."""
        target = origin_of(url)
        if target != self.origin:
            raise SourceError(
                f"{self.service}: refusing to send a request to {target or 'a URL without an origin'}, outside "
                f"{self.origin} where this endpoint is configured; nothing was sent there",
                hint="a server answered with a link to another origin; check the endpoint URLs of the connection",
            )

    def close(self) -> None:
        self._client.close()

    def _retryable(self, response: httpx.Response) -> bool:
        if response.status_code in self.options.retry.statuses:
            return True
        return self._retry_also is not None and self._retry_also(response)

    def _delay_for(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the provider asks for longer than we wait."""
        if response.headers.get("x-rate-limit-limit", "").strip() == "0":
            # Okta's concurrency limit: its reset time is only an estimate, so back off instead.
            return self._backoff(attempt)
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return self._backoff(attempt)
        if asked > self.options.retry.max_retry_after:
            return None
        return asked

    def _backoff(self, attempt: int) -> float:
        policy = self.options.retry
        ceiling = min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))
        # "Equal jitter": at least half the ceiling, so the wait still grows.
        return ceiling / 2 + ceiling / 2 * self.options.jitter()

    def _unreachable(self, url: str, exc: httpx.TransportError, attempts: int) -> UnreachableError:
        origin = origin_of(url)
        if isinstance(exc, httpx.TimeoutException):
            what = f"did not answer within {self.options.timeout:g}s"
        elif isinstance(exc, httpx.ConnectError):
            what = f"refused or failed the connection ({exc})"
        else:
            what = f"failed ({type(exc).__name__}: {exc})"
        return UnreachableError(
            f"{self.service} at {origin} {what}; gave up after {attempts} attempts",
            hint="check the endpoint URL, DNS, proxy and firewall",
        )

    def _error_for(self, response: httpx.Response, attempts: int) -> AccessIQError:
        if self._describe_error is not None:
            described = self._describe_error(response)
            if described is not None:
                return described
        status = response.status_code
        where = f"{self.service} answered {status} to {response.request.method} {_loggable(str(response.url))}"
        body = self.snippet(response)
        if status in self.options.retry.statuses:
            return TransientError(
                f"{where} after {attempts} attempts: {body}",
                hint="the provider is throttling or unavailable; the next run retries",
            )
        if status == 401:
            return AuthenticationError(f"{where}: {body}", hint="check the credentials")
        if status == 403:
            return PermissionDeniedError(f"{where}: {body}", hint="grant the credentials read access")
        return SourceError(f"{where}: {body}")


class PageGuard:
    """Stops a paginator that a misbehaving server sends round in circles or to another origin."""

    def __init__(self, what: str, origin: str, max_pages: int = 1_000_000) -> None:
        self._what = what
        self._origin = origin_of(origin)
        self._max_pages = max_pages
        self._seen: set[bytes] = set()
        self._pages: set[bytes] = set()

    def served(self, ids: Iterable[str]) -> None:
        """Record the ids of a page just read; raise SourceError when an earlier page held exactly these.

        A server that goes back to an earlier page behind a fresh link or token (Google's page tokens
        are new on every answer) repeats no link, but it repeats a page. Only for lists whose pages
        never overlap: Graph delta rounds may replay entries.
        """
        key = "\0".join(i for i in ids if i)
        if not key:
            return
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        if digest in self._pages:
            raise SourceError(
                f"{self._what}: the server sent a page it had already sent (a next-page link that leads back); "
                "stopping instead of looping (nothing was applied)"
            )
        self._pages.add(digest)

    def visit(self, link: str) -> None:
        """Record the next page's link; raise SourceError when it was already followed or leaves the origin."""
        self.stays(link)
        digest = hashlib.blake2b(link.encode(), digest_size=16).digest()
        if digest in self._seen:
            raise SourceError(
                f"{self._what}: the server sent the same next-page link twice; stopping instead of looping"
            )
        if len(self._seen) >= self._max_pages:
            raise SourceError(f"{self._what}: more than {self._max_pages} pages; stopping")
        self._seen.add(digest)

    def stays(self, link: str) -> None:
        """Raise SourceError when a paging or delta link is not on the origin the read started with."""
        target = origin_of(link)
        if target != self._origin:
            raise SourceError(
                f"{self._what}: the server sent a link to {target or 'no origin'}, outside {self._origin} where "
                "the read started; stopping without following it (nothing was applied)",
                hint="check the endpoint URLs of the connection and any proxy in front of the provider",
            )


class RateLimitPacer:
    """Slows requests down before a provider that announces its budget (`X-Rate-Limit-*`) answers 429.

    Budgets are per endpoint family (`/api/v1/users`, `/api/v1/groups`, ...): after a response
    leaves `reserve` of the limit or less, the next request to that family waits for the reset.
    The reset is read against the response's `Date`, so a skewed local clock does not shorten it.
    """

    def __init__(self, reserve: float = 0.1, segments: int = 3) -> None:
        self.reserve = reserve
        self.segments = segments
        self._resume_at: dict[str, float] = {}

    def _family(self, url: str) -> str:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        return "/" + "/".join(parts[: self.segments])

    def observe(self, url: str, headers: Mapping[str, str]) -> None:
        """Note what a response says is left of its family's budget."""
        try:
            limit = int(headers.get("x-rate-limit-limit", ""))
            remaining = int(headers.get("x-rate-limit-remaining", ""))
        except ValueError:
            return
        family = self._family(url)
        if limit > 0 and remaining <= max(1, int(limit * self.reserve)):
            wait = retry_after_seconds(
                {"x-rate-limit-reset": headers.get("x-rate-limit-reset", ""), "date": headers.get("date", "")}
            )
            if wait is not None:
                self._resume_at[family] = time.monotonic() + wait
                return
        self._resume_at.pop(family, None)

    def wait_before(self, url: str) -> float:
        """Seconds to wait before sending `url`; 0 when its family has budget left."""
        resume = self._resume_at.pop(self._family(url), None)
        return max(0.0, resume - time.monotonic()) if resume is not None else 0.0


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a response asks for: `Retry-After` (seconds or HTTP date) or Okta's `X-Rate-Limit-Reset`.

    The reset is an epoch second of the provider's clock: it is measured from the response's
    `Date` when there is one (both are whole seconds, so the wait errs on the long side).
    """
    if now is None:
        now = time.time()
        if headers.get("x-rate-limit-reset") and not headers.get("retry-after") and headers.get("date"):
            with contextlib.suppress(TypeError, ValueError, IndexError):
                now = parsedate_to_datetime(headers["date"]).timestamp()
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            return None
    reset = headers.get("x-rate-limit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _loggable(url: str) -> str:
    # Page tokens are long and meaningless to a reader; the path says enough.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return "(unreadable body)"
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "") if text else "(empty body)"
