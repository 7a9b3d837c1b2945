"""Secrets API of the dev vault: versions, 404s, listing and pagination, bad input (always 4xx), paths."""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest


@pytest.fixture
def http(dev_vault) -> httpx.Client:
    with httpx.Client(base_url=dev_vault.url, headers=dev_vault.headers(), timeout=10.0) as client:
        yield client


def _raw(http: httpx.Client, method: str, raw_path: str, **kwargs) -> httpx.Response:
    """Send ``raw_path`` exactly as given (httpx would otherwise normalise percent-escapes)."""
    return http.request(method, http.base_url.copy_with(raw_path=raw_path.encode("ascii")), **kwargs)


def _error(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) >= {"error", "message"}
    return resp.status_code, body["error"]


# -- versions and 404s ---------------------------------------------------------------------------------


def test_new_secret_defaults(http):
    created = http.put("/v1/secrets/a/b", json={"data": {"k": "v"}})
    read = http.get("/v1/secrets/a/b").json()

    assert created.json()["secret_type"] == "json"
    assert (read["secret_type"], read["metadata"], read["version"]) == ("json", {}, 1)


def test_versions_are_immutable_and_fields_inherit(http):
    http.put("/v1/secrets/a", json={"data": {"n": 1}, "secret_type": "password", "metadata": {"tags": ["x"]}})
    http.put("/v1/secrets/a", json={"data": {"n": 2}})
    http.put("/v1/secrets/a", json={"data": {"n": 3}, "secret_type": "json", "metadata": {"owner": "me"}})

    versions = [http.get("/v1/secrets/a", params={"version": v}).json() for v in (1, 2, 3)]
    assert [v["data"]["n"] for v in versions] == [1, 2, 3]
    assert [v["secret_type"] for v in versions] == ["password", "password", "json"]
    assert [v["metadata"] for v in versions] == [{"tags": ["x"]}, {"tags": ["x"]}, {"owner": "me"}]
    assert http.get("/v1/secrets/a").json()["version"] == 3


def test_unknown_path_and_unknown_version_are_distinct_404s(http):
    http.put("/v1/secrets/a", json={"data": {}})

    assert _error(http.get("/v1/secrets/missing")) == (404, "not_found")
    assert _error(http.get("/v1/secrets/missing", params={"version": 1})) == (404, "not_found")
    assert _error(http.get("/v1/secrets/a", params={"version": 2})) == (404, "version_not_found")
    assert _error(http.get("/v1/secrets/a", params={"version": 2**63 - 1})) == (404, "version_not_found")


@pytest.mark.parametrize("version", ["0", "-1", "abc", "1.0", "+1", " 1", "", "1e3", str(2**63), "9" * 30])
def test_bad_version_parameter(http, version):
    http.put("/v1/secrets/a", json={"data": {}})

    assert _error(http.get("/v1/secrets/a", params={"version": version})) == (400, "invalid_request")


def test_repeated_query_parameter_is_rejected(http):
    http.put("/v1/secrets/a", json={"data": {}})

    assert _error(http.get("/v1/secrets/a?version=1&version=1")) == (400, "invalid_request")


# -- listing -------------------------------------------------------------------------------------------


def test_pagination_walks_every_secret_once_in_order(dev_vault, http):
    paths = [f"apps/svc-{i:02d}/config" for i in range(23)]
    for path in reversed(paths):
        dev_vault.vault.write(path, {"i": path})
    dev_vault.vault.write("other/x", {})

    seen, pages, cursor = [], [], None
    while True:
        params = {"prefix": "apps/", "limit": 7} | ({"cursor": cursor} if cursor else {})
        page = http.get("/v1/secrets", params=params).json()
        pages.append(page)
        seen += [item["path"] for item in page["secrets"]]
        cursor = page["cursor"]
        if not page["has_more"]:
            break

    assert seen == paths
    assert [len(p["secrets"]) for p in pages] == [7, 7, 7, 2]
    assert [p["has_more"] for p in pages] == [True, True, True, False]
    assert pages[-1]["cursor"] is None
    assert all(isinstance(p["cursor"], str) for p in pages[:-1])


def test_exact_page_boundary_has_no_empty_trailing_page(dev_vault, http):
    for i in range(4):
        dev_vault.vault.write(f"p/{i}", {})

    first = http.get("/v1/secrets", params={"limit": 2}).json()
    second = http.get("/v1/secrets", params={"limit": 2, "cursor": first["cursor"]}).json()

    assert first["has_more"] is True
    assert [s["path"] for s in second["secrets"]] == ["p/2", "p/3"]
    assert second == {"secrets": second["secrets"], "cursor": None, "has_more": False}


def test_prefix_is_a_plain_string_prefix(dev_vault, http):
    for path in ["app", "apps/a", "application/b", "ap/c", "b/apps"]:
        dev_vault.vault.write(path, {})

    def listed(prefix: str) -> list[str]:
        return [s["path"] for s in http.get("/v1/secrets", params={"prefix": prefix}).json()["secrets"]]

    assert listed("app") == ["app", "application/b", "apps/a"]
    assert listed("apps/") == ["apps/a"]
    assert listed("") == ["ap/c", "app", "application/b", "apps/a", "b/apps"]
    assert listed("zzz") == []
    assert [s["path"] for s in http.get("/v1/secrets").json()["secrets"]] == listed("")


def test_list_items_show_current_version_and_tags(dev_vault, http):
    dev_vault.vault.write("t/list", {}, metadata={"tags": ["a", "b"]})
    dev_vault.vault.write("t/list", {"v": 2})
    dev_vault.vault.write("t/not-a-list", {}, metadata={"tags": "a"})
    dev_vault.vault.write("t/mixed", {}, metadata={"tags": ["a", 1]})
    dev_vault.vault.write("t/typed", {}, secret_type="password")

    items = {s["path"]: s for s in http.get("/v1/secrets", params={"prefix": "t/"}).json()["secrets"]}

    assert items["t/list"]["tags"] == ["a", "b"]
    assert items["t/list"]["version"] == 2
    assert items["t/not-a-list"]["tags"] == []
    assert items["t/mixed"]["tags"] == []
    assert items["t/typed"]["secret_type"] == "password"
    assert set(items["t/list"]) == {"path", "secret_type", "version", "updated_at", "tags"}


def test_default_and_maximum_limit(start_dev_vault):
    vault = start_dev_vault(list_default_limit=3, list_max_limit=5)
    for i in range(6):
        vault.vault.write(f"s/{i}", {})
    with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
        default = http.get("/v1/secrets").json()
        maximum = http.get("/v1/secrets", params={"limit": 5}).json()
        over = http.get("/v1/secrets", params={"limit": 6})

    assert len(default["secrets"]) == 3
    assert len(maximum["secrets"]) == 5
    assert _error(over) == (400, "invalid_request")


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "", "1.5", "10" * 20])
def test_limit_out_of_range(http, limit):
    assert _error(http.get("/v1/secrets", params={"limit": limit})) == (400, "invalid_request")


@pytest.mark.parametrize("limit", ["1", "1000"])
def test_limit_bounds_are_inclusive(http, limit):
    assert http.get("/v1/secrets", params={"limit": limit}).status_code == 200


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "a b",
        "%%%",
        "A",  # not a whole base64 quantum
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        base64.urlsafe_b64encode(b"\x00x").decode(),  # not a valid path
        base64.urlsafe_b64encode(b"a//b").decode(),
    ],
)
def test_garbage_cursor(http, cursor):
    assert _error(http.get("/v1/secrets", params={"cursor": cursor})) == (400, "invalid_cursor")


@pytest.mark.parametrize("prefix", ["a//b", "/a", "../x", "a/./b", "a\x00", "x" * 1025])
def test_invalid_prefix(http, prefix):
    assert _error(http.get("/v1/secrets", params={"prefix": prefix})) == (400, "invalid_path")


def test_non_utf8_query_is_rejected(http):
    assert _error(_raw(http, "GET", "/v1/secrets?prefix=%FF")) == (400, "invalid_request")


# -- paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("a%20b/c", "a b/c"),
        ("caf%C3%A9/%D0%BA%D0%BB%D1%8E%D1%87", "café/ключ"),
        ("db%231/x%3Fy", "db#1/x?y"),
        ("a%2Bb/c+d", "a+b/c+d"),
        ("%2E%2E%2E/x", ".../x"),
    ],
)
def test_percent_encoded_paths(http, raw, path):
    written = _raw(http, "PUT", f"/v1/secrets/{raw}", json={"data": {"k": 1}})
    read = _raw(http, "GET", f"/v1/secrets/{raw}")
    listed = http.get("/v1/secrets").json()["secrets"]

    assert written.status_code == 201
    assert written.json()["path"] == path
    assert read.json()["path"] == path
    assert [s["path"] for s in listed] == [path]


@pytest.mark.parametrize(
    "raw",
    [
        "",  # empty path
        "a/",
        "a//b",
        "%2E%2E/b",
        "a/%2e%2e/b",
        "a/%2E/b",
        "a%2Fb",  # an encoded '/' inside a segment
        "a%2fb",
        "a%zz",
        "a%2",
        "a%FF",  # not UTF-8
        "a%C3",
        "a%00b",  # control character
        "a%0Ab",
        "x" * 1025,
    ],
)
def test_invalid_paths(http, raw):
    for method in ("GET", "PUT"):
        resp = _raw(http, method, f"/v1/secrets/{raw}", json={"data": {}})
        assert _error(resp) == (400, "invalid_path"), (method, raw)


def test_longest_path_is_accepted(http):
    path = "/".join(["x" * 100] * 10) + "/" + "y" * 14
    assert len(path) == 1024

    assert http.put(f"/v1/secrets/{path}", json={"data": {}}).status_code == 201


def test_dot_segments_are_resolved_before_routing(http):
    # Like any HTTP server, aiohttp resolves a literal "/../" before routing; only encoded dots reach us.
    http.put("/v1/secrets/b", json={"data": {"k": "b"}})

    assert _raw(http, "GET", "/v1/secrets/a/../b").json()["path"] == "b"


# -- bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"{'data': {}}", "invalid_json"),
        (b'{"data": NaN}', "invalid_json"),
        (b'{"data": {"x": Infinity}}', "invalid_json"),
        (b'{"data": {"x": 1e999}}', "invalid_json"),
        (b'{"data": {"x": "\xff"}}', "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b"[]", "invalid_request"),
        (b'"data"', "invalid_request"),
        (b"null", "invalid_request"),
        (b"1", "invalid_request"),
        (b"{}", "invalid_request"),
        (b'{"data": null}', "invalid_request"),
        (b'{"data": []}', "invalid_request"),
        (b'{"data": "x"}', "invalid_request"),
        (b'{"data": {}, "secret_type": 5}', "invalid_request"),
        (b'{"data": {}, "secret_type": "\\ud800"}', "invalid_request"),
        (b'{"data": {}, "metadata": []}', "invalid_request"),
        (b'{"data": {}, "metadata": "tags"}', "invalid_request"),
    ],
)
def test_bad_write_bodies_are_4xx(http, content, code):
    resp = http.put("/v1/secrets/a", content=content)

    assert _error(resp) == (400, code)
    assert http.get("/v1/secrets/a").status_code == 404


def test_unusual_but_valid_json_is_stored_faithfully(http):
    data = {"nested": {"deep": [1, 2.5, None, True, "\u00e9\U0001f600"]}, "big": 2**80, "lone": "\ud800"}
    body = json.dumps({"data": data, "secret_type": None}).encode()  # httpx cannot encode a lone surrogate
    assert http.put("/v1/secrets/a", content=body).status_code == 201

    assert http.get("/v1/secrets/a").json()["data"] == data


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_content_type_is_not_required(http, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    resp = http.put("/v1/secrets/a", content=b'{"data": {"k": "v"}}', headers=headers)

    assert resp.status_code == 201


def test_body_limit_default_is_one_mebibyte(http):
    filler = "x" * (1024 * 1024 - len('{"data": {"k": ""}}'))
    fits = http.put("/v1/secrets/a", content=f'{{"data": {{"k": "{filler}"}}}}'.encode())
    too_big = http.put("/v1/secrets/b", content=f'{{"data": {{"k": "{filler}x"}}}}'.encode())

    assert fits.status_code == 201
    assert _error(too_big) == (413, "payload_too_large")
    assert too_big.headers["Content-Type"].startswith("application/json")


def test_body_limit_is_configurable_and_covers_chunked_bodies(start_dev_vault):
    vault = start_dev_vault(max_body=100)

    def chunks():
        yield b'{"data": {"k": "'
        yield b"x" * 200
        yield b'"}}'

    with httpx.Client(base_url=vault.url, headers=vault.headers()) as http:
        sized = http.put("/v1/secrets/a", json={"data": {"k": "x" * 200}})
        chunked = http.put("/v1/secrets/a", content=chunks())
        small = http.put("/v1/secrets/a", json={"data": {"k": "x"}})
        form = http.post("/oauth/token", content=b"grant_type=" + b"x" * 200)

    assert _error(sized) == (413, "payload_too_large")
    assert _error(chunked) == (413, "payload_too_large")
    assert small.status_code == 201
    assert _error(form) == (413, "payload_too_large")


# -- routing and unexpected errors ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/v1", "/v1/secret", "/v2/secrets/a", "/v1/auth/whoami/x", "/_dev/nope"])
def test_unknown_routes_are_json_404(http, url):
    assert _error(http.get(url)) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("POST", "/v1/secrets/a", {"GET", "PUT"}),
        ("DELETE", "/v1/secrets/a", {"GET", "PUT"}),
        ("PUT", "/v1/secrets", {"GET"}),
        ("POST", "/v1/auth/whoami", {"GET"}),
        ("GET", "/oauth/token", {"POST"}),
    ],
)
def test_wrong_method_is_json_405(http, method, url, allowed):
    resp = http.request(method, url)

    assert _error(resp) == (405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(",")) == allowed


def test_unexpected_exception_is_500_without_details(dev_vault, http, monkeypatch, caplog):
    def broken_get(path, version=None):
        raise RuntimeError("the password is " + "".join(["hun", "ter2"]))  # not on one source line

    monkeypatch.setattr(dev_vault.vault.store, "get", broken_get)
    with caplog.at_level(logging.INFO, logger="scaivault_operator.devvault"):
        resp = http.get("/v1/secrets/a")

    assert _error(resp) == (500, "internal_error")
    assert "hunter2" not in resp.text
    assert "RuntimeError" in caplog.text
    assert "hunter2" not in caplog.text


def test_access_log_has_route_and_status_but_no_credentials(dev_vault, http, caplog):
    with caplog.at_level(logging.INFO, logger="scaivault_operator.devvault.access"):
        http.put("/v1/secrets/a", json={"data": {"password": "hunter2"}})
        http.get("/v1/secrets", params={"prefix": "a", "limit": 5, "access_token": "leaked"})

    lines = [r.getMessage() for r in caplog.records if r.name == "scaivault_operator.devvault.access"]
    assert lines[0].startswith("PUT /v1/secrets/a route=/v1/secrets/{path} status=201 duration_ms=")
    assert lines[1].startswith("GET /v1/secrets?prefix=a&limit=5&access_token=<redacted> route=/v1/secrets status=200")
    for secret in ("hunter2", "leaked", dev_vault.rw_token):
        assert secret not in caplog.text
