"""Bearer tokens, scopes and the OAuth2 client-credentials endpoint of the dev vault, over real HTTP."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

SECRET_URL = "/v1/secrets/apps/web/db"
READ_ONLY = ("ro_token", "secrets:write")
WRITE_ONLY = ("wo_token", "secrets:read")


def _b64json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _assert_401(resp: httpx.Response, code: str = "authentication_required") -> None:
    assert resp.status_code == 401
    assert resp.json()["error"] == code
    assert resp.headers["WWW-Authenticate"] == "Bearer"


# -- static tokens and scopes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Token rw-token",
        "Basic cnctdG9rZW46",
        "Bearer unknown-token",
        "Bearer rw-token extra",
        "rw-token",
    ],
)
def test_missing_or_unknown_tokens_answer_401(dev_vault_http, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, url in [("GET", "/v1/auth/whoami"), ("GET", SECRET_URL), ("GET", "/v1/secrets"), ("PUT", SECRET_URL)]:
        resp = dev_vault_http.request(method, url, headers=headers, json={"data": {}})
        _assert_401(resp)
        assert "rw-token" not in resp.text


def test_scheme_is_case_insensitive(dev_vault, dev_vault_http):
    resp = dev_vault_http.get("/v1/auth/whoami", headers={"Authorization": f"bearer {dev_vault.rw_token}"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("token_attr", "method", "url", "scope"),
    [
        ("ro_token", "PUT", SECRET_URL, "secrets:write"),
        ("wo_token", "GET", SECRET_URL, "secrets:read"),
        ("wo_token", "GET", "/v1/secrets", "secrets:read"),
        ("noscope_token", "GET", SECRET_URL, "secrets:read"),
        ("noscope_token", "GET", "/v1/secrets", "secrets:read"),
        ("noscope_token", "PUT", SECRET_URL, "secrets:write"),
    ],
)
def test_missing_scope_answers_403_naming_it(dev_vault, dev_vault_http, token_attr, method, url, scope):
    resp = dev_vault_http.request(
        method, url, headers=dev_vault.headers(getattr(dev_vault, token_attr)), json={"data": {"k": "v"}}
    )

    assert resp.status_code == 403
    assert resp.json()["error"] == "access_denied"
    assert scope in resp.json()["message"]


def test_scopes_grant_exactly_their_calls(dev_vault, dev_vault_http):
    wrote = dev_vault_http.put(SECRET_URL, json={"data": {"k": "v"}}, headers=dev_vault.headers(dev_vault.wo_token))
    read = dev_vault_http.get(SECRET_URL, headers=dev_vault.headers(dev_vault.ro_token))
    listed = dev_vault_http.get("/v1/secrets", headers=dev_vault.headers(dev_vault.ro_token))
    whoami = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers(dev_vault.noscope_token))

    assert (wrote.status_code, read.status_code, listed.status_code, whoami.status_code) == (201, 200, 200, 200)
    assert whoami.json()["scopes"] == []


def test_revoked_static_token_answers_401(dev_vault, dev_vault_http):
    assert dev_vault.vault.revoke_token(dev_vault.ro_token) is True
    assert dev_vault.vault.revoke_token(dev_vault.ro_token) is False

    _assert_401(dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers(dev_vault.ro_token)))


def test_tokens_added_and_revoked_at_run_time(dev_vault, dev_vault_http):
    added = dev_vault_http.post("/_dev/tokens", json={"token": "late-token", "scopes": ["secrets:read"]})
    whoami = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers("late-token"))
    revoked = dev_vault_http.post("/_dev/tokens/revoke", json={"token": "late-token"})
    after = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers("late-token"))
    again = dev_vault_http.post("/_dev/tokens/revoke", json={"token": "late-token"})

    assert added.status_code == 201
    assert added.json() == {
        "identity_id": whoami.json()["identity_id"],
        "identity_type": "service",
        "scopes": ["secrets:read"],
    }
    assert "late-token" not in added.text
    assert whoami.json()["scopes"] == ["secrets:read"]
    assert revoked.json() == {"revoked": True}
    _assert_401(after)
    assert again.json() == {"revoked": False}


def test_in_process_add_token(dev_vault, dev_vault_http):
    identity = dev_vault.vault.add_token("seeded-token", {"secrets:write"})

    resp = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers("seeded-token"))
    assert resp.json()["identity_id"] == identity.identity_id
    assert resp.json()["scopes"] == ["secrets:write"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": 5},
        {"token": ""},
        {"token": "has space"},
        {"token": "t\u00e9"},
        {"token": "ok", "scopes": "secrets:read"},
        {"token": "ok", "scopes": [1]},
        {"token": "ok", "scopes": ["bad scope"]},
        [],
    ],
)
def test_admin_add_token_rejects_bad_bodies(dev_vault_http, body):
    resp = dev_vault_http.post("/_dev/tokens", json=body)

    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


# -- OAuth2 client credentials -------------------------------------------------------------------------


def _token_request(dev_vault, http: httpx.Client, **form: str) -> httpx.Response:
    fields = {"grant_type": "client_credentials", "client_id": dev_vault.client_id}
    fields["client_secret"] = dev_vault.client_secret
    fields.update(form)
    return http.post("/oauth/token", data={k: v for k, v in fields.items() if v is not None})


def test_client_credentials_issue_a_jwt_shaped_token(dev_vault, dev_vault_http):
    resp = _token_request(dev_vault, dev_vault_http)

    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "secrets:read"
    assert resp.headers["Cache-Control"] == "no-store"
    header, payload, signature = body["access_token"].split(".")
    assert _b64json(header) == {"alg": "HS256", "typ": "JWT"}
    claims = _b64json(payload)
    assert set(claims) == {"sub", "scope", "iat", "exp", "jti"}
    assert claims["sub"] == dev_vault.client_id
    assert claims["scope"] == "secrets:read"
    assert claims["exp"] - claims["iat"] == 3600
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32
    assert dev_vault.client_secret not in resp.text


def test_issued_token_authenticates_as_the_client(dev_vault, dev_vault_http):
    token = _token_request(dev_vault, dev_vault_http).json()["access_token"]

    whoami = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers(token))
    write = dev_vault_http.put(SECRET_URL, json={"data": {}}, headers=dev_vault.headers(token))

    assert whoami.json() == {
        "identity_id": f"client:{dev_vault.client_id}",
        "identity_type": "client",
        "tenant_id": "tnt_dev",
        "partner_id": "ptn_dev",
        "scopes": ["secrets:read"],
    }
    assert token not in whoami.text
    assert write.status_code == 403


def test_http_basic_client_authentication(dev_vault, dev_vault_http):
    resp = dev_vault_http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(dev_vault.client_id, dev_vault.client_secret),
    )
    assert resp.status_code == 200


def test_requested_scope_must_be_granted(start_dev_vault):
    vault = start_dev_vault(clients={"multi": ("s3cret", {"secrets:read", "secrets:write"})})
    with httpx.Client(base_url=vault.url) as http:
        narrowed = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "multi",
                "client_secret": "s3cret",
                "scope": "secrets:read",
            },
        )
        widened = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "multi",
                "client_secret": "s3cret",
                "scope": "admin",
            },
        )
        everything = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("multi", "s3cret"))

    assert narrowed.json()["scope"] == "secrets:read"
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"
    assert everything.json()["scope"] == "secrets:read secrets:write"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"client_id": None, "client_secret": None}, 401, "invalid_client"),
        ({"client_secret": None}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"grant_type": ""}, 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(dev_vault, dev_vault_http, form, status, code):
    resp = _token_request(dev_vault, dev_vault_http, **form)

    assert resp.status_code == status
    assert resp.json()["error"] == code
    assert resp.json()["error_description"] == resp.json()["message"]
    assert dev_vault.client_secret not in resp.text


def test_token_endpoint_rejects_two_authentication_methods(dev_vault, dev_vault_http):
    resp = dev_vault_http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": dev_vault.client_id},
        auth=(dev_vault.client_id, dev_vault.client_secret),
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize("authorization", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()])
def test_token_endpoint_rejects_garbled_basic_auth(dev_vault_http, authorization):
    resp = dev_vault_http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": authorization}
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_issued_token_expires(start_dev_vault, fake_clock):
    vault = start_dev_vault(clock=fake_clock, token_ttl=60)
    with httpx.Client(base_url=vault.url) as http:
        token = _token_request(vault, http).json()["access_token"]
        fake_clock.advance(59)
        before = http.get("/v1/auth/whoami", headers=vault.headers(token))
        fake_clock.advance(1)
        after = http.get("/v1/auth/whoami", headers=vault.headers(token))

    assert before.status_code == 200
    _assert_401(after, "token_expired")


def test_revoked_issued_token_answers_401(dev_vault, dev_vault_http):
    token = _token_request(dev_vault, dev_vault_http).json()["access_token"]

    assert dev_vault.vault.revoke_token(token) is True
    _assert_401(dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers(token)))


def test_tokens_of_another_server_or_tampered_are_unknown(dev_vault, dev_vault_http, start_dev_vault):
    other = start_dev_vault()
    with httpx.Client(base_url=other.url) as http:
        foreign = _token_request(other, http).json()["access_token"]
    token = _token_request(dev_vault, dev_vault_http).json()["access_token"]
    header, payload, signature = token.split(".")
    claims = _b64json(payload)
    claims["scope"] = "secrets:read secrets:write"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    for bad in (foreign, f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.", "a.b.c"):
        _assert_401(dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers(bad)))


def test_token_requests_are_counted(dev_vault, dev_vault_http):
    _token_request(dev_vault, dev_vault_http)
    _token_request(dev_vault, dev_vault_http, client_secret="wrong")

    stats = dev_vault.vault.stats
    assert stats.count("token") == 2
    assert stats.count_status(401) == 1
