"""The dev vault's switches for the ScaiVault fault matrix: ``calls``, ``body_fault``, ``list_version_lag``,
``expire_issued_after``, 429s without ``Retry-After``; deleting and rolling back secrets; their CLI flags."""

from __future__ import annotations

import pytest

from scaivault_operator.cli import DEV_VAULT_BODY_FAULTS, _dev_vault_config, build_parser, main
from scaivault_operator.devvault import DevVault, DevVaultConfig, FaultConfig
from scaivault_operator.devvault._auth import AuthenticationError, Authenticator
from scaivault_operator.devvault._faults import BODY_FAULTS, FAULT_CALLS, FaultInjector, fault_for_status
from scaivault_operator.devvault._stats import DevVaultStats
from scaivault_operator.devvault._store import SecretNotFoundError, VersionNotFoundError, open_store

# -- FaultConfig ---------------------------------------------------------------------------------------------


def test_new_switches_default_off():
    config = FaultConfig()
    switches = (config.calls, config.body_fault, config.list_version_lag, config.expire_issued_after)
    assert switches == (None, None, 0, None)
    assert not config.active


@pytest.mark.parametrize(
    "changes",
    [{"body_fault": "reset"}, {"list_version_lag": 1}, {"expire_issued_after": 0}, {"expire_issued_after": 3}],
)
def test_new_switches_are_faults(changes):
    assert FaultConfig().merged(changes).active


def test_calls_alone_is_not_a_fault():
    assert not FaultConfig(calls=["read"]).active


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"calls": []}, "calls"),
        ({"calls": "read"}, "calls"),
        ({"calls": ["read", "token"]}, "calls"),
        ({"calls": [1]}, "calls"),
        ({"body_fault": "explode"}, "body_fault"),
        ({"body_fault": ["reset"]}, "body_fault"),
        ({"body_fault": True}, "body_fault"),
        ({"list_version_lag": -1}, "list_version_lag"),
        ({"list_version_lag": None}, "list_version_lag"),
        ({"list_version_lag": 1.5}, "list_version_lag"),
        ({"list_version_lag": True}, "list_version_lag"),
        ({"expire_issued_after": -1}, "expire_issued_after"),
        ({"expire_issued_after": "1"}, "expire_issued_after"),
        ({"expire_issued_after": 10**7}, "expire_issued_after"),
        ({"retry_after": "none"}, "retry_after"),
    ],
)
def test_new_switches_are_validated(changes, field):
    with pytest.raises(ValueError, match=field):
        FaultConfig().merged(changes)


def test_new_switches_round_trip_through_json():
    config = FaultConfig(retry_after=None, calls=["read", "list"], body_fault="huge", list_version_lag=2,
                         expire_issued_after=5)  # fmt: skip
    assert FaultConfig().merged(config.to_json()) == config
    assert config.to_json()["retry_after"] is None


def test_calls_list_is_copied_not_shared():
    live, source = FaultConfig(), FaultConfig(calls=["read"])
    live.assign(source)
    source.calls.append("list")  # type: ignore[union-attr]
    copied = live.copy()
    copied.calls.append("write")  # type: ignore[union-attr]
    assert live.calls == ["read"]


def test_body_faults_and_calls_are_spelled_out_for_the_cli():
    assert DEV_VAULT_BODY_FAULTS == BODY_FAULTS
    assert FAULT_CALLS == ("whoami", "read", "list", "write")


# -- FaultInjector -------------------------------------------------------------------------------------------


def test_applies_to_every_call_by_default_and_to_the_listed_ones_otherwise():
    injector = FaultInjector(FaultConfig())
    assert all(injector.applies(call) for call in (*FAULT_CALLS, None))
    injector.update({"calls": ["read"]})
    assert injector.applies("read")
    assert not injector.applies("list")
    assert not injector.applies(None), "an unknown route is no listed call"


def test_expire_issued_after_counts_down_then_fires_once():
    injector = FaultInjector(FaultConfig(expire_issued_after=2))
    fired = [injector.take_expiry() for _ in range(5)]
    assert fired == [False, False, True, False, False]
    assert injector.config.expire_issued_after is None


def test_429_without_retry_after():
    assert "Retry-After" not in fault_for_status(429, None).headers
    assert fault_for_status(429, 0.25).headers["Retry-After"] == "0.25"
    injector = FaultInjector(FaultConfig(rate_limit_rate=1.0, retry_after=None))
    fault = injector.next_fault()
    assert fault is not None
    assert (fault.status, fault.headers) == (429, {})


# -- stats ---------------------------------------------------------------------------------------------------


def test_injected_faults_are_counted_and_reset():
    stats = DevVaultStats()
    for kind in ("503", "503", "reset"):
        stats.record_injected(kind)
    assert stats.count_injected("503") == 2
    assert stats.count_injected() == 3
    assert stats.snapshot().to_json()["injected"] == {"503": 2, "reset": 1}
    stats.reset()
    assert stats.snapshot().injected == {}


# -- deleting and rolling back secrets -----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    opened = open_store(tmp_path / "store.sqlite3" if request.param == "sqlite" else None)
    yield opened
    opened.close()


def _put(store, path, n, now=100):
    return store.put(path, {"n": n}, secret_type=None, metadata=None, now=now)


def test_truncate_to_zero_deletes_and_the_next_write_is_version_1(store):
    for n in (1, 2, 3):
        _put(store, "a/b", n, now=100 + n)
    _put(store, "a/c", 1)

    assert store.truncate("a/b", 0) == 3
    with pytest.raises(SecretNotFoundError):
        store.get("a/b")
    assert [head.path for head in store.list_after("a/", None, 10)] == ["a/c"]
    again = _put(store, "a/b", 9, now=500)
    assert (again.version, again.created_at, again.data) == (1, 500, {"n": 9})


def test_truncate_keeps_the_first_versions(store):
    for n in (1, 2, 3):
        _put(store, "a/b", n, now=100 + n)

    assert store.truncate("a/b", 1) == 2
    current = store.get("a/b")
    assert (current.version, current.data, current.created_at) == (1, {"n": 1}, 101)
    with pytest.raises(VersionNotFoundError):
        store.get("a/b", 2)
    assert [(head.path, head.version) for head in store.list_after("a/", None, 10)] == [("a/b", 1)]
    assert _put(store, "a/b", 4).version == 2
    assert store.truncate("a/b", 5) == 0


def test_truncate_of_a_missing_secret(store):
    with pytest.raises(SecretNotFoundError):
        store.truncate("nothing/here", 0)


def test_dev_vault_delete_and_roll_back():
    vault = DevVault(DevVaultConfig(port=0))
    try:
        for n in (1, 2, 3):
            vault.write("a/b", {"n": n})
        assert vault.roll_back("a/b", 2) == 1
        assert vault.store.get("a/b").version == 2
        assert vault.delete("a/b") == 2
        assert vault.write("a/b", {"n": 0}).version == 1
        with pytest.raises(ValueError, match="version"):
            vault.roll_back("a/b", 0)
        with pytest.raises(LookupError):
            vault.delete("not/there")
        with pytest.raises(ValueError, match="path"):
            vault.delete("a//b")
    finally:
        vault.store.close()


# -- expiring issued tokens ----------------------------------------------------------------------------------


def test_expire_issued_expires_tokens_issued_so_far_only():
    auth = Authenticator(tokens={"static": ["secrets:read"]}, clients={"ci": ("s", ["secrets:read"])},
                         token_ttl=3600, clock=lambda: 1000.0)  # fmt: skip
    client = auth.authenticate_client("ci", "s")
    old = auth.issue(client, None).access_token
    assert auth.expire_issued() == 1
    new = auth.issue(client, None).access_token

    with pytest.raises(AuthenticationError) as caught:
        auth.identify(old)
    assert caught.value.code == "token_expired"
    assert auth.identify(new).identity_id == "client:ci"
    assert auth.identify("static").identity_type == "service"
    assert auth.expire_issued() == 1
    assert auth.expire_issued() == 0


# -- CLI flags -----------------------------------------------------------------------------------------------


def test_new_flags_map_onto_the_config():
    args = build_parser().parse_args(
        ["dev-vault", "--retry-after=none", "--fault-calls=read, list", "--body-fault=truncate",
         "--list-version-lag=2", "--expire-issued-after=3"]
    )  # fmt: skip
    faults = _dev_vault_config(args).faults
    assert faults.retry_after is None
    assert faults.calls == ["read", "list"]
    assert (faults.body_fault, faults.list_version_lag, faults.expire_issued_after) == ("truncate", 2, 3)
    assert _dev_vault_config(build_parser().parse_args(["dev-vault", "--retry-after=0.5"])).faults.retry_after == 0.5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--retry-after=soon"], "retry_after"),
        (["--retry-after=-1"], "retry_after"),
        (["--fault-calls=token"], "calls"),
        (["--list-version-lag=-1"], "list_version_lag"),
        (["--expire-issued-after=-2"], "expire_issued_after"),
    ],
)
def test_bad_new_flags_are_usage_errors(capsys, flags, message):
    with pytest.raises(SystemExit) as raised:
        main(["dev-vault", *flags])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_body_fault_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["dev-vault", "--body-fault=explode"])
    assert raised.value.code == 2
    assert "--body-fault" in capsys.readouterr().err
