"""The authenticator: static tokens by digest, OAuth clients, JWT minting, expiry on an injected clock."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from scaivault_operator.devvault._auth import (
    AuthenticationError,
    Authenticator,
    ClientError,
    check_client,
    check_scopes,
    check_token,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock) -> Authenticator:
    return Authenticator(
        tokens={"static-token": {"secrets:read"}},
        clients={"client": ("secret", {"secrets:read", "secrets:write"})},
        token_ttl=60,
        clock=clock,
    )


def test_static_token_identity(auth):
    identity = auth.identify("static-token")

    assert identity.identity_id == "token:" + hashlib.sha256(b"static-token").hexdigest()[:12]
    assert identity.identity_type == "service"
    assert identity.scopes == {"secrets:read"}


def test_tokens_are_held_as_digests_only(auth):
    assert "static-token" not in repr(vars(auth))


@pytest.mark.parametrize("token", ["", "unknown", "a b", "caf\u00e9", "x" * 5000, "a.b.c", "static-token "])
def test_unknown_or_malformed_tokens(auth, token):
    with pytest.raises(AuthenticationError) as raised:
        auth.identify(token)
    assert raised.value.code == "authentication_required"


def test_add_replace_and_revoke(auth):
    auth.add_token("static-token", set())
    assert auth.identify("static-token").scopes == frozenset()

    assert auth.revoke_token("static-token") is True
    assert auth.revoke_token("static-token") is False
    assert auth.revoke_token("never-seen") is False
    assert auth.revoke_token("a b") is False
    with pytest.raises(AuthenticationError):
        auth.identify("static-token")


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_issue_and_identify(auth, clock):
    issued = auth.issue(auth.authenticate_client("client", "secret"), None)

    assert issued.expires_in == 60
    assert issued.scopes == {"secrets:read", "secrets:write"}
    claims = _claims(issued.access_token)
    assert claims["sub"] == "client"
    assert claims["scope"] == "secrets:read secrets:write"
    assert (claims["iat"], claims["exp"]) == (1000, 1060)
    identity = auth.identify(issued.access_token)
    assert (identity.identity_id, identity.identity_type) == ("client:client", "client")
    assert identity.scopes == {"secrets:read", "secrets:write"}


def test_issued_tokens_are_unique(auth):
    client = auth.authenticate_client("client", "secret")
    assert auth.issue(client, None).access_token != auth.issue(client, None).access_token


def test_issued_token_expires_exactly_at_exp(auth, clock):
    token = auth.issue(auth.authenticate_client("client", "secret"), None).access_token

    clock.now = 1059.9
    auth.identify(token)
    clock.now = 1060
    with pytest.raises(AuthenticationError) as raised:
        auth.identify(token)
    assert raised.value.code == "token_expired"


def test_revoked_issued_token(auth):
    token = auth.issue(auth.authenticate_client("client", "secret"), None).access_token

    assert auth.revoke_token(token) is True
    with pytest.raises(AuthenticationError) as raised:
        auth.identify(token)
    assert raised.value.code == "authentication_required"


def test_key_is_per_instance(auth, clock):
    other = Authenticator(tokens={}, clients={"client": ("secret", {"secrets:read"})}, token_ttl=60, clock=clock)
    foreign = other.issue(other.authenticate_client("client", "secret"), None).access_token

    with pytest.raises(AuthenticationError):
        auth.identify(foreign)


def test_scope_narrowing_and_refusal(auth):
    client = auth.authenticate_client("client", "secret")

    assert auth.issue(client, frozenset({"secrets:read"})).scopes == {"secrets:read"}
    assert auth.issue(client, frozenset()).scopes == frozenset()
    with pytest.raises(ClientError) as raised:
        auth.issue(client, frozenset({"secrets:read", "admin"}))
    assert raised.value.code == "invalid_scope"
    assert "admin" in raised.value.message


@pytest.mark.parametrize(("client_id", "secret"), [("client", "wrong"), ("client", ""), ("nobody", "secret")])
def test_bad_client_credentials(auth, client_id, secret):
    with pytest.raises(ClientError) as raised:
        auth.authenticate_client(client_id, secret)
    assert raised.value.code == "invalid_client"
    assert raised.value.message == "unknown client or wrong client secret"  # never quotes the input


@pytest.mark.parametrize("token", ["", "a b", "tab\t", "caf\u00e9", "x" * 4097])
def test_check_token_rejects(token):
    with pytest.raises(ValueError, match="token"):
        check_token(token)


@pytest.mark.parametrize("scope", ["", "a b", "a,b", "-x", "x" * 129])
def test_check_scopes_rejects(scope):
    with pytest.raises(ValueError, match="scope"):
        check_scopes([scope])


@pytest.mark.parametrize(("client_id", "secret"), [("", "s"), ("a:b", "s"), ("a b", "s"), ("ok", "")])
def test_check_client_rejects(client_id, secret):
    with pytest.raises(ValueError, match="client"):
        check_client(client_id, secret)
