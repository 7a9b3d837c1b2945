"""Plain HTTP is refused unless the host is loopback or the connection says ``insecureHTTP: true`` — and flagged then.

1. ``ConnectionSpec`` refuses what the CRD's CEL rules refuse (objects stored before the rules, API servers without
   CEL): the operator reports ``InvalidSpec`` with a message that says how to fix it, builds no client and reads no
   credentials, so nothing goes out over plain HTTP.
2. Allowed by ``insecureHTTP: true``, a connection's client is built once per spec and then posts one Warning Event
   (reason ``InsecureHTTP``) on the connection object; every VaultSecret reported through it carries the condition
   ``Insecure``; loopback http:// is never flagged.

No message quotes a URL (one may carry user:password@) or a credential.
"""

from __future__ import annotations

import base64
from typing import Any

import pydantic
import pytest

from scaivault_operator._cogs.api import API_VERSION, ConnectionSpec
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import ConfigurationError
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connections
from scaivault_operator._core.sync import Syncer
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import CREDENTIALS_LABEL
from scaivault_operator._logic.registry import Entry, Registry

CANARY_TOKEN = "CANARY-TOKEN-3e9a"
CANARY_PASSWORD = "CANARY-PASSWORD-77b0"
TOKEN_AUTH = {"tokenSecretRef": {"namespace": "ops", "name": "creds", "key": "token"}}
T0 = "2026-04-23T14:00:00Z"


def spec(url: str = "https://scaivault.example.com", *, token_url: str | None = None, **fields: Any) -> dict[str, Any]:
    auth: dict[str, Any] = dict(TOKEN_AUTH)
    if token_url is not None:
        auth = {"clientCredentials": {"tokenUrl": token_url, "secretRef": {"namespace": "ops", "name": "creds"}}}
    return {"url": url, "auth": auth, **fields}


# -- 1. the model refuses what the CRD refuses -------------------------------------------------------------------

LOOPBACK = ["http://localhost:8200", "http://localhost", "http://127.0.0.1", "http://127.0.0.1:8200/base",
            "http://127.10.20.30:1", "http://[::1]:80/x", "http://[::1]"]  # fmt: skip
NOT_LOOPBACK = ["http://localhost.evil.com", "http://127.0.0.1.evil.com", "http://10.0.0.1",
                "http://localhost@evil.com", "http://[::1].evil.com", "http://scaivault.svc:8200"]  # fmt: skip


@pytest.mark.parametrize("url", ["https://scaivault.example.com", "https://10.0.0.1:8443/x", *LOOPBACK])
def test_https_and_loopback_http_need_nothing(url: str) -> None:
    for fields in (spec(url), spec(token_url=url)):
        parsed = ConnectionSpec.model_validate(fields)
        assert parsed.insecureHTTP is False
        assert parsed.plain_http_fields == ()


@pytest.mark.parametrize("url", NOT_LOOPBACK)
def test_plain_http_elsewhere_is_refused_with_the_fix(url: str) -> None:
    for fields, field in ((spec(url), "url"), (spec(token_url=url), "auth.clientCredentials.tokenUrl")):
        with pytest.raises(pydantic.ValidationError) as refused:
            ConnectionSpec.model_validate(fields)
        failure = conditions.classify(refused.value)
        assert failure.reason == conditions.INVALID_SPEC
        assert f"{field} must use https://" in failure.message
        assert "set insecureHTTP: true" in failure.message
        assert url.lower() not in failure.message.lower()


@pytest.mark.parametrize("url", ["HTTP://10.0.0.1", "Http://localhost", "ftp://10.0.0.1"])
def test_other_spellings_are_not_urls_even_with_insecure_http(url: str) -> None:
    """As the CRD's "must be a URL" rule (CEL startsWith is case-sensitive): no scheme but https:// and http://."""
    for fields in (spec(url, insecureHTTP=True), spec(token_url=url, insecureHTTP=True)):
        with pytest.raises(pydantic.ValidationError) as refused:
            ConnectionSpec.model_validate(fields)
        failure = conditions.classify(refused.value)
        assert failure.reason == conditions.INVALID_SPEC
        assert "must be a URL starting with https://" in failure.message
        assert url.lower() not in failure.message.lower()


@pytest.mark.parametrize("url", NOT_LOOPBACK)
def test_insecure_http_true_allows_it(url: str) -> None:
    parsed = ConnectionSpec.model_validate(spec(url, token_url=url.replace("10.0.0.1", "10.0.0.2"), insecureHTTP=True))
    assert parsed.plain_http_fields == ("url", "auth.clientCredentials.tokenUrl")
    assert ConnectionSpec.model_validate(spec(url, insecureHTTP=True)).plain_http_fields == ("url",)


def test_both_fields_in_one_message_and_no_url_quoted() -> None:
    url = f"http://user:{CANARY_PASSWORD}@10.0.0.1:8200"
    with pytest.raises(pydantic.ValidationError) as refused:
        ConnectionSpec.model_validate(spec(url, token_url=url + "/token"))
    message = conditions.classify(refused.value).message
    assert message.startswith("ConnectionSpec is invalid: url and auth.clientCredentials.tokenUrl must use https://")
    assert CANARY_PASSWORD not in message


@pytest.mark.parametrize("value", ["true", "yes", 1, "1"])
def test_insecure_http_must_be_a_real_boolean(value: Any) -> None:
    """As the CRD demands: a string or a number does not turn plain HTTP on."""
    with pytest.raises(pydantic.ValidationError) as refused:
        ConnectionSpec.model_validate(spec("http://10.0.0.1", insecureHTTP=value))
    assert "insecureHTTP" in conditions.classify(refused.value).message


# -- connections: refused specs build nothing; allowed ones warn once ---------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeKube:
    """What ``connections`` uses of ``Kube``: the credentials Secret, Events, the default namespace."""

    default_namespace = "scaivault-system"

    def __init__(self) -> None:
        self.reads = 0
        self.events: list[tuple[dict[str, str], str, str, str]] = []
        self.secret = {"metadata": {"name": "creds", "namespace": "ops", "labels": {CREDENTIALS_LABEL: "true"}},
                       "data": {"token": b64(CANARY_TOKEN), "client_id": b64("id"),
                                "client_secret": b64(CANARY_PASSWORD)}}  # fmt: skip

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.secret if (namespace, name) == ("ops", "creds") else None

    async def post_event(self, involved: Any, *, type_: str, reason: str, message: str) -> None:
        self.events.append((dict(involved), type_, reason, message))


def connection_body(kind: str, fields: dict[str, Any], *, uid: str = "uid-conn") -> dict[str, Any]:
    meta = {"name": "vault", "uid": uid, **({"namespace": "ops"} if kind == "VaultConnection" else {})}
    return {"metadata": meta, "spec": fields}


def make_connections(kube: FakeKube, metrics: Metrics | None = None) -> Connections:
    return Connections(kube, OperatorSettings(liveness_endpoint=None), metrics)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields", [spec("http://10.0.0.1"), spec(token_url="http://scaikey.example.com/token")],
                         ids=["url", "tokenUrl"])  # fmt: skip
async def test_a_refused_connection_builds_no_client_and_reads_no_credentials(fields: dict[str, Any]) -> None:
    kube = FakeKube()
    conns = make_connections(kube)
    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", fields))
    [conn] = conns.all()
    assert conn.spec is None
    assert conn.error is not None
    assert "set insecureHTTP: true" in conn.error
    with pytest.raises(ConfigurationError) as refused:
        await conns.client(conn)
    assert conn.client is None
    assert kube.reads == 0, "not even the credentials Secret is read"
    assert kube.events == []
    failure = conditions.classify(refused.value)
    assert failure.reason == conditions.INVALID_SPEC
    assert "must use https://" in failure.message


@pytest.mark.parametrize(
    ("kind", "namespace"), [("VaultConnection", "ops"), ("ClusterVaultConnection", FakeKube.default_namespace)]
)
async def test_an_allowed_plain_http_connection_warns_once_per_spec(kind: str, namespace: str) -> None:
    """On the connection object; a ClusterVaultConnection's Event lands in the operator's namespace (as Kopf posts
    those), with the same namespace in involvedObject (the API server requires it of such Events)."""
    kube = FakeKube()
    metrics = Metrics()
    conns = make_connections(kube, metrics)
    fields = spec("http://scaivault.svc:8200", insecureHTTP=True)
    await conns.upsert(kind, connection_body(kind, fields))
    [conn] = conns.all()
    await conns.client(conn)
    await conns.client(conn)  # built once: no second Event
    assert not await conns.upsert(kind, connection_body(kind, fields))  # the same spec again: nothing new
    await conns.client(conns.all()[0])
    [(involved, type_, reason, message)] = kube.events
    assert involved == {"apiVersion": API_VERSION, "kind": kind, "name": "vault", "namespace": namespace,
                        "uid": "uid-conn"}  # fmt: skip
    assert (type_, reason) == ("Warning", "InsecureHTTP")
    assert f"{conn.display} allows plain http://" in message
    assert "spec.url sends the ScaiVault token and the secret data unencrypted" in message
    assert "tokenUrl" not in message
    for secret in (CANARY_TOKEN, CANARY_PASSWORD, b64(CANARY_TOKEN), "scaivault.svc"):
        assert secret not in message
    assert 'scaivault_operator_events_total{type="Warning"} 1' in metrics.render()

    # A new spec (still plain HTTP, now the token endpoint too): a new client, one more Event.
    await conns.upsert(kind, connection_body(kind, spec("http://scaivault.svc:8200", insecureHTTP=True,
                                                        token_url="http://scaikey.svc/token")))  # fmt: skip
    await conns.client(conns.all()[0])
    assert len(kube.events) == 2
    assert "spec.auth.clientCredentials.tokenUrl sends the OAuth client id and secret unencrypted" in kube.events[1][3]
    await conns.aclose()


@pytest.mark.parametrize("fields", [spec("http://127.0.0.1:8200"), spec("https://vault", insecureHTTP=True),
                                    spec("http://localhost:8200", token_url="http://[::1]:9000/t")])  # fmt: skip
async def test_loopback_or_https_is_never_flagged(fields: dict[str, Any]) -> None:
    kube = FakeKube()
    conns = make_connections(kube)
    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", fields))
    [conn] = conns.all()
    await conns.client(conn)
    assert conn.plain_http == ()
    assert kube.events == []
    await conns.aclose()


# -- the Insecure condition on VaultSecrets ----------------------------------------------------------------------


class StatusKube(FakeKube):
    """Records status patches and Events on VaultSecrets."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: list[dict[str, Any]] = []

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: Any) -> bool:
        self.patches.append(dict(status))
        return True


def syncer(kube: StatusKube) -> tuple[Syncer, Registry, Connections]:
    async def no_labels(_: str) -> None:
        return None

    registry = Registry()
    conns = make_connections(kube)
    sync = Syncer(kube=kube, registry=registry, connections=conns, settings=OperatorSettings(liveness_endpoint=None),
                  namespace_labels=no_labels, on_breaker=lambda conn, opened: None, metrics=Metrics())  # type: ignore[arg-type]  # fmt: skip
    return sync, registry, conns


def vaultsecret(registry: Registry) -> Entry:
    registry.upsert({"metadata": {"namespace": "team-a", "name": "db", "uid": "u1", "generation": 1},
                     "spec": {"path": "apps/db", "connectionRef": {"name": "vault"}}})  # fmt: skip
    return registry.entries[("team-a", "db")]


def insecure(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Insecure"), None)


async def test_every_report_through_an_insecure_connection_carries_the_condition() -> None:
    kube = StatusKube()
    sync, registry, conns = syncer(kube)
    body = connection_body("ClusterVaultConnection", spec("http://scaivault.svc:8200", insecureHTTP=True))
    await conns.upsert("ClusterVaultConnection", body)
    entry = vaultsecret(registry)

    await sync.report_failure(entry, conditions.Failure(conditions.FORBIDDEN, "denied", transient=False))
    condition = insecure(entry.status)
    assert condition is not None
    assert {k: condition[k] for k in ("status", "reason", "observedGeneration")} == {
        "status": "True", "reason": "InsecureHTTP", "observedGeneration": 1}  # fmt: skip
    assert condition["message"].startswith("ClusterVaultConnection vault allows plain http://")
    assert "spec.url" in condition["message"]
    assert CANARY_TOKEN not in str(kube.patches)
    assert [c["type"] for c in entry.status["conditions"]] == ["Ready", "Insecure"]
    writes = len(kube.patches)

    # The same outcome again: no write (the condition takes part in the minimal-write comparison).
    await sync.report_failure(entry, conditions.Failure(conditions.FORBIDDEN, "denied", transient=False))
    assert len(kube.patches) == writes
    # A Ready change keeps the Insecure condition and its lastTransitionTime.
    since = condition["lastTransitionTime"]
    await sync.report_failure(entry, conditions.Failure(conditions.SOURCE_NOT_FOUND, "gone", transient=False))
    assert len(kube.patches) == writes + 1
    assert insecure(entry.status) == condition | {"lastTransitionTime": since}
    assert [e for e in kube.events if e[2] == "InsecureHTTP"] == [], "the Event is the connection's, not per sync"

    # The connection becomes https: the next report drops the condition (one write), Ready untouched.
    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", spec()))
    ready = entry.status["conditions"][0]
    await sync.report_failure(entry, conditions.Failure(conditions.SOURCE_NOT_FOUND, "gone", transient=False))
    assert len(kube.patches) == writes + 2
    assert insecure(entry.status) is None
    assert [c["type"] for c in kube.patches[-1]["conditions"]] == ["Ready"]
    assert entry.status["conditions"] == [ready]


async def test_refresh_insecure_writes_only_when_the_condition_is_stale() -> None:
    """A warm restart trusts an in-sync VaultSecret without a sync: only its Insecure condition is brought up to date
    (the connection switched to or from plain HTTP while the operator was down)."""
    kube = StatusKube()
    sync, registry, conns = syncer(kube)
    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", spec("http://127.0.0.1")))
    entry = vaultsecret(registry)
    ready = {"type": "Ready", "status": "True", "reason": "Synced", "message": "v1", "lastTransitionTime": T0,
             "observedGeneration": 1}  # fmt: skip
    entry.status = {"conditions": [ready], "observedGeneration": 1, "syncedVersion": 1}
    await sync.refresh_insecure(entry)
    assert kube.patches == []

    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", spec(
        "http://scaivault.svc", insecureHTTP=True)))  # fmt: skip
    await sync.refresh_insecure(entry)
    [patch] = kube.patches
    assert patch["conditions"][0] == ready
    assert patch["conditions"][1]["type"] == "Insecure"
    assert set(patch) == {"conditions"}
    await sync.refresh_insecure(entry)
    assert len(kube.patches) == 1

    await conns.upsert("ClusterVaultConnection", connection_body("ClusterVaultConnection", spec()))
    await sync.refresh_insecure(entry)
    assert kube.patches[-1] == {"conditions": [ready]}
    assert kube.events == []
