"""Construction: base URL and TLS settings, and what ``repr``/``str`` of the public objects may show."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import httpx
import pytest
from client_helpers import IDENTITY_BODY, ClientFactory, json_response, secret_body

from scaivault_operator._cogs.scaivault import (
    ClientCredentials,
    ConfigurationError,
    ScaiVaultClient,
    Secret,
    StaticToken,
)

SECRET_VALUE = "s3cr3t-value-in-data"
TOKEN_VALUE = "tok-value-never-shown"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "vault.example",
        "ftp://vault.example",
        "http://",
        "https://vault.example:abc",
        "https://vault.example:99999",
        "https://vault.example/?tenant=a",
        "https://vault.example/#frag",
        "https://user:pw-never-shown@vault.example",
        "https://vault\x00.example",
    ],
)
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ScaiVaultClient(url, StaticToken("t"))
    assert "pw-never-shown" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://vault.example", "https://vault.example"),
        ("https://vault.example/", "https://vault.example"),
        ("http://127.0.0.1:8200/prefix/", "http://127.0.0.1:8200/prefix"),
        ("https://[::1]:8200", "https://[::1]:8200"),
    ],
)
async def test_base_url_is_normalised(url: str, base: str) -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return json_response(200, IDENTITY_BODY)

    async with ScaiVaultClient(url, StaticToken("t"), transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == base
        await client.whoami()
    assert str(seen[0]) == base + "/v1/auth/whoami"


def test_garbage_ca_data() -> None:
    with pytest.raises(ConfigurationError) as info:
        ScaiVaultClient("https://vault.example", StaticToken("t"), ca_data="-----BEGIN CERTIFICATE-----\ngarbage")
    assert "garbage" not in str(info.value)


def test_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ScaiVaultClient("https://vault.example", StaticToken("t"), ca_file=tmp_path / "missing.pem")


def test_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigurationError):
        ScaiVaultClient("https://vault.example", StaticToken("t"), ca_file=bogus)


@pytest.mark.parametrize("ca", [{"ca_data": "x"}, {"ca_file": "/etc/ca.pem"}])
def test_ca_with_verification_off(ca: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        ScaiVaultClient("https://vault.example", StaticToken("t"), verify=False, **ca)  # type: ignore[arg-type]


def _first_certificate() -> str:
    pem = Path(certifi.where()).read_text()
    return pem[pem.index("-----BEGIN CERTIFICATE-----") : pem.index("-----END CERTIFICATE-----") + 25]


async def test_valid_ca_bundle_is_used() -> None:
    for kwargs in ({"ca_file": certifi.where()}, {"ca_data": _first_certificate()}):
        client = ScaiVaultClient("https://vault.example", StaticToken("t"), **kwargs)  # type: ignore[arg-type]
        try:
            context = client._http._transport._ssl  # type: ignore[attr-defined]
            assert isinstance(context, ssl.SSLContext)
            assert context.verify_mode == ssl.CERT_REQUIRED
        finally:
            await client.aclose()


async def test_verify_off_is_allowed_without_ca() -> None:
    client = ScaiVaultClient("https://vault.example", StaticToken("t"), verify=False)
    try:
        assert client._http._transport._ssl is False  # type: ignore[attr-defined]
    finally:
        await client.aclose()


async def test_reprs_never_show_secrets(make_client: ClientFactory, tmp_path: Path) -> None:
    literal = StaticToken(TOKEN_VALUE)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN_VALUE)
    from_file = StaticToken(path=token_file)
    assert await from_file.token() == TOKEN_VALUE
    credentials = ClientCredentials("https://auth.test/oauth/token", "ci-client", "ci-secret-never-shown")
    client, _ = make_client(lambda request: json_response(200, secret_body("a/b", data={"pw": SECRET_VALUE})))
    secret = await client.read("a/b")
    assert secret.data == {"pw": SECRET_VALUE}  # the value is there...
    assert SECRET_VALUE in str(secret.model_dump())

    shown = {
        "literal": (repr(literal), str(literal)),
        "file": (repr(from_file), str(from_file)),
        "credentials": (repr(credentials), str(credentials)),
        "client": (repr(client), str(client)),
        "secret": (repr(secret), str(secret), f"{secret}", f"{secret!r}"),
    }
    for texts in shown.values():
        for text in texts:
            assert TOKEN_VALUE not in text
            assert SECRET_VALUE not in text  # ...but never shown
            assert "ci-secret-never-shown" not in text
    assert "<redacted>" in repr(literal)
    assert str(token_file) in repr(from_file)
    assert "ci-client" in repr(credentials)
    assert "https://vault.test" in repr(client)
    assert "a/b" in repr(secret)


def test_secret_model_repr_hides_data_even_when_built_directly() -> None:
    secret = Secret(path="p", version=1, data={"password": SECRET_VALUE})
    assert SECRET_VALUE not in repr(secret)
    assert SECRET_VALUE not in str(secret)
    assert "password" not in repr(secret)
