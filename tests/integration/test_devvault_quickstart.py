"""Every example of the quickstart, against the dev vault over real loopback HTTP, with exact answer shapes."""

from __future__ import annotations

import hashlib
import re

import httpx

PATH = "environments/production/salesforce/api-credentials"
URL = f"/v1/secrets/{PATH}"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

V1_BODY = {
    "data": {"client_id": "3MVG9...", "client_secret": "REDACTED"},
    "secret_type": "json",
    "metadata": {"description": "Salesforce OAuth credentials", "tags": ["salesforce", "production"]},
}
V2_BODY = {"data": {"client_id": "3MVG9...", "client_secret": "NEW_REDACTED"}, "secret_type": "json"}


def test_whoami_answers_the_static_token_identity(dev_vault, dev_vault_http):
    resp = dev_vault_http.get("/v1/auth/whoami", headers=dev_vault.headers())

    assert resp.status_code == 200
    digest = hashlib.sha256(dev_vault.rw_token.encode()).hexdigest()
    assert resp.json() == {
        "identity_id": f"token:{digest[:12]}",
        "identity_type": "service",
        "tenant_id": "tnt_dev",
        "partner_id": "ptn_dev",
        "scopes": ["secrets:read", "secrets:write"],
    }
    assert dev_vault.rw_token not in resp.text


def test_quickstart_round_trip(start_dev_vault, fake_clock):
    vault = start_dev_vault(clock=fake_clock)
    with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
        created = http.put(URL, json=V1_BODY)
        fake_clock.advance(300)
        updated = http.put(URL, json=V2_BODY)
        v1 = http.get(URL, params={"version": "1"})
        current = http.get(URL)
        listed = http.get("/v1/secrets", params={"prefix": "environments/production/"})

    assert created.status_code == 201
    assert created.json() == {
        "path": PATH,
        "secret_type": "json",
        "version": 1,
        "created": True,
        "created_at": "2026-04-23T14:00:00Z",
    }
    assert updated.status_code == 200
    assert updated.json() == {
        "path": PATH,
        "version": 2,
        "created": False,
        "previous_version": 1,
        "updated_at": "2026-04-23T14:05:00Z",
    }
    assert v1.status_code == 200
    assert v1.json() == {
        "path": PATH,
        "secret_type": "json",
        "version": 1,
        "data": V1_BODY["data"],
        "metadata": V1_BODY["metadata"],
        "created_at": "2026-04-23T14:00:00Z",
        "updated_at": "2026-04-23T14:00:00Z",
    }
    assert current.json() == {
        "path": PATH,
        "secret_type": "json",
        "version": 2,
        "data": V2_BODY["data"],
        "metadata": V1_BODY["metadata"],  # inherited: v2 was written without metadata
        "created_at": "2026-04-23T14:00:00Z",
        "updated_at": "2026-04-23T14:05:00Z",
    }
    assert listed.json() == {
        "secrets": [
            {
                "path": PATH,
                "secret_type": "json",
                "version": 2,
                "updated_at": "2026-04-23T14:05:00Z",
                "tags": ["salesforce", "production"],
            }
        ],
        "cursor": None,
        "has_more": False,
    }


def test_writes_never_echo_the_data(dev_vault, dev_vault_http):
    first = dev_vault_http.put(URL, json=V1_BODY, headers=dev_vault.headers())
    second = dev_vault_http.put(URL, json=V2_BODY, headers=dev_vault.headers())

    for resp in (first, second):
        assert "REDACTED" not in resp.text
        assert "data" not in resp.json()
        assert RFC3339.match(resp.json().get("created_at") or resp.json()["updated_at"])


def test_real_clock_timestamps_are_rfc3339_utc_seconds(dev_vault, dev_vault_http):
    dev_vault_http.put(URL, json=V1_BODY, headers=dev_vault.headers())
    secret = dev_vault_http.get(URL, headers=dev_vault.headers()).json()

    assert RFC3339.match(secret["created_at"])
    assert secret["created_at"] == secret["updated_at"]
