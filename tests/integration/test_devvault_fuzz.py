"""Property tests: whatever paths, queries and bodies are thrown at the dev vault, it never answers 5xx.

Every error answer must also be the JSON error shape. The servers are module-scoped (hypothesis runs many
examples per test); state piling up between examples is fine, the assertions hold for any state.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaivault_operator.devvault import DevVaultConfig, run_in_thread

TOKEN = "fuzz-token"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def http():
    config = DevVaultConfig(
        port=0,
        tokens={TOKEN: {"secrets:read", "secrets:write"}},
        clients={"fuzz-client": ("fuzz-secret", {"secrets:read"})},
        max_body=64 * 1024,
    )
    with (
        run_in_thread(config) as running,
        httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10.0) as client,
    ):
        yield client


def _check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        body = resp.json()
        assert isinstance(body["error"], str)
        assert isinstance(body["message"], str)


def _raw(http: httpx.Client, method: str, raw_target: str, **kwargs) -> httpx.Response:
    return http.request(method, http.base_url.copy_with(raw_path=raw_target.encode("ascii")), **kwargs)


# Pieces that stress the path parser: separators, dots, escapes good and bad, non-ASCII, controls.
_PATH_PIECES = st.one_of(
    st.sampled_from(["/", "//", ".", "..", "%2F", "%2f", "%2E", "%2E%2E", "%25", "%", "%zz", "%FF", "%C3", "%00", "+"]),
    st.text(min_size=1, max_size=8),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_WRITE_BODY = st.fixed_dictionaries(
    {},
    optional={
        "data": _JSON,
        "secret_type": _JSON,
        "metadata": _JSON,
        "extra": _JSON,
    },
)


@FUZZ
@given(pieces=st.lists(_PATH_PIECES, min_size=0, max_size=8), method=st.sampled_from(["GET", "PUT"]))
def test_random_paths(http, pieces, method):
    target = "/v1/secrets/" + quote("".join(pieces), safe="/%+")
    _check(_raw(http, method, target, json={"data": {"k": "v"}}))


@FUZZ
@given(body=st.one_of(_WRITE_BODY, _JSON))
def test_random_json_bodies(http, body):
    _check(http.put("/v1/secrets/fuzz/json", content=json.dumps(body).encode()))


@FUZZ
@given(body=st.binary(max_size=256))
def test_random_bytes_bodies(http, body):
    _check(http.put("/v1/secrets/fuzz/bytes", content=body))
    _check(http.post("/oauth/token", content=body))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["prefix", "limit", "cursor", "version", "other"]), st.text(max_size=20), max_size=4
    ),
    raw_suffix=st.text(alphabet="%&=?+abcFF0", max_size=12),
)
def test_random_queries(http, params, raw_suffix):
    _check(http.get("/v1/secrets", params=params))
    _check(http.get("/v1/secrets/fuzz/json", params=params))
    _check(_raw(http, "GET", "/v1/secrets?" + quote(raw_suffix, safe="%&=+")))


@FUZZ
@given(
    form=st.dictionaries(
        st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "x"]),
        st.one_of(st.sampled_from(["client_credentials", "fuzz-client", "fuzz-secret", "secrets:read"]), st.text()),
        max_size=5,
    ),
    authorization=st.one_of(st.none(), st.text(alphabet="Basic bearer=:!AZaz09+/", max_size=30)),
)
def test_random_token_requests(http, form, authorization):
    headers = {"Authorization": authorization} if authorization and authorization.strip() == authorization else {}
    _check(http.post("/oauth/token", data=form, headers=headers))


@FUZZ
@given(authorization=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_random_authorization_headers(http, authorization):
    _check(http.get("/v1/auth/whoami", headers={"Authorization": authorization.strip()}))


@FUZZ
@given(
    changes=st.dictionaries(
        st.sampled_from(
            ["latency", "error_rate", "rate_limit_rate", "retry_after", "expire_tokens", "fail_next", "seed"]
        ),
        _JSON,
        max_size=3,
    )
)
def test_random_fault_settings(http, changes):
    # Valid settings are undone at once, so injected faults never leak into the other fuzz tests.
    try:
        _check(http.put("/_dev/faults", content=json.dumps(changes).encode()))
    finally:
        http.post("/_dev/faults/reset")
