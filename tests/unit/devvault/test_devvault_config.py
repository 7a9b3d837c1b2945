"""``DevVaultConfig`` validation and the CLI's ``TOKEN=SCOPES`` / ``ID:SECRET=SCOPES`` specs."""

from __future__ import annotations

import pytest

from scaivault_operator.devvault import DevVaultConfig, FaultConfig, parse_client_spec, parse_token_spec


@pytest.mark.parametrize(
    ("spec", "token", "scopes"),
    [
        ("t=secrets:read,secrets:write", "t", {"secrets:read", "secrets:write"}),
        ("t=", "t", set()),
        ("t= secrets:read , ,", "t", {"secrets:read"}),
        ("dGVzdA===secrets:read", "dGVzdA==", {"secrets:read"}),  # base64 padding: the last '=' splits
    ],
)
def test_parse_token_spec(spec, token, scopes):
    assert parse_token_spec(spec) == (token, scopes)


@pytest.mark.parametrize(
    "spec", ["tok3n", "=secrets:read", "", "sp4ce tok3n=secrets:read", "tok3n=bad scope", "tok3n=secrets:read,,x y"]
)
def test_parse_token_spec_rejects_without_quoting_the_token(spec):
    with pytest.raises(ValueError, match=r"token|scope|TOKEN") as raised:
        parse_token_spec(spec)
    assert "tok3n" not in str(raised.value)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("ci:secret=secrets:read", ("ci", "secret", {"secrets:read"})),
        ("ci:sec:ret=", ("ci", "sec:ret", set())),
        ("ci:s=ecret=secrets:read", ("ci", "s=ecret", {"secrets:read"})),
    ],
)
def test_parse_client_spec(spec, parsed):
    assert parse_client_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["ci=secrets:read", ":s=x", "ci:=x", "ci:s", ""])
def test_parse_client_spec_rejects(spec):
    with pytest.raises(ValueError, match="CLIENT_ID:SECRET=SCOPES"):
        parse_client_spec(spec)


def test_defaults():
    config = DevVaultConfig()
    config.validate()
    assert (config.host, config.port, config.token_ttl, config.max_body) == ("127.0.0.1", 8200, 3600, 1048576)
    assert (config.list_default_limit, config.list_max_limit, config.data_file) == (100, 1000, None)
    assert config.faults == FaultConfig()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": -1}, "port"),
        ({"port": 70000}, "port"),
        ({"token_ttl": 0}, "token_ttl"),
        ({"max_body": 0}, "max_body"),
        ({"list_default_limit": 0}, "list_default_limit"),
        ({"list_default_limit": 10, "list_max_limit": 5}, "list_default_limit"),
        ({"tokens": {"a b": set()}}, "token"),
        ({"tokens": {"ok": {"bad scope"}}}, "scope"),
        ({"clients": {"a:b": ("s", set())}}, "client id"),
        ({"clients": {"ok": ("", set())}}, "client secret"),
        ({"faults": FaultConfig(error_rate=2)}, "error_rate"),
    ],
)
def test_validate_rejects(overrides, message):
    with pytest.raises(ValueError, match=message):
        DevVaultConfig(**overrides).validate()
