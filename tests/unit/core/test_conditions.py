"""Condition reasons, error classification (no values in messages), Ready condition and status patches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._cogs import scaivault as sv
from scaivault_operator._cogs.api import Condition, ConnectionSpec, VaultSecretSpec
from scaivault_operator._logic import conditions as c
from scaivault_operator._logic.conditions import (
    Failure,
    classify,
    desired_status,
    is_transition,
    now_rfc3339,
    ready_condition,
    status_patch,
)
from scaivault_operator._logic.manifests import SourceDataError, secret_data

CANARY = "CANARY-VALUE-51c2"
T0 = "2026-04-23T14:00:00Z"
T1 = "2026-04-23T14:05:00Z"
T2 = "2026-04-23T14:10:00Z"


def test_reason_constants() -> None:
    assert (c.SYNCED, c.UNAUTHORIZED, c.FORBIDDEN, c.SOURCE_NOT_FOUND) == (
        "Synced",
        "Unauthorized",
        "Forbidden",
        "SourceNotFound",
    )
    assert (c.BACKEND_UNAVAILABLE, c.INVALID_SPEC, c.POLICY_DENIED, c.TARGET_CONFLICT, c.INVALID_SOURCE_DATA) == (
        "BackendUnavailable",
        "InvalidSpec",
        "PolicyDenied",
        "TargetConflict",
        "InvalidSourceData",
    )
    assert c.READY == "Ready"


# -- classify ------------------------------------------------------------------------------------------------

WHAT = "GET secret 'apps/web/db': HTTP"


@pytest.mark.parametrize(
    ("error", "reason", "transient", "hints"),
    [
        (
            sv.UnauthenticatedError(f"{WHAT} 401 authentication_required", status_code=401),
            "Unauthorized",
            False,
            ["token Secret", "rotate"],
        ),
        (
            sv.ForbiddenError(f"{WHAT} 403 access_denied", status_code=403),
            "Forbidden",
            False,
            ["secrets:read", "policy"],
        ),
        (sv.NotFoundError(f"{WHAT} 404", status_code=404), "SourceNotFound", False, ["spec.path / spec.version"]),
        (sv.UnavailableError(f"{WHAT} 503", status_code=503), "BackendUnavailable", True, ["retrying"]),
        (sv.UnavailableError("GET secret 'apps/web/db': timed out"), "BackendUnavailable", True, ["retrying"]),
        (sv.TransientError(f"{WHAT} 502", status_code=502), "BackendUnavailable", True, ["retrying"]),
        (sv.ResponseError("GET secret 'apps/web/db': answer is not JSON"), "BackendUnavailable", True, ["retrying"]),
        (sv.BadRequestError(f"{WHAT} 400 bad_request", status_code=400), "InvalidSpec", False, ["spec.path"]),
        (sv.InvalidPathError("secret path has an empty segment"), "InvalidSpec", False, ["spec.path"]),
        (sv.ConfigurationError("token file /var/run/t is unreadable"), "InvalidSpec", False, ["connection"]),
        (sv.APIError("GET secret 'a': HTTP 418"), "BackendUnavailable", True, ["retrying"]),
        (sv.ScaiVaultError("something"), "BackendUnavailable", True, ["retrying"]),
    ],
)
def test_classify_scaivault_errors(error: sv.ScaiVaultError, reason: str, transient: bool, hints: list[str]) -> None:
    failure = classify(error)
    assert failure.reason == reason
    assert failure.transient is transient
    assert failure.retry_after is None
    assert str(error) in failure.message
    for hint in hints:
        assert hint in failure.message


TOKEN_WHAT = "POST token endpoint for client 'ci-client': HTTP"
TOKEN = sv.Endpoint.TOKEN


@pytest.mark.parametrize(
    ("error", "reason", "transient", "hints"),
    [
        *[
            (
                sv.UnauthenticatedError(f"{TOKEN_WHAT} {status} invalid_client", status_code=status, endpoint=TOKEN),
                "Unauthorized",
                False,
                ["token endpoint", "client id and secret", "spec.auth.clientCredentials.tokenUrl"],
            )
            for status in (400, 401, 403)
        ],
        (
            sv.NotFoundError(f"{TOKEN_WHAT} 404", status_code=404, endpoint=TOKEN),
            "InvalidSpec",
            False,
            ["token endpoint", "spec.auth.clientCredentials.tokenUrl"],
        ),
        *[
            (
                sv.BadRequestError(f"{TOKEN_WHAT} {status}", status_code=status, endpoint=TOKEN),
                "InvalidSpec",
                False,
                ["token endpoint", "spec.auth.clientCredentials.tokenUrl"],
            )
            for status in (301, 405, 409)
        ],
        (
            sv.UnavailableError(f"{TOKEN_WHAT} 503", status_code=503, endpoint=TOKEN),
            "BackendUnavailable",
            True,
            ["token endpoint", "retrying"],
        ),
        (
            sv.UnavailableError("POST token endpoint for client 'ci-client': timed out", endpoint=TOKEN),
            "BackendUnavailable",
            True,
            ["token endpoint", "retrying"],
        ),
        (
            sv.ResponseError("POST token endpoint for client 'ci-client': answer has no access_token", endpoint=TOKEN),
            "BackendUnavailable",
            True,
            ["token endpoint", "cannot understand", "retrying", "spec.auth.clientCredentials.tokenUrl"],
        ),
    ],
)
def test_classify_token_endpoint_errors(
    error: sv.ScaiVaultError, reason: str, transient: bool, hints: list[str]
) -> None:
    """The token endpoint's errors are the connection's: never the VaultSecret's path or version."""
    failure = classify(error)
    assert failure.reason == reason
    assert failure.transient is transient
    assert str(error) in failure.message
    assert failure.detail == str(error)
    for hint in hints:
        assert hint in failure.message, failure.message
    assert "spec.path" not in failure.message
    assert "spec.version" not in failure.message
    assert "ScaiVault has no such secret" not in failure.message


def test_classify_token_endpoint_rate_limit_carries_retry_after() -> None:
    error = sv.RateLimitedError(f"{TOKEN_WHAT} 429; retry after 3s", retry_after=3.0, endpoint=TOKEN)
    failure = classify(error)
    assert (failure.reason, failure.transient, failure.retry_after) == ("BackendUnavailable", True, 3.0)
    assert failure.message.startswith("the OAuth token endpoint is rate limiting the operator")
    assert failure.message.endswith("retrying in 3s")


def test_errors_default_to_scaivault_endpoint() -> None:
    assert sv.NotFoundError(f"{WHAT} 404", status_code=404).endpoint is sv.Endpoint.SCAIVAULT
    assert sv.ResponseError("x").endpoint is sv.Endpoint.SCAIVAULT
    assert sv.InvalidPathError("x").endpoint is sv.Endpoint.SCAIVAULT


def test_classify_rate_limited_carries_retry_after() -> None:
    failure = classify(sv.RateLimitedError(f"{WHAT} 429; retry after 7s", retry_after=7.0))
    assert failure == Failure(
        "BackendUnavailable",
        f"ScaiVault is rate limiting the operator ({WHAT} 429; retry after 7s); retrying in 7s",
        transient=True,
        retry_after=7.0,
    )
    assert classify(sv.RateLimitedError(f"{WHAT} 429")).retry_after is None
    assert "retrying later" in classify(sv.RateLimitedError(f"{WHAT} 429")).message


def test_classify_source_data_error() -> None:
    with pytest.raises(SourceDataError) as info:
        secret_data({"a": CANARY}, [pydantic_key("missing")])
    failure = classify(info.value)
    assert failure.reason == "InvalidSourceData"
    assert not failure.transient
    assert failure.message == info.value.message
    assert CANARY not in failure.message


def pydantic_key(name: str) -> Any:
    from scaivault_operator._cogs.api import KeyMapping

    return KeyMapping.model_validate({"from": name})


def validation_error(model: type[pydantic.BaseModel], raw: Any) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate(raw)
    return info.value


def test_classify_validation_error_lists_locations_not_values() -> None:
    error = validation_error(
        VaultSecretSpec,
        {
            "path": f"a/../{CANARY}",
            "version": CANARY,
            "keys": [{"from": "x", "to": f"bad {CANARY}"}],
            "target": {"creationPolicy": CANARY},
        },
    )
    failure = classify(error)
    assert failure.reason == "InvalidSpec"
    assert not failure.transient
    assert CANARY not in failure.message
    assert failure.message.startswith("VaultSecretSpec is invalid: ")
    assert "path: secret path has a '..' segment" in failure.message
    assert "version: Input should be a valid integer" in failure.message
    assert "keys.0.to: String should match pattern" in failure.message
    assert "target.creationPolicy: Input should be 'Owner', 'Adopt' or 'Merge'" in failure.message


def test_classify_validation_error_of_connection() -> None:
    error = validation_error(ConnectionSpec, {"url": CANARY, "auth": {}, "pollInterval": CANARY, "extra": CANARY})
    failure = classify(error)
    assert failure.reason == "InvalidSpec"
    assert "ConnectionSpec is invalid" in failure.message
    assert "extra: Extra inputs are not permitted" in failure.message
    assert CANARY not in failure.message


class _Echo(pydantic.BaseModel):
    """A model whose own validators put the input into their messages: they must not leak."""

    kind: Literal["a", "b"] = "a"
    value: str = ""
    tagged: dict[str, Any] | None = None

    @pydantic.field_validator("value")
    @classmethod
    def _echo(cls, v: str) -> str:
        if v:
            raise ValueError(f"bad value {v}")
        return v


class _A(pydantic.BaseModel):
    t: Literal["a"]


class _B(pydantic.BaseModel):
    t: Literal["b"]


class _Tagged(pydantic.BaseModel):
    x: _A | _B = pydantic.Field(discriminator="t")


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (_Echo, {"value": CANARY}),
        (_Tagged, {"x": {"t": CANARY}}),
    ],
)
def test_validation_messages_that_echo_input_are_reduced_to_kinds(model: type[pydantic.BaseModel], raw: Any) -> None:
    failure = classify(validation_error(model, raw))
    assert CANARY not in failure.message
    assert failure.reason == "InvalidSpec"


def test_validation_error_list_is_clipped() -> None:
    class Many(pydantic.BaseModel):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    failure = classify(validation_error(Many, {}))
    assert "and 2 more" in failure.message
    assert failure.message.count("Field required") == 5


@pytest.mark.parametrize(
    "error",
    [
        KeyError(CANARY),
        ValueError(CANARY),
        RuntimeError(f"token={CANARY}"),
        OSError(2, CANARY),
        TypeError(CANARY),
        json.JSONDecodeError(CANARY, CANARY, 0),
    ],
)
def test_other_errors_report_type_name_only(error: BaseException) -> None:
    failure = classify(error)
    assert failure.reason == "BackendUnavailable"
    assert failure.transient
    assert type(error).__name__ in failure.message
    assert CANARY not in failure.message


def test_error_whose_str_raises_is_still_classified() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise AssertionError("must not be called")

    assert "Nasty" in classify(Nasty()).message


def test_long_messages_are_clipped() -> None:
    failure = classify(sv.NotFoundError("x" * 10_000))
    assert len(failure.message) == c.MAX_MESSAGE
    assert failure.message.endswith("…")


@given(st.sampled_from([KeyError, ValueError, RuntimeError, Exception, ArithmeticError]), st.text())
def test_canary_never_in_failure_of_unknown_errors(kind: type[Exception], noise: str) -> None:
    failure = classify(kind(noise + CANARY + noise))
    assert CANARY not in failure.message


# -- ready_condition -----------------------------------------------------------------------------------------


def test_ready_condition_fields() -> None:
    cond = ready_condition(ok=True, reason="Synced", message="version 3", generation=2, now=T0, previous=None)
    assert cond == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "version 3",
        "observedGeneration": 2,
        "lastTransitionTime": T0,
    }
    failed = ready_condition(ok=False, reason="Forbidden", message="m", generation=None, now=T0, previous=[])
    assert failed["status"] == "False"
    assert "observedGeneration" not in failed


def test_last_transition_time_kept_while_status_unchanged() -> None:
    first = ready_condition(ok=False, reason="Forbidden", message="a", generation=1, now=T0, previous=None)
    same_status = ready_condition(
        ok=False, reason="SourceNotFound", message="b", generation=2, now=T1, previous=[first]
    )
    assert same_status["lastTransitionTime"] == T0
    flipped = ready_condition(ok=True, reason="Synced", message="c", generation=2, now=T2, previous=[same_status])
    assert flipped["lastTransitionTime"] == T2


def test_last_transition_time_looks_only_at_ready() -> None:
    other = {"type": "Other", "status": "True", "lastTransitionTime": T0}
    cond = ready_condition(ok=True, reason="Synced", message="", generation=1, now=T1, previous=[other])
    assert cond["lastTransitionTime"] == T1


def test_ready_message_is_clipped() -> None:
    cond = ready_condition(ok=False, reason="X", message="m" * 50_000, generation=1, now=T0, previous=None)
    assert len(cond["message"]) == c.MAX_MESSAGE


def test_ready_condition_validates_as_api_condition() -> None:
    from scaivault_operator._cogs.api import Condition

    cond = ready_condition(ok=True, reason="Synced", message="ok", generation=1, now=T0, previous=None)
    assert Condition.model_validate(cond).model_dump(exclude_none=True) == cond


# -- desired_status / status_patch / is_transition -------------------------------------------------------------


def synced(previous: dict[str, Any] | None, *, now: str, version: int = 3, wrote: bool = True) -> dict[str, Any]:
    return desired_status(
        previous=previous,
        generation=1,
        ok=True,
        reason="Synced",
        message=f"version {version} is in Secret web-db",
        now=now,
        synced_version=version,
        secret_name="web-db",
        synced_at=now if wrote else None,
    )


def failed(previous: dict[str, Any] | None, *, now: str, reason: str = "Forbidden") -> dict[str, Any]:
    return desired_status(
        previous=previous,
        generation=1,
        ok=False,
        reason=reason,
        message="denied",
        now=now,
        synced_version=None,
        secret_name=None,
        synced_at=None,
    )


def test_first_sync_status() -> None:
    status = synced(None, now=T0)
    assert status == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "version 3 is in Secret web-db",
                "lastTransitionTime": T0,
                "observedGeneration": 1,
            }
        ],
        "observedGeneration": 1,
        "syncedVersion": 3,
        "syncedAt": T0,
        "secretName": "web-db",
    }
    assert status_patch(None, status) == status
    assert is_transition(None, status)


def test_unchanged_sync_produces_no_patch_and_no_event() -> None:
    first = synced(None, now=T0)
    second = synced(first, now=T1, wrote=False)
    assert status_patch(first, second) is None
    assert not is_transition(first, second)


def test_failure_keeps_previous_synced_fields() -> None:
    first = synced(None, now=T0)
    fail = failed(first, now=T1)
    assert fail["syncedVersion"] == 3
    assert fail["syncedAt"] == T0
    assert fail["secretName"] == "web-db"
    assert fail["conditions"][0]["lastTransitionTime"] == T1
    patch = status_patch(first, fail)
    assert patch == {"conditions": fail["conditions"]}
    assert is_transition(first, fail)


def test_failure_without_history_has_no_synced_fields() -> None:
    status = failed(None, now=T0)
    assert set(status) == {"conditions", "observedGeneration"}


def test_repeated_failure_is_quiet_reason_change_is_an_event() -> None:
    one = failed(None, now=T0)
    again = failed(one, now=T1)
    assert status_patch(one, again) is None
    assert not is_transition(one, again)
    other = failed(again, now=T2, reason="BackendUnavailable")
    assert is_transition(again, other)
    patch = status_patch(again, other)
    assert patch is not None
    assert patch["conditions"][0]["reason"] == "BackendUnavailable"
    assert patch["conditions"][0]["lastTransitionTime"] == T0  # status stayed False


def test_new_version_patches_version_and_time() -> None:
    first = synced(None, now=T0)
    second = synced(first, now=T1, version=4)
    patch = status_patch(first, second)
    assert patch is not None
    assert patch["syncedVersion"] == 4
    assert patch["syncedAt"] == T1
    assert patch["conditions"][0]["lastTransitionTime"] == T0
    assert not is_transition(first, second)


def test_status_patch_ignores_transition_time_churn() -> None:
    first = synced(None, now=T0)
    recomputed = synced(None, now=T0)
    recomputed["conditions"][0]["lastTransitionTime"] = T2  # computed without the previous status
    assert status_patch(first, recomputed) is None


def test_status_patch_leaves_foreign_fields_alone_and_removes_our_stale_ones() -> None:
    current = {**synced(None, now=T0), "kopf": {"progress": {}}}
    want = dict(synced(None, now=T0))
    del want["secretName"]
    assert status_patch(current, want) == {"secretName": None}


def test_generation_change_is_patched() -> None:
    first = synced(None, now=T0)
    second = desired_status(
        previous=first,
        generation=2,
        ok=True,
        reason="Synced",
        message=first["conditions"][0]["message"],
        now=T1,
        synced_version=None,
        secret_name=None,
        synced_at=None,
    )
    patch = status_patch(first, second)
    assert patch is not None
    assert patch["observedGeneration"] == 2
    assert patch["conditions"][0]["observedGeneration"] == 2
    assert patch["conditions"][0]["lastTransitionTime"] == T0


def test_other_conditions_are_kept_in_place() -> None:
    previous = {
        "conditions": [
            {"type": "Other", "status": "True", "reason": "X", "lastTransitionTime": T0},
            {"type": "Ready", "status": "True", "reason": "Synced", "message": "", "lastTransitionTime": T0},
        ]
    }
    status = failed(previous, now=T1)
    assert [cond["type"] for cond in status["conditions"]] == ["Other", "Ready"]
    assert status["conditions"][0] == previous["conditions"][0]


def test_is_transition_without_ready() -> None:
    assert not is_transition(None, {})
    assert is_transition({"conditions": [{"type": "Other", "status": "True"}]}, synced(None, now=T0))


# -- the Insecure condition ----------------------------------------------------------------------------------------

INSECURE_MESSAGE = "ClusterVaultConnection default allows plain http:// ..."


def synced_insecure(previous: dict[str, Any] | None, *, now: str, message: str | None) -> dict[str, Any]:
    return desired_status(previous=previous, generation=1, ok=True, reason="Synced", message="v3", now=now,
                          synced_version=3, secret_name="web-db", synced_at=None, insecure=message)  # fmt: skip


def test_insecure_http_constants() -> None:
    assert (c.INSECURE, c.INSECURE_HTTP) == ("Insecure", "InsecureHTTP")


def test_insecure_condition_beside_ready() -> None:
    status = synced_insecure(None, now=T0, message=INSECURE_MESSAGE)
    assert status["conditions"][1] == {"type": "Insecure", "status": "True", "reason": "InsecureHTTP",
                                       "message": INSECURE_MESSAGE, "lastTransitionTime": T0,
                                       "observedGeneration": 1}  # fmt: skip
    assert [cond["type"] for cond in status["conditions"]] == ["Ready", "Insecure"]
    pydantic.TypeAdapter(list[Condition]).validate_python(status["conditions"])  # metav1.Condition's fields


def test_insecure_condition_costs_no_write_while_unchanged_and_keeps_its_time() -> None:
    first = synced_insecure(None, now=T0, message=INSECURE_MESSAGE)
    again = synced_insecure(first, now=T1, message=INSECURE_MESSAGE)
    assert status_patch(first, again) is None
    assert again["conditions"][1]["lastTransitionTime"] == T0
    # Ready changes, Insecure stays: it keeps its place and time; no Event is due to it.
    failing = desired_status(previous=again, generation=1, ok=False, reason="Forbidden", message="denied",
                             now=T2, synced_version=None, secret_name=None, synced_at=None,
                             insecure=INSECURE_MESSAGE)  # fmt: skip
    assert failing["conditions"][1] == first["conditions"][1]
    assert not is_transition(synced_insecure(first, now=T1, message=None), again)


def test_insecure_condition_goes_when_the_connection_is_https_again() -> None:
    flagged = synced_insecure(None, now=T0, message=INSECURE_MESSAGE)
    clean = synced_insecure(flagged, now=T1, message=None)
    assert [cond["type"] for cond in clean["conditions"]] == ["Ready"]
    assert clean["conditions"][0] == flagged["conditions"][0]
    assert status_patch(flagged, clean) == {"conditions": clean["conditions"]}
    reflagged = synced_insecure(clean, now=T2, message=INSECURE_MESSAGE)
    assert reflagged["conditions"][1]["lastTransitionTime"] == T2
    assert c.with_insecure(flagged, message=INSECURE_MESSAGE + "!", generation=1, now=T2)["conditions"][1][
        "lastTransitionTime"] == T0  # a new message: same condition status, same time  # fmt: skip


def test_with_insecure_keeps_other_conditions_and_fields() -> None:
    previous = {"conditions": [{"type": "Other", "status": "True", "reason": "X", "lastTransitionTime": T0},
                               {"type": "Insecure", "status": "True", "reason": "InsecureHTTP", "message": "old",
                                "lastTransitionTime": T0},
                               {"type": "Ready", "status": "True", "reason": "Synced", "lastTransitionTime": T0}],
                "syncedVersion": 2, "kopf": {"x": 1}}  # fmt: skip
    updated = c.with_insecure(previous, message="new", generation=None, now=T1)
    assert [cond["type"] for cond in updated["conditions"]] == ["Other", "Insecure", "Ready"]
    assert updated["conditions"][1] == {"type": "Insecure", "status": "True", "reason": "InsecureHTTP",
                                        "message": "new", "lastTransitionTime": T0}  # fmt: skip
    assert (updated["syncedVersion"], updated["kopf"]) == (2, {"x": 1})
    removed = c.with_insecure(previous, message=None, generation=None, now=T1)
    assert [cond["type"] for cond in removed["conditions"]] == ["Other", "Ready"]
    assert previous["conditions"][1]["message"] == "old", "the input is not changed"


def test_insecure_message_names_fields_not_urls() -> None:
    message = c.insecure_message("VaultConnection team-a/vault", ["url", "auth.clientCredentials.tokenUrl"])
    assert message == (
        "VaultConnection team-a/vault allows plain http:// to a host that is not loopback (insecureHTTP: true): "
        "spec.url sends the ScaiVault token and the secret data unencrypted; spec.auth.clientCredentials.tokenUrl "
        "sends the OAuth client id and secret unencrypted; switch to https:// and remove insecureHTTP"
    )


@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["Synced", "Forbidden", "BackendUnavailable"]), st.integers(1, 3)),
        min_size=1,
        max_size=6,
    )
)
def test_status_sequence_properties(steps: list[tuple[bool, str, int]]) -> None:
    """Applying each patch reaches the desired status; repeating a step is always a no-op."""
    current: dict[str, Any] | None = None
    for index, (ok, reason, version) in enumerate(steps):
        now = f"2026-04-23T14:{index:02d}:00Z"
        want = desired_status(
            previous=current,
            generation=1,
            ok=ok,
            reason=reason,
            message=reason,
            now=now,
            synced_version=version if ok else None,
            secret_name="web-db" if ok else None,
            synced_at=now if ok else None,
        )
        patch = status_patch(current, want)
        applied = {**(current or {}), **(patch or {})}
        applied = {k: v for k, v in applied.items() if v is not None}
        assert status_patch(applied, want) is None
        assert applied == want
        current = applied
        again = desired_status(
            previous=current,
            generation=1,
            ok=ok,
            reason=reason,
            message=reason,
            now=f"2026-04-23T15:{index:02d}:00Z",
            synced_version=None,
            secret_name=None,
            synced_at=None,
        )
        assert status_patch(current, again) is None
        assert not is_transition(current, again)


# -- canary through the whole status path -----------------------------------------------------------------------


def test_canary_never_in_status() -> None:
    errors: list[BaseException] = [
        KeyError(CANARY),
        ValueError(CANARY),
        validation_error(VaultSecretSpec, {"path": CANARY + "/..", "version": CANARY}),
    ]
    try:
        secret_data({"k": float("nan"), "x": CANARY}, None)
    except SourceDataError as exc:
        errors.append(exc)
    previous = synced(None, now=T0)
    for error in errors:
        failure = classify(error)
        status = desired_status(
            previous=previous,
            generation=1,
            ok=False,
            reason=failure.reason,
            message=failure.message,
            now=T1,
            synced_version=None,
            secret_name=None,
            synced_at=None,
        )
        rendered = json.dumps([status, status_patch(previous, status)])
        assert CANARY not in rendered


# -- now_rfc3339 ---------------------------------------------------------------------------------------------


def test_now_rfc3339() -> None:
    moment = datetime(2026, 4, 23, 14, 0, 5, 999_999, tzinfo=UTC)
    assert now_rfc3339(lambda: moment) == "2026-04-23T14:00:05Z"
    plus2 = datetime(2026, 4, 23, 16, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert now_rfc3339(lambda: plus2) == "2026-04-23T14:00:05Z"
    naive = datetime(2026, 4, 23, 14, 0, 5)
    assert now_rfc3339(lambda: naive) == "2026-04-23T14:00:05Z"


def test_now_rfc3339_default_clock() -> None:
    text = now_rfc3339()
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5
