"""Condition reasons, the mapping from errors to them, and the VaultSecret status built from the outcome.

Owns the vocabulary users see in ``kubectl describe vaultsecret``: one reason per cause (Synced, Unauthorized,
Forbidden, SourceNotFound, BackendUnavailable, InvalidSpec, PolicyDenied, TargetConflict, TargetNotFound,
InvalidSourceData, TemplateError), a message that says what to do, and when a change is a transition worth an Event.
Beside Ready, the condition ``Insecure`` (reason InsecureHTTP) is present while the VaultSecret's connection uses plain
HTTP to a host that is not loopback (``insecureHTTP: true``), and absent otherwise. Pure: no I/O, no clock unless
given. The operator's sync module (and the version watcher, for the failures it sees) calls ``classify`` on an
error, ``desired_status`` on the outcome, then writes ``status_patch`` if it is not None and posts an Event only
when ``is_transition``. ``backing_off`` rephrases a transient failure for the VaultSecrets whose sync their
connection's breaker holds during an outage.

An error of a connection's OAuth token endpoint (``error.endpoint`` is ``scaivault.Endpoint.TOKEN``) is the
connection's problem, whatever its class: its message names the token endpoint and points at the connection's
``spec.auth.clientCredentials.tokenUrl`` (and client credentials), never at the VaultSecret's path or version.

No secret value can reach a message: ``classify`` embeds the text of ScaiVault client errors only (built to
carry names, statuses and server error codes, never data or tokens); pydantic errors are reduced to field
locations and error kinds (and the text of ``api.SpecError``, which names fields only); any other exception is
reported by its type name alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pydantic

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import SpecError
from scaivault_operator._logic.manifests import SourceDataError
from scaivault_operator._logic.templating import TemplateError

__all__ = [
    "AUTHENTICATED",
    "BACKEND_UNAVAILABLE",
    "FORBIDDEN",
    "INSECURE",
    "INSECURE_HTTP",
    "INVALID_SOURCE_DATA",
    "INVALID_SPEC",
    "MISSING_SCOPE",
    "POLICY_DENIED",
    "READY",
    "SOURCE_NOT_FOUND",
    "SYNCED",
    "TARGET_CONFLICT",
    "TARGET_NOT_FOUND",
    "TEMPLATE_ERROR",
    "TOO_MANY_SECRETS",
    "UNAUTHORIZED",
    "UNREACHABLE",
    "Failure",
    "backing_off",
    "classify",
    "clip",
    "desired_status",
    "find_condition",
    "insecure_message",
    "is_transition",
    "now_rfc3339",
    "ready_condition",
    "ready_of",
    "status_patch",
    "with_insecure",
]

#: The condition type that summarizes the sync.
READY: Final = "Ready"

#: The Secret holds the wanted version.
SYNCED: Final = "Synced"
#: 401: ScaiVault refused the token; or the OAuth token endpoint refused the client credentials (400, 401, 403).
UNAUTHORIZED: Final = "Unauthorized"
#: 403: the token lacks the scope, or a ScaiVault policy denies the path.
FORBIDDEN: Final = "Forbidden"
#: 404: no secret at the path, or no such version.
SOURCE_NOT_FOUND: Final = "SourceNotFound"
#: 429, 5xx, network errors, answers that cannot be parsed, unexpected errors: retried.
BACKEND_UNAVAILABLE: Final = "BackendUnavailable"
#: The spec or the connection is misconfigured: unknown connection, bad token Secret reference, a credentials
#: Secret without the label scaivault.scailabs.ai/credentials=true, a tokenUrl that is no token endpoint (it answers
#: 404, a redirect, 405...), invalid path...
INVALID_SPEC: Final = "InvalidSpec"
#: The connection's access rules do not let this namespace read this path.
POLICY_DENIED: Final = "PolicyDenied"
#: The target Secret exists and is not ours, and may not be taken over: creationPolicy Owner, no consent annotation
#: scaivault.scailabs.ai/adopt=true, another controller's ownerReference, or a service-account token; or, with
#: creationPolicy Merge, may not be merged into (a token or credentials Secret, immutable, another VaultSecret's).
TARGET_CONFLICT: Final = "TargetConflict"
#: creationPolicy Merge and the target Secret does not exist: Merge writes only into an existing Secret.
TARGET_NOT_FOUND: Final = "TargetNotFound"
#: The secret's data cannot become a Kubernetes Secret (missing key, invalid key name, too large).
INVALID_SOURCE_DATA: Final = "InvalidSourceData"
#: spec.dataFrom finds more secrets than spec.maxDiscovered allows (default 100): the Secret keeps its last data.
TOO_MANY_SECRETS: Final = "TooManySecrets"
#: A template of spec.template failed (an undefined name, a filter error, a type error, a value too large, too many
#: steps or too slow): the message names the template key and the name or kind of error, never a value. The Secret
#: keeps its last data.
TEMPLATE_ERROR: Final = "TemplateError"

#: A condition type beside Ready: present (status True) while the VaultSecret's connection sends credentials and
#: data over plain HTTP to a host that is not loopback, which only ``insecureHTTP: true`` allows.
INSECURE: Final = "Insecure"
#: The reason of Insecure, and of the Warning Event on such a connection.
INSECURE_HTTP: Final = "InsecureHTTP"

# Reasons of a connection's Ready condition (``_core/connstatus``).

#: whoami answered and the token has the scope reading needs (``secrets:read``).
AUTHENTICATED: Final = "Authenticated"
#: whoami answered but the token lacks ``secrets:read``, or ScaiVault refused (403) every listed prefix.
MISSING_SCOPE: Final = "MissingScope"
#: ScaiVault (or the token endpoint) does not answer, or answers 5xx/429 or nonsense: the connection's breaker is open.
UNREACHABLE: Final = "Unreachable"

#: Conditions messages are cut to this many characters (Kubernetes allows 32768; status should stay readable).
MAX_MESSAGE: Final = 4096
_MAX_LISTED_ERRORS = 5

#: pydantic error types whose message templates never include the input value (only schema facts such as the
#: pattern, the bound or the allowed literals). Other types are reported by their type name only.
_SAFE_PYDANTIC_MESSAGES = frozenset(
    {
        "missing",
        "extra_forbidden",
        "string_type",
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "too_short",
        "too_long",
        "literal_error",
        "int_type",
        "int_parsing",
        "int_from_float",
        "bool_type",
        "bool_parsing",
        "float_type",
        "float_parsing",
        "dict_type",
        "list_type",
        "model_type",
        "model_attributes_type",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    }
)


@dataclass(frozen=True)
class Failure:
    """A classified error: the condition reason, a message fit for status, and whether to retry soon."""

    reason: str
    message: str
    transient: bool
    retry_after: float | None = None
    #: The ScaiVault client error's own text (names, statuses, codes: never a value), for messages that rephrase the
    #: failure (``backing_off``); None for other errors. Not compared.
    detail: str | None = field(default=None, compare=False)


def classify(error: BaseException) -> Failure:
    """Map an error raised while syncing onto a reason and an actionable message (see the module docstring)."""
    if isinstance(error, scaivault.ScaiVaultError):
        return _classify_scaivault(error)
    if isinstance(error, TemplateError):
        return Failure(TEMPLATE_ERROR, clip(error.message), transient=False)
    if isinstance(error, SourceDataError):
        return Failure(error.reason, clip(error.message), transient=False)
    if isinstance(error, pydantic.ValidationError):
        return Failure(INVALID_SPEC, clip(_validation_message(error)), transient=False)
    return Failure(
        BACKEND_UNAVAILABLE,
        f"unexpected error ({type(error).__name__}) while syncing; retrying — the operator's log has details",
        transient=True,
    )


def _classify_scaivault(error: scaivault.ScaiVaultError) -> Failure:
    failure = _classify_scaivault_error(error)
    return Failure(failure.reason, failure.message, failure.transient, failure.retry_after, detail=str(error))


#: How a ScaiVault client error becomes a Failure, per endpoint: the first row whose class the error is an instance
#: of gives the reason, the message (``{text}``: the error; ``{wait}``: "in Ns" or "later", from ``retry_after``)
#: and whether it is retried. The last row of each table (``ScaiVaultError``) catches the rest.
_Row = tuple[type[scaivault.ScaiVaultError], str, str, bool]
_SCAIVAULT_ERRORS: tuple[_Row, ...] = (
    (scaivault.UnauthenticatedError, UNAUTHORIZED, "ScaiVault refused the token ({text}): check the token Secret "
     "named in the connection's spec.auth, or rotate the token (client credentials: check the client id and "
     "secret)", False),
    (scaivault.ForbiddenError, FORBIDDEN, "ScaiVault denied access ({text}): the connection's token lacks the "
     "secrets:read scope or a ScaiVault policy denies this path; grant it in ScaiVault or use another connection",
     False),
    (scaivault.NotFoundError, SOURCE_NOT_FOUND, "ScaiVault has no such secret ({text}): check spec.path / "
     "spec.version", False),
    (scaivault.RateLimitedError, BACKEND_UNAVAILABLE, "ScaiVault is rate limiting the operator ({text}); retrying "
     "{wait}", True),
    (scaivault.TransientError, BACKEND_UNAVAILABLE, "ScaiVault is unavailable ({text}); retrying — the Secret keeps "
     "its last synced data", True),
    (scaivault.BadRequestError, INVALID_SPEC, "ScaiVault rejected the request as invalid ({text}): check spec.path / "
     "spec.version", False),
    (scaivault.InvalidPathError, INVALID_SPEC, "invalid ScaiVault path: {text}; fix spec.path (or the connection's "
     "pathPrefixes)", False),
    (scaivault.ConfigurationError, INVALID_SPEC, "the connection is misconfigured: {text}; fix the connection (its "
     "token Secret, CA bundle, URL)", False),
    (scaivault.ResponseError, BACKEND_UNAVAILABLE, "ScaiVault sent an answer the operator cannot understand ({text}); "
     "retrying", True),
    (scaivault.ScaiVaultError, BACKEND_UNAVAILABLE, "ScaiVault request failed ({text}); retrying", True),
)  # fmt: skip

#: Where a connection's OAuth token endpoint is configured: the field its failures send the user to.
_TOKEN_URL_FIELD: Final = "spec.auth.clientCredentials.tokenUrl"

#: Errors of the connection's OAuth token endpoint (``Endpoint.TOKEN``): the connection's problem, never the
#: VaultSecret's path. Refused credentials (400/401/403) are Unauthorized; any other refusal (a 404, a redirect, 405,
#: 409...) means the token URL is wrong (InvalidSpec); 429, 5xx, network errors and answers without a usable token
#: are retried (BackendUnavailable).
_TOKEN_ENDPOINT_ERRORS: tuple[_Row, ...] = (
    (scaivault.UnauthenticatedError, UNAUTHORIZED, "the OAuth token endpoint refused the connection's client "
     "credentials ({text}): check the client id and secret in the Secret named by the connection's "
     "spec.auth.clientCredentials.secretRef, and its " + _TOKEN_URL_FIELD, False),
    (scaivault.RateLimitedError, BACKEND_UNAVAILABLE, "the OAuth token endpoint is rate limiting the operator "
     "({text}); retrying {wait}", True),
    (scaivault.TransientError, BACKEND_UNAVAILABLE, "the OAuth token endpoint is unavailable ({text}); retrying — the "
     "Secret keeps its last synced data", True),
    # 404, 3xx, 405, 409, other 4xx: not a token endpoint at that URL
    (scaivault.APIError, INVALID_SPEC, "the OAuth token endpoint rejected the token request ({text}): check the "
     "connection's " + _TOKEN_URL_FIELD + " — it must be the URL of the token endpoint itself", False),
    (scaivault.ResponseError, BACKEND_UNAVAILABLE, "the OAuth token endpoint sent an answer the operator cannot "
     "understand ({text}); retrying — check the connection's " + _TOKEN_URL_FIELD + " if this persists", True),
    (scaivault.ScaiVaultError, BACKEND_UNAVAILABLE, "the OAuth token request failed ({text}); retrying — check the "
     "connection's " + _TOKEN_URL_FIELD, True),
)  # fmt: skip


def _classify_scaivault_error(error: scaivault.ScaiVaultError) -> Failure:
    table = _TOKEN_ENDPOINT_ERRORS if error.endpoint is scaivault.Endpoint.TOKEN else _SCAIVAULT_ERRORS
    _, reason, template, transient = next(row for row in table if isinstance(error, row[0]))
    retry_after = error.retry_after if isinstance(error, scaivault.RateLimitedError) else None
    wait = f"in {retry_after:g}s" if retry_after is not None else "later"
    message = template.format(text=str(error), wait=wait)
    return Failure(reason, clip(message), transient=transient, retry_after=retry_after)


def backing_off(failure: Failure, *, connection: str, retry_at: str | None) -> Failure:
    """``failure`` — a transient one that opened the breaker of ``connection`` (``Kind [namespace/]name``) — as the
    connection's VaultSecrets report it while their sync is held: what failed, that nothing is sent before
    ``retry_at`` (RFC 3339), and that the Secret stays as it is."""
    cause = f" ({failure.detail})" if failure.detail else ""
    lead, found, _ = failure.message.partition(cause) if cause else ("", "", "")
    when = f"before {retry_at}, retrying when" if retry_at else "until"
    return Failure(
        failure.reason,
        clip(
            f"{lead if found and lead else 'ScaiVault failed'}{cause}; {connection} is backing off: no request "
            f"{when} its version watcher checks again (see the connection's status.breaker) — the Secret keeps its "
            "last synced data"
        ),
        transient=True,
        retry_after=failure.retry_after,
        detail=failure.detail,
    )


def _validation_message(error: pydantic.ValidationError) -> str:
    """Field locations and error kinds of a ValidationError; never the input values."""
    details = error.errors(include_input=False, include_url=False, include_context=True)
    parts: list[str] = []
    for detail in details[:_MAX_LISTED_ERRORS]:
        location = ".".join(str(item) for item in detail["loc"]) or "(root)"
        kind = detail["type"]
        cause = (detail.get("ctx") or {}).get("error")
        if kind == "value_error" and isinstance(cause, SpecError) and not detail["loc"]:
            parts.append(str(cause))  # a model validator's refusal: names fields, carries no input
        elif kind == "value_error" and isinstance(cause, (scaivault.ScaiVaultError, SpecError)):
            parts.append(f"{location}: {cause}")  # our own path validation: its text carries no input
        elif kind in _SAFE_PYDANTIC_MESSAGES:
            parts.append(f"{location}: {detail['msg']}")
        else:
            parts.append(f"{location}: {kind}")
    if len(details) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(details) - _MAX_LISTED_ERRORS} more")
    return f"{error.title} is invalid: {'; '.join(parts)}; fix the resource's spec"


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters (``MAX_MESSAGE``: status stays readable)."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


# -- status --------------------------------------------------------------------------------------------------


def ready_condition(
    *,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
    previous: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The Ready condition; ``lastTransitionTime`` stays the previous one while the status does not change.

    ``observedGeneration`` is omitted when ``generation`` is None (a null would be pruned by the API server and
    make every comparison differ).
    """
    status = "True" if ok else "False"
    transition = now
    old = _find_condition(previous, READY)
    if old is not None and old.get("status") == status and isinstance(old.get("lastTransitionTime"), str):
        transition = old["lastTransitionTime"]
    condition: dict[str, Any] = {
        "type": READY,
        "status": status,
        "reason": reason,
        "message": clip(message),
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


#: What travels unencrypted through each URL field of a connection.
_EXPOSED = {
    "url": "the ScaiVault token and the secret data",
    "auth.clientCredentials.tokenUrl": "the OAuth client id and secret",
}


def insecure_message(connection: str, fields: Sequence[str]) -> str:
    """Why ``connection`` (``Kind [namespace/]name``) is insecure: its ``fields`` (spec paths) use plain HTTP.

    Names fields only, never the URLs (a URL may carry user:password@) nor anything read through them.
    """
    exposed = "; ".join(f"spec.{field} sends {_EXPOSED.get(field, 'credentials')} unencrypted" for field in fields)
    return clip(
        f"{connection} allows plain http:// to a host that is not loopback (insecureHTTP: true): {exposed}; "
        "switch to https:// and remove insecureHTTP"
    )


def with_insecure(
    status: Mapping[str, Any], *, message: str | None, generation: int | None, now: str
) -> dict[str, Any]:
    """``status`` with its Insecure condition set to ``message`` (status True, reason InsecureHTTP), or removed when
    ``message`` is None; every other condition is kept, in its place. ``lastTransitionTime`` stays while an Insecure
    condition stays True; ``observedGeneration`` is omitted when ``generation`` is None, as on Ready."""
    conditions = [dict(c) for c in _conditions(status) if c.get("type") != INSECURE]
    if message is not None:
        old = _find_condition(_conditions(status), INSECURE)
        transition = now
        if old is not None and old.get("status") == "True" and isinstance(old.get("lastTransitionTime"), str):
            transition = old["lastTransitionTime"]
        insecure: dict[str, Any] = {
            "type": INSECURE,
            "status": "True",
            "reason": INSECURE_HTTP,
            "message": clip(message),
            "lastTransitionTime": transition,
        }
        if generation is not None:
            insecure["observedGeneration"] = generation
        index = next((i for i, c in enumerate(_conditions(status)) if c.get("type") == INSECURE), None)
        conditions.insert(len(conditions) if index is None else index, insecure)
    return {**status, "conditions": conditions}


def desired_status(
    *,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    ok: bool,
    reason: str,
    message: str,
    now: str,
    synced_version: int | None,
    secret_name: str | None,
    synced_at: str | None,
    insecure: str | None = None,
    sources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole ``status`` after a sync attempt.

    ``sources`` (a VaultSecret with several sources, ``composite.status_sources``) stands for ``syncedVersion``:
    ``status.sources`` and ``sourceCount``; one of the two kinds replaces the other.

    ``syncedVersion``, ``secretName`` and ``syncedAt`` keep their previous values unless given: after a failure
    the old Secret stays, and a sync that wrote nothing passes ``synced_at=None`` to keep the time of the last
    write. ``insecure`` is the message of the Insecure condition, None for none (``with_insecure``); other
    conditions are kept. Fields without a value are omitted, not null.
    """
    prev = previous or {}
    prev_conditions = _conditions(prev)
    ready = ready_condition(
        ok=ok, reason=reason, message=message, generation=generation, now=now, previous=prev_conditions
    )
    conditions: list[dict[str, Any]] = []
    placed = False
    for condition in prev_conditions:
        if condition.get("type") == READY:
            if not placed:
                conditions.append(ready)
                placed = True
        else:
            conditions.append(dict(condition))
    if not placed:
        conditions.insert(0, ready)

    status: dict[str, Any] = {"conditions": conditions}
    observed = generation if generation is not None else prev.get("observedGeneration")
    if sources is None and synced_version is None:
        sources = prev.get("sources") if isinstance(prev.get("sources"), list) else None
    if sources is not None:
        synced_version = None
    elif synced_version is None:
        synced_version = prev.get("syncedVersion")
    for key, value in (
        ("observedGeneration", observed),
        ("syncedVersion", synced_version),
        ("sources", sources),
        ("sourceCount", len(sources) if sources is not None else None),
        ("syncedAt", synced_at if synced_at is not None else prev.get("syncedAt")),
        ("secretName", secret_name if secret_name is not None else prev.get("secretName")),
        ("rollout", prev.get("rollout")),  # the last restart of workloads (``_core/rollout`` writes it)
    ):
        if value is not None:
            status[key] = value
    return with_insecure(status, message=insecure, generation=generation, now=now)


#: The status fields this module manages; others (e.g. Kopf's ``status.kopf``) are never touched.
_OWN_FIELDS = ("conditions", "observedGeneration", "syncedVersion", "sources", "sourceCount", "syncedAt", "secretName",
               "rollout")  # fmt: skip


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch for ``status`` that turns ``current`` into ``desired``, or None when nothing changes.

    A condition whose status is unchanged keeps its current ``lastTransitionTime`` whatever ``desired`` says, so
    timestamps never cause a write by themselves. Only the fields this module manages are compared; one that
    ``desired`` lacks is removed (``null``). Wrap the result as ``{"status": patch}``.
    """
    have = current or {}
    patch: dict[str, Any] = {}
    for key in _OWN_FIELDS:
        if key == "conditions":
            continue
        if key in desired:
            if have.get(key) != desired[key]:
                patch[key] = desired[key]
        elif have.get(key) is not None:
            patch[key] = None

    have_conditions = _conditions(have)
    want_conditions = [_keep_transition_time(dict(c), have_conditions) for c in _conditions(desired)]
    if [dict(c) for c in have_conditions] != want_conditions:
        patch["conditions"] = want_conditions
    return patch or None


def is_transition(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when Ready's status or reason changes between two status dicts: the moment to post an Event."""
    old = _find_condition(_conditions(current or {}), READY)
    new = _find_condition(_conditions(desired), READY)
    if new is None:
        return False
    if old is None:
        return True
    return old.get("status") != new.get("status") or old.get("reason") != new.get("reason")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def now_rfc3339(clock: Callable[[], datetime] = _utcnow) -> str:
    """The current time as RFC 3339 in UTC with second precision: ``2026-04-23T14:00:00Z``.

    A naive datetime from ``clock`` is taken to be UTC.
    """
    moment = clock()
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(status: Any, kind: str) -> Mapping[str, Any] | None:
    """The condition of type ``kind`` in an object's ``status`` as read (an odd shape holds no condition), or None."""
    return _find_condition(_conditions(status), kind)


def ready_of(status: Any) -> Mapping[str, Any]:
    """The Ready condition in ``status`` as read, or ``{}`` (the one place that looks it up)."""
    return find_condition(status, READY) or {}


def _conditions(status: Any) -> list[Mapping[str, Any]]:
    value = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(value, list):
        return []
    return [c for c in value if isinstance(c, Mapping)]


def _find_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == kind:
            return condition
    return None


def _keep_transition_time(condition: dict[str, Any], current: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    old = _find_condition(current, condition.get("type", ""))
    if old is not None and old.get("status") == condition.get("status") and "lastTransitionTime" in old:
        condition["lastTransitionTime"] = old["lastTransitionTime"]
    return condition
