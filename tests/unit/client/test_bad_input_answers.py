"""Bad input (issue 10), part 2: generated ScaiVault answers never crash or stall the operator, never leak a value.

Answers are generated for every call the operator makes — GET secret, the paged list, the OAuth token endpoint —
and for whoami: well-formed ones with odd data (unicode and empty keys, nested data, huge numbers, NaN, binary-
looking and lone-surrogate strings, data over 1 MiB, deep nesting), well-formed ones broken once (a field missing,
of the wrong type, out of range, for another path or version), and no answer at all (not JSON, empty, truncated,
invalid UTF-8, arrays or scalars instead of objects, nesting deeper than the parser's stack). Secret values carry
``VALUE``, tokens and the client secret carry canaries of their own.

Through the operator (``tests/bad_input_harness.py``: the real ``ScaiVaultClient`` on an ``httpx.MockTransport``,
``Syncer.sync_source`` → ``manifests.secret_data`` → ``desired_secret`` → a Secret write an API server would
judge; ``VersionWatcher.poll_once`` for lists):

- nothing escapes, nothing stalls, nothing is logged at ERROR, no write is refused by the API server;
- a 2xx GET ends ``Synced`` with exactly the data's encoding (strings as-is, anything else compact JSON), or
  ``BackendUnavailable`` naming what is wrong with the answer (``not JSON``, the field and error kind, ``another
  path or version``), or ``InvalidSourceData`` naming the key or limit; an error status ends with its reason;
- an error of the OAuth token endpoint is the connection's: it names the token endpoint and the connection's
  ``spec.auth.clientCredentials.tokenUrl`` (Unauthorized for refused credentials, InvalidSpec for a URL that is no
  token endpoint, BackendUnavailable while it may pass), never ``spec.path`` / ``spec.version``;
- no canary — value, token, client secret, access token — appears in the status, an Event or a log line.

Through the client alone (whoami, read, list, token): only ``ScaiVaultError`` subclasses are raised, and no canary
is in their ``str``/``repr``/``args``, their cause/context chain or a formatted traceback.

Example counts (``settings(max_examples=...)``, ``derandomize=True``; the constants below): GET through the operator
550 (+ 40 pinned with ``spec.keys``), list through the version watcher 150, token endpoint through the operator 150,
each of whoami/read/list/token through the client alone 75 (300): 1,190 answers, plus one per token-endpoint
error status.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from bad_input_harness import (
    TOKEN,
    Outcome,
    VaultAnswers,
    assert_settled,
    leaks,
    run_operator,
    secret_answer,
)
from scaivault_operator._cogs.scaivault import (
    BadRequestError,
    ClientCredentials,
    Endpoint,
    ForbiddenError,
    NotFoundError,
    RetryPolicy,
    ScaiVaultClient,
    ScaiVaultError,
    StaticToken,
    UnauthenticatedError,
)
from scaivault_operator._cogs.scaivault._auth import is_sendable_token
from scaivault_operator._logic import conditions

VALUE = "CANARY-ANSWER-5e2a"
TOKEN_CANARY = "CANARY-TOKEN-77d0"
CLIENT_SECRET_CANARY = "CANARY-CSECRET-31aa"
ACCESS_TOKEN_CANARY = "CANARY-ACCESS-c4f1"
CANARIES = (VALUE, TOKEN_CANARY, CLIENT_SECRET_CANARY, ACCESS_TOKEN_CANARY)
PATH = "apps/team/db"
INT64_MAX = 2**63 - 1
TOKEN_URL = "https://auth.example/oauth/token"
#: Examples per property (``settings(max_examples=...)``).
GET_ANSWERS, PINNED_GET_ANSWERS, LIST_ANSWERS, TOKEN_ANSWERS, CLIENT_ANSWERS_PER_CALL = 550, 40, 150, 150, 75
assert GET_ANSWERS + PINNED_GET_ANSWERS + LIST_ANSWERS + TOKEN_ANSWERS + 4 * CLIENT_ANSWERS_PER_CALL >= 1000
#: A JWT payload whose ``exp`` is 1e999 (infinity to Python's JSON reader).
JWT_INFINITE_EXP = base64.urlsafe_b64encode(b'{"exp": 1e999}').decode().rstrip("=")


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


# -- answers ------------------------------------------------------------------------------------------------------

canary_text = st.builds(lambda a, b: a + VALUE + b, st.text(max_size=4), st.text(max_size=4))
binary_looking = st.one_of(
    st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode() + VALUE),
    st.binary(min_size=1, max_size=16).map(lambda b: b.decode("latin-1") + VALUE),  # \x00..\xff as characters
    st.binary(min_size=1, max_size=16).map(lambda b: VALUE + b.hex()),
    st.sampled_from(["\udc80", "\ud800x", "x\udfff"]).map(lambda s: s + VALUE),  # lone surrogates ("\udc80" in JSON)
    st.just("\x00" + VALUE + "\x1b[2J"),
)
huge_numbers = st.sampled_from(
    [10**30, -(10**30), 2**63, 2**64, 10**4000, 1e308, -1e-308, 0.1, -0.0, float("nan"), float("inf"), -float("inf")]
)
leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), canary_text, binary_looking, huge_numbers)
data_keys = st.one_of(
    st.sampled_from(["password", "user", "a.b", "tls.crt", "", "..", ".hidden", "x" * 300, "has space", "ключ"]),
    st.text(max_size=10),
)
values = st.recursive(
    leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(data_keys, inner, max_size=3), max_leaves=10
)
datas = st.one_of(
    st.dictionaries(data_keys, values, max_size=6),
    st.dictionaries(st.sampled_from(["password", "user", "token"]), canary_text, min_size=1, max_size=3),
    st.integers(1, 300).map(lambda n: {"big": VALUE + "x" * ((1 << 20) + n)}),  # over 1 MiB
    st.integers(1, 120).map(lambda n: {f"k{i}": VALUE * 300 for i in range(n)}),  # many keys, ~0.5 MiB
)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, raw body, Content-Type. ``data``: the secret answer it was built from, if any;
    ``broken``: the field a mutation broke, which the message must name; ``raw``: a body not built from a secret
    answer (not JSON, an error body...); ``deep``: the depth of the nested list in ``data.deep``."""

    status: int
    body: bytes
    content_type: str = "application/json"
    broken: str | None = None
    raw: bool = False
    data: Any = field(default=None, compare=False)
    deep: int = 0

    def response(self, request: httpx.Request | None = None) -> httpx.Response:
        return httpx.Response(self.status, content=self.body, headers={"Content-Type": self.content_type})


def _deep(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


RAW_BODIES = st.one_of(
    st.sampled_from(
        [
            b"",
            b" ",
            b"\n",
            b"null",
            b"[]",
            b"{}",
            b"true",
            b"0",
            b'"ok"',
            b"<html>ok</html>",
            b'{"path": "apps/team/db", "vers',
            b"\xff\xfe{}",
            b"\xef\xbb\xbf{}",
            b"NaN",
            b"[1,2",
            b'{"path": "apps/team/db", "version": 1, "data": {"password": "' + VALUE.encode() + b'"',
            b'{"data": {"a": 1}}{"data": {"b": 2}}',
            '{"ключ": "\ud800"}'.encode("utf-8", "surrogatepass"),
        ]
    ),
    st.binary(max_size=64),
    st.sampled_from([5_000, 100_000]).flatmap(lambda d: st.sampled_from([_deep(d, "list"), _deep(d, "dict")])),
)

_STATUSES = [200] * 12 + [201, 203, 204, 206, 299, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]
_FIELD_BREAKS: dict[str, st.SearchStrategy[Any]] = {
    "path": st.sampled_from([5, None, [], {"p": VALUE}, True]),
    "version": st.sampled_from([0, -1, 1.5, "abc", None, [1], {"v": 1}, "one"]),
    "data": st.sampled_from([None, [VALUE], VALUE, 5, True]),
    "metadata": st.sampled_from([[VALUE], VALUE, 5]),
    # (A number is not a break: pydantic reads it as Unix time, as a lenient client should.)
    "created_at": st.sampled_from(["yesterday", VALUE, [1], "2026-13-45T99:00:00Z"]),
    "secret_type": st.sampled_from([5, [VALUE], {"t": VALUE}]),
}


@st.composite
def read_answers(draw: st.DrawFn, path: str = PATH, version: int = 1, *, pinned: bool = False) -> Answer:
    """An answer to ``GET /v1/secrets/{path}``: at ``version``, the latest or (``pinned``) the one asked for."""
    status = draw(st.sampled_from(_STATUSES))
    shape = draw(
        st.sampled_from(
            [
                "odd-data",
                "odd-data",
                "broken-field",
                "missing-field",
                "other-secret",
                "raw",
                "not-an-object",
                "error-body",
                "deep-data",
            ]
        )
    )
    body: dict[str, Any] = secret_answer(path, version, draw(datas))
    if shape == "broken-field":
        name = draw(st.sampled_from(sorted(_FIELD_BREAKS)))
        body[name] = draw(_FIELD_BREAKS[name])
        return Answer(status, _dumps(body), broken=name, data=body)
    if shape == "missing-field":
        name = draw(st.sampled_from(["path", "version", "data"]))
        del body[name]
        return Answer(status, _dumps(body), broken=name, data=body)
    if shape == "other-secret":
        others = [{"path": path + "/x"}, {"path": path.upper()}, {"path": path + "\x00"}]
        body.update(draw(st.sampled_from([*others, {"version": version + 1}] if pinned else others)))
        return Answer(status, _dumps(body), broken="another path or version", data=body)
    if shape == "raw":
        return Answer(
            status, draw(RAW_BODIES), content_type=draw(st.sampled_from(["application/json", "text/html"])), raw=True
        )
    if shape == "not-an-object":
        wrapped = draw(st.sampled_from([[body], body["data"], VALUE, 1, None]))
        # An object (the data itself, at the top) lacks the fields; anything else is no object at all.
        return Answer(status, _dumps(wrapped), broken="path" if isinstance(wrapped, dict) else "body", data=wrapped)
    if shape == "deep-data":  # nested deeper than a JSON encoder's (or the parser's) recursion goes
        depth = draw(st.sampled_from([50, 500, 900, 1500, 3000]))
        head = _dumps({**secret_answer(path, version, {}), "data": None}).replace(b'"data": null', b'"data": ')
        body_bytes = head.replace(b'"data": ', b'"data": {"deep": ' + _deep(depth, "list") + b"}")
        return Answer(status, body_bytes, data=body, deep=depth)
    if shape == "error-body":
        error = {"error": "not_found", "message": f"no secret {VALUE}", "detail": {"input": VALUE}, "data": body}
        return Answer(status, _dumps(error), raw=True, data=error)
    extra = draw(st.sampled_from([{}, {"unknown": {"x": VALUE}}, {"rotation": None}, {"metadata": {"m": VALUE}}]))
    return Answer(status, _dumps({**body, **extra}), data=body)


def _dumps(value: Any) -> bytes:
    """JSON as a careless server writes it: NaN/Infinity as bare words, lone surrogates as \\u escapes."""
    return json.dumps(value).encode()


# -- expectations -------------------------------------------------------------------------------------------------

#: What the operator says about an error status (through ``conditions.classify``).
STATUS_REASONS = {
    401: conditions.UNAUTHORIZED,
    403: conditions.FORBIDDEN,
    404: conditions.SOURCE_NOT_FOUND,
    429: conditions.BACKEND_UNAVAILABLE,
}
#: Words of every ``SourceDataError`` (manifests.secret_data): a key, a limit, or what is wrong with a value.
SOURCE_DATA_WORDS = ("ScaiVault secret's data", "the Secret would hold", "spec.keys")


def expected_reason(status: int) -> str | None:
    if 200 <= status < 300:
        return None  # depends on the body
    if status in STATUS_REASONS:
        return STATUS_REASONS[status]
    if status >= 500:
        return conditions.BACKEND_UNAVAILABLE
    return conditions.INVALID_SPEC  # 301 and other 4xx: BadRequestError ("rejected the request as invalid")


def encoded(value: Any) -> str:
    """``manifests``' rule for one Secret value: a string as-is, anything else compact JSON with sorted keys."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


def assert_named_problem(outcome: Outcome, answer: Answer) -> None:
    """A malformed 2xx answer: BackendUnavailable saying what is wrong with it."""
    message = outcome.message
    assert "cannot understand" in message, message
    if answer.broken is not None:
        broken = answer.broken
        assert broken in message or (broken == "body" and "not JSON" in message), (broken, message)
    else:
        assert "not JSON" in message or "unexpected answer:" in message or "another path" in message, message


def check_read(outcome: Outcome, answer: Answer, keys: list[str] | None = None) -> None:
    assert_settled(outcome)
    leaked = leaks(outcome, *CANARIES)
    assert not leaked, leaked[:2]
    wanted = expected_reason(answer.status)
    if wanted is not None:
        assert outcome.reason == wanted, (answer.status, outcome.reason, outcome.message)
        assert outcome.secret is None
        return
    if outcome.reason == conditions.SYNCED:
        assert not answer.raw, (answer, outcome.message)
        assert answer.broken is None, (answer, outcome.message)
        assert isinstance(answer.data, dict)
        data = {"deep": "[" * answer.deep + "1" + "]" * answer.deep} if answer.deep else answer.data["data"]
        assert outcome.decoded_data() == {
            key: data[key] if answer.deep else encoded(data[key]) for key in (data if keys is None else keys)
        }
        assert outcome.status.get("syncedVersion") == answer.data["version"]
    elif outcome.reason == conditions.INVALID_SOURCE_DATA:
        assert not answer.raw, outcome.message
        assert answer.broken is None, (answer.broken, outcome.message)
        assert isinstance(answer.data, dict)
        assert any(words in outcome.message for words in SOURCE_DATA_WORDS), outcome.message
        assert outcome.secret is None
    else:
        assert outcome.reason == conditions.BACKEND_UNAVAILABLE, (outcome.reason, outcome.message)
        assert_named_problem(outcome, answer)
        assert outcome.secret is None


# -- GET secret, through the operator -----------------------------------------------------------------------------


def _gap_version_beyond_int64(answer: Answer) -> bool:
    """A well-formed 2xx answer whose version is beyond int64 (see test_gap_answer_version_beyond_int64)."""
    data = answer.data
    return (
        200 <= answer.status < 300
        and isinstance(data, dict)
        and isinstance(data.get("version"), int)
        and not isinstance(data.get("version"), bool)
        and data["version"] > INT64_MAX
    )


def run_read(answer: Answer, runner: asyncio.Runner, *, spec: dict[str, Any] | None = None) -> Outcome:
    answers = VaultAnswers(on_read=answer.response)
    connection = {
        "url": "https://vault.example",
        "auth": {"tokenSecretRef": {"name": "scaivault-token", "namespace": "scaivault-system"}},
        "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}],
    }
    return run_operator(spec or {"path": PATH}, connection, answers=answers, token=TOKEN_CANARY, runner=runner)


@_settings(GET_ANSWERS)
@given(answer=read_answers().filter(lambda a: not _gap_version_beyond_int64(a)))
def test_get_answers_through_the_operator(runner: asyncio.Runner, answer: Answer) -> None:
    outcome = run_read(answer, runner)
    event(f"HTTP {answer.status // 100}xx -> {outcome.reason}")
    check_read(outcome, answer)


@_settings(40)
@given(
    answer=read_answers(version=3, pinned=True),
    keys=st.lists(st.sampled_from(["password", "user", "token", "a.b", "x"]), min_size=1, max_size=3, unique=True),
)
def test_pinned_get_answers_with_keys(runner: asyncio.Runner, answer: Answer, keys: list[str]) -> None:
    """``spec.keys`` and a pinned version: the answer is judged against them (missing keys: InvalidSourceData)."""
    outcome = run_read(answer, runner, spec={"path": PATH, "version": 3, "keys": [{"from": k} for k in keys]})
    event(f"HTTP {answer.status // 100}xx -> {outcome.reason}")
    check_read(outcome, answer, keys)


def test_the_checks_can_fail(runner: asyncio.Runner) -> None:
    """A leaked value, a wrong reason and an unnamed problem are all caught."""
    good = Answer(
        200, _dumps(secret_answer(PATH, 1, {"password": VALUE})), data=secret_answer(PATH, 1, {"password": VALUE})
    )
    outcome = run_read(good, runner)
    check_read(outcome, good)
    assert outcome.decoded_data() == {"password": VALUE}  # the value is in the Secret, and only there
    outcome.logs.append(f"DEBUG x: {VALUE}")
    with pytest.raises(AssertionError):
        check_read(outcome, good)
    bad = Answer(200, _dumps({**secret_answer(PATH, 1, {}), "version": "abc"}), broken="version")
    assert "version" in run_read(bad, runner).message
    with pytest.raises(AssertionError):
        check_read(run_read(bad, runner), Answer(200, bad.body, broken="data"))  # names version, not data


@settings(_settings(5), phases=(Phase.explicit, Phase.generate))
@given(version=st.integers(2**63, 2**80))
def test_answer_version_beyond_int64_is_malformed(runner: asyncio.Runner, version: int) -> None:
    body = secret_answer(PATH, version, {"password": VALUE})
    outcome = run_read(Answer(200, _dumps(body), data=body), runner)
    assert outcome.reason == conditions.BACKEND_UNAVAILABLE


# -- the list, through the version watcher ------------------------------------------------------------------------

summaries = st.fixed_dictionaries(
    {
        "path": st.one_of(st.just(PATH), st.text(max_size=12), st.sampled_from([5, None])),
        "version": st.one_of(st.integers(-1, 5), st.sampled_from([2**63, 10**30, "2", None, 1.5])),
    },
    optional={
        "updated_at": st.sampled_from(["2026-01-01T00:00:00Z", VALUE, 5]),
        "tags": st.sampled_from([[VALUE], VALUE, [1]]),
        "data": st.just({"password": VALUE}),
    },
)


@st.composite
def list_answers(draw: st.DrawFn) -> Answer:
    status = draw(st.sampled_from(_STATUSES))
    shape = draw(st.sampled_from(["page", "page", "raw", "not-an-object"]))
    if shape == "raw":
        return Answer(status, draw(RAW_BODIES), raw=True)
    page: dict[str, Any] = {"secrets": draw(st.lists(summaries, max_size=4)), "has_more": False}
    page.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "cursor": st.one_of(st.text(max_size=6), st.sampled_from([5, None, "\ud800", VALUE])),
                    "has_more": st.sampled_from([True, False, "yes", None]),
                    "secrets": st.sampled_from([VALUE, {"path": PATH}, None, 5]),
                },
            )
        )
    )
    if shape == "not-an-object":
        return Answer(status, _dumps([page]), broken="body")
    return Answer(status, _dumps(page), data=page)


@_settings(LIST_ANSWERS)
@given(answer=list_answers())
def test_list_answers_through_the_version_watcher(runner: asyncio.Runner, answer: Answer) -> None:
    """A list answer is whatever it is: the poll ends (a repeated cursor is an error, not a loop), nothing leaks,
    and the VaultSecret syncs from its own GET or reports the list's failure."""
    connection = {
        "url": "https://vault.example",
        "auth": {"tokenSecretRef": {"name": "scaivault-token", "namespace": "scaivault-system"}},
        "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}],
    }
    answers = VaultAnswers(on_list=answer.response, data={"password": VALUE})
    outcome = run_operator(
        {"path": PATH}, connection, answers=answers, token=TOKEN_CANARY, poll=True, runner=runner, timeout=5.0
    )
    assert_settled(outcome)
    assert not leaks(outcome, *CANARIES)
    # A failed list may open the connection's breaker; its VaultSecrets then report the list's failure (classified
    # as a GET's would be) instead of syncing, and say it was the list.
    failed = expected_reason(answer.status) or conditions.BACKEND_UNAVAILABLE
    event(f"list HTTP {answer.status // 100}xx -> {outcome.reason}")
    assert outcome.reason in (conditions.SYNCED, failed), (answer.status, outcome.reason, outcome.message)
    if outcome.reason != conditions.SYNCED:
        assert "LIST secrets" in outcome.message, outcome.message
        assert outcome.secret is None
    lists = [r for r in outcome.requests if r.url.path.endswith("/v1/secrets")]
    assert 1 <= len(lists) <= 3  # one page, or a retry of a transient failure; a repeated cursor ends it


def test_endless_pages_end_the_poll_with_an_error(runner: asyncio.Runner) -> None:
    """A server that answers has_more with a fresh cursor for ever: the list stops at its page bound (a
    ResponseError, BackendUnavailable), so the poll ends instead of running for ever."""
    pages = iter(range(10**9))

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"secrets": [], "has_more": True, "cursor": f"c{next(pages)}"})

    connection = {
        "url": "https://vault.example",
        "auth": {"tokenSecretRef": {"name": "scaivault-token", "namespace": "scaivault-system"}},
        "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}],
    }
    run_operator(
        {"path": PATH}, connection, answers=VaultAnswers(on_list=endless), poll=True, runner=runner, timeout=10.0
    )


# -- the OAuth token endpoint, through the operator ---------------------------------------------------------------


@st.composite
def token_answers(draw: st.DrawFn) -> Answer:
    status = draw(st.sampled_from([200] * 8 + [201, 204, 400, 401, 403, 404, 429, 500, 503]))
    shape = draw(st.sampled_from(["token", "token", "raw", "error", "not-an-object"]))
    if shape == "raw":
        return Answer(status, draw(RAW_BODIES), raw=True)
    if shape == "error":
        body = {
            "error": draw(st.sampled_from(["invalid_client", "invalid_grant", "server_error", 5, None])),
            "error_description": f"bad client secret {CLIENT_SECRET_CANARY}",
            "message": CLIENT_SECRET_CANARY,
        }
        return Answer(status, _dumps(body), raw=True)
    token = draw(
        st.one_of(
            st.just(ACCESS_TOKEN_CANARY),
            st.sampled_from(
                [
                    f"{ACCESS_TOKEN_CANARY} x",
                    f"{ACCESS_TOKEN_CANARY}\n",
                    f"é{ACCESS_TOKEN_CANARY}",
                    "",
                    5,
                    None,
                    [ACCESS_TOKEN_CANARY],
                ]
            ),
            st.just(f"e30.{JWT_INFINITE_EXP}.{ACCESS_TOKEN_CANARY}"),
        )
    )
    body = {"access_token": token, "token_type": "Bearer"}
    body.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "expires_in": st.sampled_from([300, 0, -5, 10**400, 1e308, float("nan"), "300", None, True]),
                    "scope": st.sampled_from(["secrets:read", 5, [ACCESS_TOKEN_CANARY]]),
                },
            )
        )
    )
    if shape == "not-an-object":
        return Answer(status, _dumps([body]), broken="body")
    return Answer(status, _dumps(body), data=body)


@_settings(TOKEN_ANSWERS)
@given(answer=token_answers())
def test_token_answers_through_the_operator(runner: asyncio.Runner, answer: Answer) -> None:
    connection = {
        "url": "https://vault.example",
        "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}],
        "auth": {
            "clientCredentials": {
                "tokenUrl": TOKEN_URL,
                "secretRef": {"name": "scaivault-client", "namespace": "scaivault-system"},
            }
        },
    }
    answers = VaultAnswers(on_token=answer.response, data={"password": VALUE})
    outcome = run_operator(
        {"path": PATH}, connection, answers=answers, client_secret=CLIENT_SECRET_CANARY, runner=runner
    )
    event(f"token HTTP {answer.status // 100}xx -> {outcome.reason}")
    assert_settled(outcome)
    assert not leaks(outcome, *CANARIES)
    posts = [r for r in outcome.requests if r.method == "POST"]
    assert posts, "the token endpoint was asked"
    token = answer.data.get("access_token") if isinstance(answer.data, dict) else None
    usable = answer.status // 100 == 2 and isinstance(token, str) and token != "" and is_sendable_token(token)
    if usable:
        assert outcome.reason == conditions.SYNCED, outcome.message
        gets = [r for r in outcome.requests if r.method == "GET"]
        assert gets
        assert all(r.headers["Authorization"] == f"Bearer {token}" for r in gets)
    elif answer.status in (400, 401, 403):  # the client credentials were refused
        assert outcome.reason == conditions.UNAUTHORIZED, outcome.message
        assert "token endpoint" in outcome.message, outcome.message
        assert "tokenUrl" in outcome.message, outcome.message
        assert "client id and secret" in outcome.message, outcome.message
    elif answer.status // 100 == 2:
        assert outcome.reason == conditions.BACKEND_UNAVAILABLE, outcome.message
        assert "token endpoint" in outcome.message, outcome.message
        assert "cannot understand" in outcome.message, outcome.message
    elif answer.status == 429 or answer.status >= 500:
        assert outcome.reason == conditions.BACKEND_UNAVAILABLE, outcome.message
        assert "token endpoint" in outcome.message, outcome.message
    else:  # 404: no token endpoint at that URL
        assert outcome.reason == conditions.INVALID_SPEC, outcome.message
        assert "token endpoint" in outcome.message, outcome.message
        assert "tokenUrl" in outcome.message, outcome.message
    assert "spec.path" not in outcome.message, outcome.message
    assert "spec.version" not in outcome.message, outcome.message


#: What a failing token endpoint ends as: the connection's problem (its tokenUrl, its client credentials) — never
#: the VaultSecret's path — and retried only when it may pass by itself.
TOKEN_ENDPOINT_FAILURES = {
    400: (conditions.UNAUTHORIZED, False),
    401: (conditions.UNAUTHORIZED, False),
    403: (conditions.UNAUTHORIZED, False),
    404: (conditions.INVALID_SPEC, False),
    301: (conditions.INVALID_SPEC, False),
    307: (conditions.INVALID_SPEC, False),
    405: (conditions.INVALID_SPEC, False),
    409: (conditions.INVALID_SPEC, False),
    429: (conditions.BACKEND_UNAVAILABLE, True),
    500: (conditions.BACKEND_UNAVAILABLE, True),
    503: (conditions.BACKEND_UNAVAILABLE, True),
}


@settings(_settings(len(TOKEN_ENDPOINT_FAILURES)), phases=(Phase.explicit, Phase.generate))
@given(status=st.sampled_from(sorted(TOKEN_ENDPOINT_FAILURES)))
def test_token_endpoint_errors_blame_the_connection(runner: asyncio.Runner, status: int) -> None:
    """An error of the OAuth token endpoint (the connection's ``auth.clientCredentials.tokenUrl``) is the
    connection's problem: it names the token endpoint, and when it will not pass by itself the connection's
    ``tokenUrl`` (and the client id and secret when they were refused); never ``spec.path`` / ``spec.version`` nor a
    secret, and ScaiVault itself is never asked."""
    connection = {
        "url": "https://vault.example",
        "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}],
        "auth": {
            "clientCredentials": {
                "tokenUrl": TOKEN_URL,
                "secretRef": {"name": "scaivault-client", "namespace": "scaivault-system"},
            }
        },
    }
    body = {"error": "not_found", "error_description": CLIENT_SECRET_CANARY, "message": CLIENT_SECRET_CANARY}
    answers = VaultAnswers(on_token=Answer(status, _dumps(body)).response)
    outcome = run_operator(
        {"path": PATH}, connection, answers=answers, client_secret=CLIENT_SECRET_CANARY, runner=runner
    )
    reason, transient = TOKEN_ENDPOINT_FAILURES[status]
    assert_settled(outcome)
    assert outcome.reason == reason, outcome.message
    assert "spec.path" not in outcome.message, outcome.message
    assert "spec.version" not in outcome.message, outcome.message
    assert "token endpoint" in outcome.message, outcome.message
    assert f"HTTP {status}" in outcome.message, outcome.message
    if not transient:  # the connection's spec is what to fix (an outage is not)
        assert "spec.auth.clientCredentials.tokenUrl" in outcome.message, outcome.message
    if reason == conditions.UNAUTHORIZED:
        assert "client id and secret" in outcome.message, outcome.message
    assert ("retrying" in outcome.message) == transient, outcome.message
    assert not leaks(outcome, *CANARIES)
    assert [r.method for r in outcome.requests if r.url.host != "auth.example"] == []  # no GET without a token


def test_token_endpoint_errors_are_marked_in_the_client(runner: asyncio.Runner) -> None:
    """The client tells a token-endpoint failure from ScaiVault's own: ``endpoint`` on the error, the token
    endpoint's status table (400/401/403: the credentials were refused), and a timeout marked the same way."""

    async def call(handler: Callable[[httpx.Request], httpx.Response]) -> ScaiVaultError:
        auth = ClientCredentials(TOKEN_URL, "client", CLIENT_SECRET_CANARY)
        transport = httpx.MockTransport(handler)
        async with ScaiVaultClient(
            "https://vault.example", auth, transport=transport, retry=RetryPolicy(max_attempts=1)
        ) as client:
            with pytest.raises(ScaiVaultError) as info:
                await client.read(PATH)
        return info.value

    def token(status: int) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(status, json={"error": "nope"})
            raise AssertionError("no request to ScaiVault without a token")

        return handler

    def api(status: int) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(200, json={"access_token": "tok", "expires_in": 300})
            return httpx.Response(status, json={"error": "nope"})

        return handler

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    for status, cls in ((400, UnauthenticatedError), (403, UnauthenticatedError), (404, NotFoundError)):
        error = runner.run(call(token(status)))
        assert type(error) is cls, (status, error)
        assert error.endpoint is Endpoint.TOKEN, (status, error)
    assert runner.run(call(timeout)).endpoint is Endpoint.TOKEN
    for status, cls in ((400, BadRequestError), (403, ForbiddenError), (404, NotFoundError)):
        error = runner.run(call(api(status)))
        assert type(error) is cls, (status, error)
        assert error.endpoint is Endpoint.SCAIVAULT, (status, error)
        assert conditions.classify(error).reason == expected_reason(status)  # ScaiVault's own answers as before


# -- every call, through the client alone -------------------------------------------------------------------------


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything an exception can show: str, repr, args, code, its cause/context chain, a formatted traceback."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(getattr(current, "code", None))
        stack.extend([current.__cause__, current.__context__])
    yield "".join(traceback.format_exception(exc))


CALLS: dict[str, Callable[[ScaiVaultClient], Any]] = {
    "whoami": lambda client: client.whoami(),
    "read": lambda client: client.read(PATH),
    "list": lambda client: client.list_page("apps/"),
}
identity_answers = st.builds(
    lambda status, body: Answer(status, _dumps(body), data=body),
    st.sampled_from(_STATUSES),
    st.one_of(
        st.fixed_dictionaries(
            {"identity_id": st.one_of(st.text(max_size=8), st.sampled_from([5, None, [VALUE]]))},
            optional={
                "scopes": st.sampled_from([["secrets:read"], VALUE, [5], {"a": VALUE}]),
                "tenant_id": st.sampled_from([VALUE, 5]),
            },
        ),
        values,
    ),
)
CLIENT_ANSWERS: dict[str, st.SearchStrategy[Answer]] = {
    "whoami": st.one_of(identity_answers, RAW_BODIES.map(lambda b: Answer(200, b, raw=True))),
    "read": read_answers(),
    "list": list_answers(),
    "token": token_answers(),
}


async def _call_client(call: str, answer: Answer) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if call != "token" and request.method == "POST":
            raise AssertionError("no token endpoint for this call")
        if call == "token" and request.method == "GET":
            return httpx.Response(200, json=secret_answer(PATH, 1, {"password": VALUE}))
        return answer.response(request)

    if call == "token":
        auth: Any = ClientCredentials(TOKEN_URL, "client", CLIENT_SECRET_CANARY)
    else:
        auth = StaticToken(TOKEN_CANARY)
    async with ScaiVaultClient(
        "https://vault.example",
        auth,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=2, base=0.0, cap=0.0),
    ) as client:
        return await (client.read(PATH) if call == "token" else CALLS[call](client))


@pytest.mark.parametrize("call", ["whoami", "read", "list", "token"])
@_settings(CLIENT_ANSWERS_PER_CALL)
@given(data=st.data())
def test_answers_through_the_client(runner: asyncio.Runner, call: str, data: st.DataObject) -> None:
    answer = data.draw(CLIENT_ANSWERS[call], label="answer")
    error: ScaiVaultError | None = None
    try:
        result = runner.run(_call_client(call, answer))
    except ScaiVaultError as exc:  # anything else fails the test
        error = exc
    if error is not None:
        event(type(error).__name__)
        leaked = [text for text in exception_texts(error) if any(canary in text for canary in CANARIES)]
        assert not leaked, leaked[:2]
        assert str(error)
        return
    assert 200 <= answer.status < 300, (answer, result)
    assert not answer.raw, (answer, result)
    if call in ("read", "token"):
        assert not re.search(r"(?<!meta)data=", repr(result))  # Secret.data is kept out of repr


def test_token_canary_of_the_harness_is_the_real_token(runner: asyncio.Runner) -> None:
    """The token canary really is sent (so its absence elsewhere means something)."""
    body = secret_answer(PATH, 1, {"password": "pw"})
    outcome = run_read(Answer(200, _dumps(body), data=body), runner)
    assert outcome.requests[0].headers["Authorization"] == f"Bearer {TOKEN_CANARY}"
    assert TOKEN != TOKEN_CANARY
