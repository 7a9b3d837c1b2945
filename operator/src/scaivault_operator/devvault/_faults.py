"""Fault injection: what can go wrong on purpose, and the decision for each ``/v1`` request.

Owns ``FaultConfig`` (the switches, their validation and their JSON form, shared by the CLI flags, the
``/_dev/faults`` admin endpoint and ``DevVault.faults``) and ``FaultInjector`` (the seeded random source and the
``fail_next`` queue). Called by the fault middleware in ``_app`` once per ``/v1`` request, by ``_admin`` and by
``DevVault``. ``expire_tokens`` is read by the authentication step in ``_app``.

Faults apply to the ``/v1`` requests of the call kinds in ``calls`` (None: every ``/v1`` request). Order of
decisions for one such request: the ``expire_issued_after`` countdown (at zero, every OAuth token issued so far
expires); ``latency`` is added; then the head of ``fail_next`` is answered if the queue is not empty; otherwise
one random draw decides between 503 (``error_rate``), 429 (``rate_limit_rate``) and normal service. A request
served normally may still get its successful answer spoiled by ``body_fault`` (``BODY_FAULTS``), and a list
answer reports versions ``list_version_lag`` lower than the current ones (a lagging replica).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BODY_FAULTS",
    "FAULT_CALLS",
    "HUGE_BODY_BYTES",
    "Fault",
    "FaultConfig",
    "FaultInjector",
    "fault_for_status",
    "format_seconds",
]

MAX_LATENCY = 300.0
MAX_RETRY_AFTER = 86400.0
MAX_FAIL_NEXT = 1000
MAX_COUNT = 1_000_000

#: The call kinds ``calls`` may name (``/v1`` routes; the token endpoint is never faulted).
FAULT_CALLS: tuple[str, ...] = ("whoami", "read", "list", "write")

#: What ``body_fault`` does to a successful answer:
#:
#: - ``reset``: the status line, the headers (with the full ``Content-Length``) and half of the body, then the
#:   connection is reset (TCP RST): a connection lost in the middle of a body.
#: - ``truncate``: a complete HTTP answer whose JSON body is cut in half.
#: - ``malformed``: a complete HTTP answer whose JSON has a syntax error (a trailing comma before the last ``}``).
#: - ``huge``: the answer, still valid JSON, padded to ``HUGE_BODY_BYTES`` with an extra ``padding`` field.
#: - ``content_type``: the answer as it is, labelled ``text/html; charset=utf-8``.
#: - ``html``: an HTML page (status 200, ``text/html``) instead of the answer, like a proxy's sign-in page.
BODY_FAULTS: tuple[str, ...] = ("reset", "truncate", "malformed", "huge", "content_type", "html")

#: Size of a ``huge`` answer: 20 MiB.
HUGE_BODY_BYTES = 20 * 1024 * 1024

_NUMBER_FIELDS = ("latency", "error_rate", "rate_limit_rate", "retry_after")

_FAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "bad request"),
    401: ("authentication_required", "authentication required"),
    403: ("access_denied", "access denied"),
    404: ("not_found", "not found"),
    409: ("conflict", "conflict"),
    429: ("rate_limited", "too many requests"),
    500: ("internal_error", "internal server error"),
    502: ("bad_gateway", "bad gateway"),
    503: ("unavailable", "service unavailable"),
    504: ("gateway_timeout", "gateway timeout"),
}


@dataclass
class FaultConfig:
    """The fault switches. All off by default; mutable at run time (``DevVault.faults``, ``PUT /_dev/faults``).

    ``latency`` and ``retry_after`` are seconds (fractions allowed; ``retry_after`` None: 429s carry no
    ``Retry-After``); ``error_rate`` and ``rate_limit_rate`` are shares of ``/v1`` requests (0..1, together at
    most 1); ``fail_next`` lists statuses (400..599) answered to the next ``/v1`` requests in order; ``seed``
    seeds the random source (None: unseeded). ``calls`` limits every fault to these call kinds (None: all of
    ``/v1``). ``body_fault`` spoils successful answers (one of ``BODY_FAULTS``); ``list_version_lag`` makes
    lists report versions that much lower (never below 1); ``expire_issued_after`` lets that many more requests
    through, then expires every OAuth token issued so far (once; it turns itself off).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float | None = 1.0
    expire_tokens: bool = False
    fail_next: list[int] = field(default_factory=list)
    seed: int | None = None
    calls: list[str] | None = None
    body_fault: str | None = None
    list_version_lag: int = 0
    expire_issued_after: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        _check_number("latency", self.latency, 0.0, MAX_LATENCY)
        _check_number("error_rate", self.error_rate, 0.0, 1.0)
        _check_number("rate_limit_rate", self.rate_limit_rate, 0.0, 1.0)
        if self.retry_after is not None:
            _check_number("retry_after", self.retry_after, 0.0, MAX_RETRY_AFTER, nullable=True)
        if self.error_rate + self.rate_limit_rate > 1.0:
            raise ValueError("error_rate + rate_limit_rate must not exceed 1")
        if not isinstance(self.expire_tokens, bool):
            raise ValueError("expire_tokens must be true or false")
        _check_fail_next(self.fail_next)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError("seed must be an integer or null")
        _check_calls(self.calls)
        if self.body_fault is not None and self.body_fault not in BODY_FAULTS:
            raise ValueError(f"body_fault must be null or one of: {', '.join(BODY_FAULTS)}")
        _check_count("list_version_lag", self.list_version_lag, nullable=False)
        if self.expire_issued_after is not None:
            _check_count("expire_issued_after", self.expire_issued_after, nullable=True)

    def copy(self) -> FaultConfig:
        return dataclasses.replace(
            self, fail_next=list(self.fail_next), calls=None if self.calls is None else list(self.calls)
        )

    def merged(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A validated copy with ``changes`` (JSON field → value) applied; ValueError on unknown fields."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        updated = self.copy()
        for name, value in changes.items():
            setattr(updated, name, list(value) if name in _LIST_FIELDS and isinstance(value, list) else value)
        updated.validate()
        return updated

    def assign(self, other: FaultConfig) -> None:
        """Copy every field of ``other`` into this object, in place (holders of this object see the change)."""
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(other, item.name))
        self.fail_next = list(other.fail_next)
        self.calls = None if other.calls is None else list(other.calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "error_rate": self.error_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "retry_after": self.retry_after,
            "expire_tokens": self.expire_tokens,
            "fail_next": list(self.fail_next),
            "seed": self.seed,
            "calls": None if self.calls is None else list(self.calls),
            "body_fault": self.body_fault,
            "list_version_lag": self.list_version_lag,
            "expire_issued_after": self.expire_issued_after,
        }

    @property
    def active(self) -> bool:
        """Whether any fault is switched on (``calls`` alone is not a fault: it only narrows the others)."""
        return bool(
            self.latency
            or self.error_rate
            or self.rate_limit_rate
            or self.expire_tokens
            or self.fail_next
            or self.body_fault
            or self.list_version_lag
            or self.expire_issued_after is not None
        )


_LIST_FIELDS = frozenset({"fail_next", "calls"})


def _check_number(name: str, value: object, low: float, high: float, *, nullable: bool = False) -> None:
    valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or not low <= value <= high:  # type: ignore[operator]
        raise ValueError(f"{name} must be {'null or ' if nullable else ''}a number between {low:g} and {high:g}")


def _check_count(name: str, value: object, *, nullable: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name} must be {'null or ' if nullable else ''}an integer between 0 and {MAX_COUNT}")


def _check_calls(calls: object) -> None:
    if calls is None:
        return
    valid = isinstance(calls, list) and calls and all(isinstance(call, str) and call in FAULT_CALLS for call in calls)
    if not valid:
        raise ValueError(f"calls must be null (every /v1 request) or a non-empty list of: {', '.join(FAULT_CALLS)}")


def _check_fail_next(statuses: object) -> None:
    message = f"fail_next must be a list of at most {MAX_FAIL_NEXT} HTTP statuses between 400 and 599"
    if not isinstance(statuses, list) or len(statuses) > MAX_FAIL_NEXT:
        raise ValueError(message)
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(message)


def format_seconds(seconds: float) -> str:
    """Seconds for a ``Retry-After`` header: ``1``, ``0.25`` (never exponent notation)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Fault:
    """An injected error answer."""

    status: int
    code: str
    message: str
    headers: dict[str, str]


def fault_for_status(status: int, retry_after: float | None) -> Fault:
    """The injected answer for ``status``: its usual error code, ``Retry-After`` on 429 (unless ``retry_after`` is
    None), ``WWW-Authenticate`` on 401."""
    code, text = _FAULT_CODES.get(status, ("injected_fault", f"HTTP {status}"))
    headers: dict[str, str] = {}
    if status == 429:
        if retry_after is not None:
            headers["Retry-After"] = format_seconds(retry_after)
    elif status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Fault(status, code, f"{text} (injected fault)", headers)


class FaultInjector:
    """Decides, per ``/v1`` request, whether to answer with a fault. Thread-safe."""

    def __init__(self, config: FaultConfig) -> None:
        config.validate()
        self.config = config
        self._lock = threading.Lock()
        self._random = random.Random(config.seed)

    def update(self, changes: Mapping[str, Any]) -> FaultConfig:
        """Merge ``changes`` (validated, ValueError otherwise) into ``config`` in place; reseed if ``seed`` is given."""
        with self._lock:
            self.config.assign(self.config.merged(changes))
            if "seed" in changes:
                self._random.seed(self.config.seed)
            return self.config

    def reset(self) -> FaultConfig:
        """Switch every fault off and drop the seed."""
        with self._lock:
            self.config.assign(FaultConfig())
            self._random.seed(None)
            return self.config

    def applies(self, call: str | None) -> bool:
        """Whether faults apply to a ``/v1`` request of call kind ``call`` (None: a request no route matched)."""
        calls = self.config.calls
        return calls is None or call in calls

    def take_expiry(self) -> bool:
        """Count one request down on ``expire_issued_after``; True when issued tokens must expire now (once)."""
        with self._lock:
            remaining = self.config.expire_issued_after
            if remaining is None:
                return False
            if remaining > 0:
                self.config.expire_issued_after = remaining - 1
                return False
            self.config.expire_issued_after = None
            return True

    def next_fault(self) -> Fault | None:
        """The fault for the request being handled now, or None for normal service."""
        config = self.config
        with self._lock:
            if config.fail_next:
                return fault_for_status(config.fail_next.pop(0), config.retry_after)
            if not (config.error_rate or config.rate_limit_rate):
                return None
            draw = self._random.random()
        if draw < config.error_rate:
            return fault_for_status(503, config.retry_after)
        if draw < config.error_rate + config.rate_limit_rate:
            return fault_for_status(429, config.retry_after)
        return None
