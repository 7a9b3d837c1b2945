"""transport.AiohttpTransport: httpx requests sent through aiohttp, against a real local server (HTTP and HTTPS).

What httpx's own transport did must still hold: the request as httpx built it (method, quoted path, query, headers,
body), the answer's status, headers and body — decoded by httpx, streamed as it arrives — connections reused, and
every failure an httpx error of the same kind (connect, read timeout, a cut-off answer), naming no token.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from scaivault_operator._cogs.transport import AiohttpTransport

TOKEN = "canary-token-5b1e0d"


class Server:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.peers: set[Any] = set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        self.seen.append({"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                          "body": await request.read()})  # fmt: skip
        route = request.path.rsplit("/", 1)[-1]
        if route == "gzip":
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=gzip.compress(b'{"ok": true}'), headers=headers)
        if route == "lines":
            response = web.StreamResponse()
            await response.prepare(request)
            for n in range(3):
                await response.write(f'{{"n": {n}}}\n'.encode())
                await asyncio.sleep(0.05)
            return response
        if route == "slow":
            await asyncio.sleep(2)
        if route == "cut":
            response = web.StreamResponse(headers={"Content-Length": "100"})
            await response.prepare(request)
            await response.write(b"only part")
            assert request.transport is not None
            request.transport.close()
            return response
        return web.json_response({"echo": request.path}, status=201 if request.method == "PATCH" else 200,
                                 headers={"X-Answer": "yes"})  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


async def test_a_request_arrives_as_httpx_built_it_and_the_answer_comes_back(server: Server) -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport(), base_url=server.url) as client:
        response = await client.patch("/v1/secrets/apps%2Fdb%20x", params={"version": "3"}, json={"a": 1},
                                      headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        again = await client.get("/again")
    assert (response.status_code, response.headers["X-Answer"]) == (201, "yes")
    assert response.json() == {"echo": "/v1/secrets/apps/db x"}
    seen = server.seen[0]
    assert (seen["method"], seen["path"], seen["body"]) == ("PATCH", "/v1/secrets/apps%2Fdb%20x?version=3", b'{"a":1}')
    assert seen["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert again.status_code == 200
    assert len(server.peers) == 1  # one kept-alive connection for both


async def test_httpx_decodes_a_compressed_answer(server: Server) -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        response = await client.get(f"{server.url}/gzip")
    assert response.json() == {"ok": True}


async def test_a_streamed_answer_arrives_line_by_line(server: Server) -> None:
    arrived: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    async with (
        httpx.AsyncClient(transport=AiohttpTransport()) as client,
        client.stream("GET", f"{server.url}/lines") as response,
    ):
        async for line in response.aiter_lines():
            arrived.append((line, loop.time()))
    assert [line for line, _ in arrived] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert arrived[-1][1] - arrived[0][1] > 0.05  # not buffered to the end


async def test_failures_are_httpx_errors_of_the_same_kind_without_the_token(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=AiohttpTransport(), headers=headers) as client:
        with pytest.raises(httpx.ReadTimeout) as slow:
            await client.get(f"{server.url}/slow", timeout=httpx.Timeout(5, read=0.2))
        with pytest.raises(httpx.RemoteProtocolError) as cut:
            await client.get(f"{server.url}/cut")
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get("http://127.0.0.1:9/")  # discard: nothing listens
    for raised in (slow, cut, refused):
        assert TOKEN not in str(raised.value)
    assert "127.0.0.1" in str(refused.value)


async def test_closing_twice_is_harmless_and_a_closed_transport_sends_nothing(server: Server) -> None:
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(f"{server.url}/x")
    await transport.aclose()
    with pytest.raises(RuntimeError):
        await transport.handle_async_request(httpx.Request("GET", f"{server.url}/x"))


# -- TLS ---------------------------------------------------------------------------------------------------------


def _pki(tmp: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1 and its key (files), and the certificate as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp / "cert.pem").write_text(pem)
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))  # fmt: skip
    return tmp / "cert.pem", tmp / "key.pem", pem


async def test_tls_is_verified_with_the_given_context(tmp_path: Path) -> None:
    cert, key, pem = _pki(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport(ssl=ssl.create_default_context(cadata=pem))) as good:
            assert (await good.get(url)).json() == {"tls": True}
        async with httpx.AsyncClient(transport=AiohttpTransport(ssl=True)) as system:
            with pytest.raises(httpx.ConnectError):  # not signed by a CA the system trusts
                await system.get(url)
        async with httpx.AsyncClient(transport=AiohttpTransport(ssl=False)) as unverified:
            assert (await unverified.get(url)).status_code == 200
    finally:
        await runner.cleanup()


def test_a_copy_is_the_same_transport() -> None:
    """lightkube deep-copies its connection parameters, transport included: the pool must be shared, not copied."""
    import copy

    transport = AiohttpTransport(ssl=ssl.create_default_context())
    assert copy.deepcopy({"transport": transport})["transport"] is transport


async def test_the_proxy_of_the_environment_is_used_unless_no_proxy_exempts_the_host(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the test server plays the proxy: it answers for any host
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    for name in ("http_proxy", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        response = await client.get("http://vault.invalid/v1/secrets/a")
        with pytest.raises(httpx.ConnectError):  # exempt: sent directly, and .invalid never resolves
            await client.get("http://direct.invalid/x")
    async with httpx.AsyncClient(transport=AiohttpTransport(trust_env=False)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://vault.invalid/v1/secrets/a")
    assert response.status_code == 200
    assert [seen["headers"]["Host"] for seen in server.seen] == ["vault.invalid"]
