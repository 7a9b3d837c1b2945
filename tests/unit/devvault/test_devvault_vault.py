"""``DevVault`` used directly on the test's event loop, and ``run_in_thread``'s lifecycle."""

from __future__ import annotations

import socket

import httpx
import pytest

from scaivault_operator.devvault import DevVault, DevVaultConfig, run_in_thread
from scaivault_operator.devvault._vault import _url_host

TOKENS = {"tok": {"secrets:read", "secrets:write"}}


async def test_async_context_manager_on_the_callers_loop():
    async with DevVault(DevVaultConfig(port=0, tokens=TOKENS)) as vault:
        assert vault.url is not None
        vault.write("a/b", {"k": "v"})
        async with httpx.AsyncClient(base_url=vault.url, headers={"Authorization": "Bearer tok"}) as http:
            resp = await http.get("/v1/secrets/a/b")
        with pytest.raises(RuntimeError, match="already started"):
            await vault.start()

    assert resp.json()["data"] == {"k": "v"}
    assert vault.stats.count_reads("a/b", 1) == 1


async def test_stop_closes_the_listener():
    vault = DevVault(DevVaultConfig(port=0, tokens=TOKENS))
    url = await vault.start()
    await vault.stop()

    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/_dev/health")


def test_write_validates_paths_and_inherits():
    vault = DevVault(DevVaultConfig(port=0))
    vault.write("a", {"n": 1}, secret_type="env", metadata={"tags": ["t"]})
    second = vault.write("a", {"n": 2}, secret_type=None)

    assert (second.version, second.secret_type, second.metadata) == (2, "env", {"tags": ["t"]})
    for bad in ("", "a//b", "../x", "a\ud800"):
        with pytest.raises(ValueError, match="path"):
            vault.write(bad, {})


def test_run_in_thread_reports_startup_errors_in_the_caller():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = DevVaultConfig(port=busy.getsockname()[1])
        with pytest.raises(OSError, match="in use"), run_in_thread(config):
            pass


def test_run_in_thread_serves_then_stops():
    with run_in_thread(DevVaultConfig(port=0, tokens=TOKENS)) as running:
        assert httpx.get(f"{running.url}/_dev/health").status_code == 200
        assert running.vault.url == running.url

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/_dev/health")


def test_bad_config_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="port"):
        DevVault(DevVaultConfig(port=-5))


@pytest.mark.parametrize(
    ("host", "url_host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),  # noqa: S104 - a URL, not a bind
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("localhost", "localhost"),
    ],
)
def test_url_host(host, url_host):
    assert _url_host(host) == url_host


async def test_non_loopback_bind_warns(caplog):
    async with DevVault(DevVaultConfig(host="0.0.0.0", port=0)):  # noqa: S104 - on purpose, briefly
        pass

    assert "beyond loopback" in caplog.text
