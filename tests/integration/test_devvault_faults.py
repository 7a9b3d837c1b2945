"""Fault injection of the dev vault: each fault, its order, run-time switching and validation."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from scaivault_operator.devvault import FaultConfig


@pytest.fixture
def http(dev_vault) -> httpx.Client:
    with httpx.Client(base_url=dev_vault.url, headers=dev_vault.headers(), timeout=10.0) as client:
        yield client


def _statuses(http: httpx.Client, count: int, url: str = "/v1/auth/whoami") -> list[int]:
    return [http.get(url).status_code for _ in range(count)]


def test_faults_are_off_by_default(http):
    assert http.get("/_dev/faults").json() == {
        "latency": 0.0,
        "error_rate": 0.0,
        "rate_limit_rate": 0.0,
        "retry_after": 1.0,
        "expire_tokens": False,
        "fail_next": [],
        "seed": None,
        "calls": None,
        "body_fault": None,
        "list_version_lag": 0,
        "expire_issued_after": None,
    }
    assert _statuses(http, 20) == [200] * 20


def test_fail_next_answers_in_order_then_resumes(dev_vault, http):
    dev_vault.vault.faults.fail_next = [503, 429, 500, 503]

    answers = [http.get("/v1/auth/whoami") for _ in range(6)]

    assert [r.status_code for r in answers] == [503, 429, 500, 503, 200, 200]
    assert [r.json().get("error") for r in answers[:4]] == [
        "unavailable",
        "rate_limited",
        "internal_error",
        "unavailable",
    ]
    assert answers[1].headers["Retry-After"] == "1"
    assert "Retry-After" not in answers[0].headers
    assert dev_vault.vault.faults.fail_next == []


def test_fail_next_401_looks_like_an_auth_failure(dev_vault, http):
    dev_vault.vault.configure_faults(fail_next=[401])

    resp = http.get("/v1/secrets")

    assert resp.status_code == 401
    assert resp.json()["error"] == "authentication_required"
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_error_rate_one_answers_503_everywhere_under_v1(http):
    http.put("/_dev/faults", json={"error_rate": 1.0})

    for url in ("/v1/auth/whoami", "/v1/secrets", "/v1/secrets/a", "/v1/no-such-route"):
        resp = http.get(url)
        assert resp.status_code == 503
        assert resp.json() == {"error": "unavailable", "message": "service unavailable (injected fault)"}


def test_rate_limit_rate_one_answers_429_with_retry_after(http):
    http.put("/_dev/faults", json={"rate_limit_rate": 1.0, "retry_after": 2.5})

    resp = http.get("/v1/secrets")

    assert resp.status_code == 429
    assert resp.json()["error"] == "rate_limited"
    assert resp.headers["Retry-After"] == "2.5"


def test_faults_spare_admin_and_token_endpoints(dev_vault, http):
    http.put("/_dev/faults", json={"error_rate": 1.0})

    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(dev_vault.client_id, dev_vault.client_secret),
    )
    assert token.status_code == 200
    assert http.get("/_dev/stats").status_code == 200
    assert http.get("/_dev/health").json() == {"status": "ok"}


def test_seeded_random_faults_are_reproducible_and_roughly_proportional(http):
    settings = {"error_rate": 0.3, "rate_limit_rate": 0.2, "seed": 1234}
    http.put("/_dev/faults", json=settings)
    first = _statuses(http, 200)
    http.put("/_dev/faults", json={"seed": 1234})  # reseed: the same sequence again
    second = _statuses(http, 200)

    assert first == second
    assert set(first) == {200, 429, 503}
    assert 30 <= first.count(503) <= 90
    assert 15 <= first.count(429) <= 65


def test_fault_seed_from_the_start(start_dev_vault):
    sequences = []
    for _ in range(2):
        vault = start_dev_vault(faults=FaultConfig(error_rate=0.5, seed=99))
        with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
            sequences.append(_statuses(http, 40))

    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 503}


def test_expire_tokens_makes_every_token_expired(dev_vault, http):
    http.put("/_dev/faults", json={"expire_tokens": True})

    expired = [http.get(url) for url in ("/v1/auth/whoami", "/v1/secrets", "/v1/secrets/a")]
    missing = httpx.get(f"{dev_vault.url}/v1/auth/whoami")
    http.put("/_dev/faults", json={"expire_tokens": False})
    restored = http.get("/v1/auth/whoami")

    for resp in expired:
        assert resp.status_code == 401
        assert resp.json()["error"] == "token_expired"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"] == "authentication_required"
    assert restored.status_code == 200


def test_latency_delays_v1_answers_only(http):
    http.put("/_dev/faults", json={"latency": 0.2})

    started = time.monotonic()
    assert http.get("/v1/auth/whoami").status_code == 200
    slow = time.monotonic() - started
    started = time.monotonic()
    http.get("/_dev/health")
    fast = time.monotonic() - started

    assert slow >= 0.2
    assert fast < 0.2


def test_faults_from_startup_config(start_dev_vault):
    vault = start_dev_vault(faults=FaultConfig(fail_next=[503], rate_limit_rate=0.0))
    with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
        assert _statuses(http, 2) == [503, 200]
        assert http.get("/_dev/faults").json()["fail_next"] == []


def test_startup_config_is_copied_not_shared(start_dev_vault):
    config_faults = FaultConfig(fail_next=[503])
    vault = start_dev_vault(faults=config_faults)
    with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
        http.get("/v1/auth/whoami")

    assert config_faults.fail_next == [503]


def test_runtime_switching_and_reset(dev_vault, http):
    changed = http.put("/_dev/faults", json={"fail_next": [503], "retry_after": 3})
    merged = http.put("/_dev/faults", json={"error_rate": 0.5})
    reset = http.post("/_dev/faults/reset")

    assert changed.json()["fail_next"] == [503]
    assert merged.json()["retry_after"] == 3
    assert merged.json()["fail_next"] == [503]
    assert merged.json()["error_rate"] == 0.5
    assert reset.json() == FaultConfig().to_json()
    assert dev_vault.vault.faults == FaultConfig()


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "0.5"},
        {"error_rate": True},
        {"error_rate": None},
        {"rate_limit_rate": 2},
        {"error_rate": 0.6, "rate_limit_rate": 0.6},
        {"latency": -1},
        {"latency": 10_000},
        {"retry_after": -1},
        {"expire_tokens": "yes"},
        {"expire_tokens": 1},
        {"fail_next": 503},
        {"fail_next": [200]},
        {"fail_next": [600]},
        {"fail_next": ["503"]},
        {"fail_next": [True]},
        {"fail_next": [503] * 1001},
        {"seed": "x"},
        {"seed": 1.5},
        {"unknown": 1},
        [],
    ],
)
def test_bad_fault_settings_are_rejected_and_change_nothing(dev_vault, http, body):
    resp = http.put("/_dev/faults", json=body)

    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"
    assert dev_vault.vault.faults == FaultConfig()


def test_malformed_fault_body(http):
    resp = http.put("/_dev/faults", content=b"{")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_json"


def test_in_process_fault_switching_is_validated(dev_vault):
    with pytest.raises(ValueError, match="error_rate"):
        dev_vault.vault.configure_faults(error_rate=2)
    with pytest.raises(ValueError, match="unknown"):
        dev_vault.vault.configure_faults(nope=1)
    dev_vault.vault.faults = FaultConfig(latency=0.01)
    assert dev_vault.vault.faults.latency == 0.01


def test_faulted_requests_are_counted(dev_vault, http):
    dev_vault.vault.faults.fail_next = [503, 429]
    _statuses(http, 3, "/v1/secrets")

    stats = dev_vault.vault.stats.snapshot()
    assert stats.calls["list"] == 3
    assert stats.statuses == {503: 1, 429: 1, 200: 1}


# -- the switches of the ScaiVault fault matrix ---------------------------------------------------------------


@pytest.fixture
def seeded(dev_vault):
    dev_vault.vault.write("apps/db", {"password": "pw"}, metadata={"tags": ["db"]})
    return dev_vault


def test_calls_narrow_the_faults_to_some_call_kinds(seeded, http):
    http.put("/_dev/faults", json={"error_rate": 1.0, "calls": ["read"]})

    assert http.get("/v1/secrets/apps/db").status_code == 503
    assert http.get("/v1/secrets", params={"prefix": "apps/"}).status_code == 200
    assert http.get("/v1/auth/whoami").status_code == 200
    assert http.get("/v1/no-such-route").status_code == 404, "a route no call kind names is not faulted"
    assert seeded.vault.stats.count_injected("503") == 1


def test_calls_narrow_expire_tokens_too(seeded, http):
    http.put("/_dev/faults", json={"expire_tokens": True, "calls": ["list"]})

    assert http.get("/v1/secrets").json()["error"] == "token_expired"
    assert http.get("/v1/secrets/apps/db").status_code == 200
    assert seeded.vault.stats.snapshot().injected == {"expire_tokens": 1}


def test_429_without_retry_after(http):
    http.put("/_dev/faults", json={"rate_limit_rate": 1.0, "retry_after": None})

    resp = http.get("/v1/secrets")

    assert resp.status_code == 429
    assert resp.json()["error"] == "rate_limited"
    assert "Retry-After" not in resp.headers
    assert http.get("/_dev/faults").json()["retry_after"] is None


def test_body_fault_truncate_cuts_a_complete_answer_in_half(seeded, http):
    whole = http.get("/v1/secrets/apps/db").content
    http.put("/_dev/faults", json={"body_fault": "truncate"})

    resp = http.get("/v1/secrets/apps/db")

    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.content == whole[: len(whole) // 2]


def test_body_fault_malformed_is_not_json(seeded, http):
    http.put("/_dev/faults", json={"body_fault": "malformed"})

    resp = http.get("/v1/secrets", params={"prefix": "apps/"})

    assert resp.status_code == 200
    assert resp.content.endswith(b",}")
    with pytest.raises(json.JSONDecodeError):
        resp.json()


def test_body_fault_huge_is_a_valid_20_mib_answer(seeded, http):
    whole = http.get("/v1/secrets/apps/db").json()
    http.put("/_dev/faults", json={"body_fault": "huge"})

    resp = http.get("/v1/secrets/apps/db")

    assert len(resp.content) == 20 * 1024 * 1024
    body = resp.json()
    assert set(body.pop("padding")) == {"x"}
    assert body == whole


def test_body_fault_content_type_labels_json_as_html(seeded, http):
    whole = http.get("/v1/secrets/apps/db").content
    http.put("/_dev/faults", json={"body_fault": "content_type"})

    resp = http.get("/v1/secrets/apps/db")

    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.content == whole


def test_body_fault_html_answers_a_page_instead(seeded, http):
    http.put("/_dev/faults", json={"body_fault": "html"})

    resp = http.get("/v1/secrets/apps/db")

    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.text.startswith("<!DOCTYPE html>")
    assert "pw" not in resp.text


def test_body_fault_reset_drops_the_connection_mid_body(seeded, http):
    http.put("/_dev/faults", json={"body_fault": "reset"})

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.get("/v1/secrets/apps/db")
    http.put("/_dev/faults", json={"body_fault": None})
    assert http.get("/v1/secrets/apps/db").status_code == 200, "the server serves on"
    assert seeded.vault.stats.count_injected("reset") == 1


def test_body_faults_spare_error_answers(seeded, http):
    http.put("/_dev/faults", json={"body_fault": "truncate"})

    resp = http.get("/v1/secrets/nothing/here")

    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
    assert seeded.vault.stats.count_injected() == 0


def test_list_version_lag_reports_lower_versions_and_reads_stay_current(dev_vault, http):
    for n in range(3):
        dev_vault.vault.write("apps/db", {"n": n})
    dev_vault.vault.write("apps/new", {"n": 0})
    http.put("/_dev/faults", json={"list_version_lag": 2})

    listed = http.get("/v1/secrets", params={"prefix": "apps/"}).json()["secrets"]

    assert [(item["path"], item["version"]) for item in listed] == [("apps/db", 1), ("apps/new", 1)]
    assert http.get("/v1/secrets/apps/db").json()["version"] == 3
    assert dev_vault.vault.stats.snapshot().injected == {"list_version_lag": 1}


def test_expire_issued_after_expires_tokens_mid_way(dev_vault, http):
    def issue() -> str:
        answer = httpx.post(f"{dev_vault.url}/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(dev_vault.client_id, dev_vault.client_secret))  # fmt: skip
        return answer.json()["access_token"]

    old = issue()
    http.put("/_dev/faults", json={"expire_issued_after": 1})
    bearer = {"Authorization": f"Bearer {old}"}

    first = httpx.get(f"{dev_vault.url}/v1/secrets", headers=bearer)
    second = httpx.get(f"{dev_vault.url}/v1/secrets", headers=bearer)
    renewed = httpx.get(f"{dev_vault.url}/v1/secrets", headers={"Authorization": f"Bearer {issue()}"})

    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]) == (401, "token_expired")
    assert second.headers["WWW-Authenticate"] == "Bearer"
    assert renewed.status_code == 200
    assert http.get("/v1/secrets").status_code == 200, "static tokens do not expire"
    assert http.get("/_dev/faults").json()["expire_issued_after"] is None, "it fires once"
    assert dev_vault.vault.stats.snapshot().injected == {"expire_issued": 1}


def test_delete_secret_over_http(dev_vault, http):
    for n in range(3):
        dev_vault.vault.write("apps/db", {"n": n})

    rolled = http.post("/_dev/secrets/delete", json={"path": "apps/db", "keep": 1})
    deleted = http.post("/_dev/secrets/delete", json={"path": "apps/db"})
    gone = http.get("/v1/secrets/apps/db")
    http.put("/v1/secrets/apps/db", json={"data": {"n": "new"}})
    again = http.get("/v1/secrets/apps/db").json()

    assert rolled.json() == {"path": "apps/db", "deleted_versions": 2, "current_version": 1}
    assert deleted.json() == {"path": "apps/db", "deleted_versions": 1, "current_version": None}
    assert gone.status_code == 404
    assert (again["version"], again["data"]) == (1, {"n": "new"})
    assert dev_vault.vault.stats.snapshot().calls["write"] == 1, "admin calls are not counted"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"path": "missing/secret"}, 404, "not_found"),
        ({"path": "a//b"}, 400, "invalid_path"),
        ({}, 400, "invalid_request"),
        ({"path": "apps/db", "keep": -1}, 400, "invalid_request"),
        ({"path": "apps/db", "keep": True}, 400, "invalid_request"),
    ],
)
def test_delete_secret_refusals(seeded, http, body, status, code):
    resp = http.post("/_dev/secrets/delete", json=body)

    assert (resp.status_code, resp.json()["error"]) == (status, code)
    assert seeded.vault.store.get("apps/db").version == 1


@pytest.mark.parametrize(
    "body",
    [
        {"calls": ["token"]},
        {"calls": []},
        {"body_fault": "explode"},
        {"list_version_lag": -1},
        {"expire_issued_after": 1.5},
        {"retry_after": "none"},
    ],
)
def test_bad_fault_matrix_settings_are_rejected(dev_vault, http, body):
    resp = http.put("/_dev/faults", json=body)

    assert resp.status_code == 400
    assert dev_vault.vault.faults == FaultConfig()
