"""The real ``scaivault-operator`` console script: ``dev-vault`` serving the quickstart's curl commands, ``version``.

The curl commands below are copied verbatim from the quickstart (``docs`` of ScaiVault); only the base URL
``https://scaivault.scailabs.ai`` is replaced, at run time, by the local server's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import scaivault_operator

SCRIPT = Path(sys.executable).with_name("scaivault-operator")
QUICKSTART_BASE_URL = "https://scaivault.scailabs.ai"

WHOAMI = """curl -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
     https://scaivault.scailabs.ai/v1/auth/whoami"""

CREATE = """curl -X PUT https://scaivault.scailabs.ai/v1/secrets/environments/production/salesforce/api-credentials \\
  -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "data": {
      "client_id": "3MVG9...",
      "client_secret": "REDACTED"
    },
    "secret_type": "json",
    "metadata": {
      "description": "Salesforce OAuth credentials",
      "tags": ["salesforce", "production"]
    }
  }'"""

READ = """curl -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
     https://scaivault.scailabs.ai/v1/secrets/environments/production/salesforce/api-credentials"""

UPDATE = """curl -X PUT https://scaivault.scailabs.ai/v1/secrets/environments/production/salesforce/api-credentials \\
  -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "data": {
      "client_id": "3MVG9...",
      "client_secret": "NEW_REDACTED"
    },
    "secret_type": "json"
  }'"""

READ_V1 = """curl -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
     "https://scaivault.scailabs.ai/v1/secrets/environments/production/salesforce/api-credentials?version=1\""""

LIST = """curl -H "Authorization: Bearer $SCAIVAULT_TOKEN" \\
     "https://scaivault.scailabs.ai/v1/secrets?prefix=environments/production/\""""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dev-vault exited early with status {process.returncode}")
        try:
            if httpx.get(f"{url}/_dev/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"dev-vault did not answer on {url} within {timeout}s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``scaivault-operator dev-vault`` as a subprocess; yields (base URL, stderr log file)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("dev-vault") / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(SCRIPT), "dev-vault", "--port", str(port), "--token", "t=secrets:read,secrets:write"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url, log
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def _curl(command: str, base_url: str) -> dict:
    result = subprocess.run(
        ["bash", "-c", command.replace(QUICKSTART_BASE_URL, base_url)],
        env={**os.environ, "SCAIVAULT_TOKEN": "t"},
        capture_output=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_quickstart_curl_commands(served):
    url, log = served

    whoami = _curl(WHOAMI, url)
    created = _curl(CREATE, url)
    read = _curl(READ, url)
    updated = _curl(UPDATE, url)
    v1 = _curl(READ_V1, url)
    listed = _curl(LIST, url)

    assert whoami["identity_type"] == "service"
    assert whoami["scopes"] == ["secrets:read", "secrets:write"]
    assert (created["version"], created["created"]) == (1, True)
    assert read["data"] == {"client_id": "3MVG9...", "client_secret": "REDACTED"}
    assert (updated["version"], updated["previous_version"]) == (2, 1)
    assert v1["data"]["client_secret"] == "REDACTED"
    assert [(s["version"], s["tags"]) for s in listed["secrets"]] == [(2, ["salesforce", "production"])]
    assert (listed["cursor"], listed["has_more"]) == (None, False)
    logged = log.read_text()
    assert "route=/v1/secrets/{path} status=201" in logged
    assert "Bearer" not in logged
    assert "REDACTED" not in logged


def test_served_over_httpx_as_well(served):
    # The same server without curl, so the console script is covered on machines without it.
    url, _ = served
    resp = httpx.get(f"{url}/v1/auth/whoami", headers={"Authorization": "Bearer t"})
    assert resp.json()["scopes"] == ["secrets:read", "secrets:write"]


def test_version_subcommand():
    result = subprocess.run([str(SCRIPT), "version"], capture_output=True, text=True, check=True, timeout=30)
    assert result.stdout.strip() == scaivault_operator.__version__


def test_bad_flags_exit_2_without_echoing_the_token():
    result = subprocess.run(
        [str(SCRIPT), "dev-vault", "--token", "sup3rs3cret=secrets:read,bad scope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "scope" in result.stderr
    assert "sup3rs3cret" not in result.stderr


def test_port_in_use_exits_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(SCRIPT), "dev-vault", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    assert "error" in result.stderr
