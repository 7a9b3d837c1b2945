"""The two confused-deputy guards, as pure functions and on a connection's credential reads.

1. Credentials opt in: only a Secret labelled ``scaivault.scailabs.ai/credentials=true`` may serve as a connection's
   token or client-credentials Secret — checked on every read, so a label removed later stops the next read.
   Otherwise anyone who may create a connection (but not read Secrets) could send any Secret of a namespace, as a
   bearer token, to a URL of their choosing.
2. Adopt takes over only what consents: an existing Secret annotated ``scaivault.scailabs.ai/adopt=true``, never one
   controlled by something else, never a service-account token.

Every refusal names objects and says what to do; no Secret value, label value or annotation value reaches it.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from scaivault_operator._cogs.api import ConnectionSpec
from scaivault_operator._cogs.scaivault import ClientCredentials, ConfigurationError
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connections, KubeSecretToken
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import (
    ADOPT_ANNOTATION,
    ANNOTATION_PREFIX,
    CREDENTIALS_LABEL,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    credentials_refusal,
    target_refusal,
)

CANARY = "CANARY-VALUE-0d5e"
CANARY_TOKEN = "CANARY-TOKEN-8a1f"
UID = "uid-vs"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def canary_forms(value: str) -> list[str]:
    return [value, b64(value)]


def secret(
    name: str = "x",
    namespace: str = "ns",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    refs: list[dict[str, Any]] | None = None,
    type_: str | None = "Opaque",
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    if refs is not None:
        meta["ownerReferences"] = refs
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                            "data": {k: b64(v) for k, v in (data or {"token": CANARY_TOKEN}).items()}}  # fmt: skip
    if type_ is not None:
        body["type"] = type_
    return body


def controller(kind: str, name: str, uid: str, *, controller: bool | None = True) -> dict[str, Any]:
    ref: dict[str, Any] = {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid}
    if controller is not None:
        ref["controller"] = controller
    return ref


def test_constants() -> None:
    assert CREDENTIALS_LABEL == "scaivault.scailabs.ai/credentials"
    assert ADOPT_ANNOTATION == "scaivault.scailabs.ai/adopt"
    assert ADOPT_ANNOTATION.startswith(ANNOTATION_PREFIX)  # ours: an adoption removes it (the consent is used up)
    assert SERVICE_ACCOUNT_TOKEN_TYPE == "kubernetes.io/service-account-token"


# -- 1. credentials opt in -----------------------------------------------------------------------------------


def test_a_labelled_secret_may_serve_as_credentials() -> None:
    assert credentials_refusal(secret(labels={CREDENTIALS_LABEL: "true"}), "ns", "x") is None


@pytest.mark.parametrize(
    "labels",
    [None, {}, {"team": "a"}, {CREDENTIALS_LABEL: "false"}, {CREDENTIALS_LABEL: "True"}, {CREDENTIALS_LABEL: ""},
     {CREDENTIALS_LABEL: CANARY}, {"scaivault.scailabs.ai/credential": "true"}],
)  # fmt: skip
def test_an_unlabelled_secret_is_refused_with_the_label_command(labels: dict[str, str] | None) -> None:
    message = credentials_refusal(
        secret("db-password", "team-a", labels=labels, annotations={"note": CANARY}), "team-a", "db-password"
    )
    assert message is not None
    assert "Secret team-a/db-password" in message
    assert message.endswith("kubectl label secret -n team-a db-password scaivault.scailabs.ai/credentials=true")
    for form in (*canary_forms(CANARY), *canary_forms(CANARY_TOKEN)):
        assert form not in message


def test_malformed_metadata_is_refused() -> None:
    assert credentials_refusal({"metadata": None}, "ns", "x") is not None
    assert credentials_refusal({"metadata": {"labels": "garbage"}}, "ns", "x") is not None


class FakeKube:
    """What ``connections`` uses of ``Kube``: ``get_secret``; counts the reads."""

    def __init__(self, *secrets: dict[str, Any]) -> None:
        self.secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets}
        self.reads = 0

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.secrets.get((namespace, name))


LABELLED = {CREDENTIALS_LABEL: "true"}


async def test_token_read_checks_the_label_on_every_read() -> None:
    kube = FakeKube(secret("scaivault-token", "ops", labels=dict(LABELLED)))
    token = KubeSecretToken(kube, "ops", "scaivault-token", "token")  # type: ignore[arg-type]
    assert await token.token() == CANARY_TOKEN

    # The label is removed and the token rotated; ScaiVault refuses the old one: the re-read refuses the Secret.
    kube.secrets[("ops", "scaivault-token")] = secret("scaivault-token", "ops", data={"token": "rotated-token"})
    with pytest.raises(ConfigurationError) as caught:
        await token.renew(CANARY_TOKEN)
    message = str(caught.value)
    assert "kubectl label secret -n ops scaivault-token scaivault.scailabs.ai/credentials=true" in message
    assert CANARY_TOKEN not in message
    assert "rotated-token" not in message
    # The refused token is forgotten: the next request reads the Secret again instead of resending it.
    reads = kube.reads
    with pytest.raises(ConfigurationError):
        await token.token()
    assert kube.reads == reads + 1

    kube.secrets[("ops", "scaivault-token")]["metadata"]["labels"] = dict(LABELLED)  # labelled again: used again
    assert await token.token() == "rotated-token"


async def test_token_read_refuses_an_unlabelled_secret_from_the_first_read() -> None:
    kube = FakeKube(secret("db-password", "team-a", data={"password": CANARY}))
    token = KubeSecretToken(kube, "team-a", "db-password", "password")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as caught:
        await token.token()
    failure = conditions.classify(caught.value)
    assert failure.reason == conditions.INVALID_SPEC
    assert "Secret team-a/db-password" in failure.message
    assert "kubectl label secret -n team-a db-password scaivault.scailabs.ai/credentials=true" in failure.message
    assert CANARY not in failure.message
    assert b64(CANARY) not in failure.message


def connections(kube: FakeKube) -> Connections:
    return Connections(kube, OperatorSettings(liveness_endpoint=None))  # type: ignore[arg-type]


TOKEN_AUTH = {"tokenSecretRef": {"name": "creds", "key": "token"}}
CLIENT_AUTH = {"clientCredentials": {"tokenUrl": "https://127.0.0.1:9/token", "secretRef": {"name": "creds"}}}


def body(kind: str, auth: dict[str, Any]) -> dict[str, Any]:
    namespaced = kind == "VaultConnection"
    ref_holder = auth.get("tokenSecretRef") or auth["clientCredentials"]["secretRef"]
    if not namespaced:
        ref_holder["namespace"] = "team-a"
    meta = {"name": "conn", **({"namespace": "team-a"} if namespaced else {})}
    return {"metadata": meta, "spec": {"url": "https://127.0.0.1:9", "auth": auth}}


CREDS_DATA = {"token": CANARY_TOKEN, "client_id": "id", "client_secret": CANARY}


@pytest.mark.parametrize("kind", ["ClusterVaultConnection", "VaultConnection"])
@pytest.mark.parametrize("auth", [TOKEN_AUTH, CLIENT_AUTH], ids=["token", "client-credentials"])
async def test_both_connection_kinds_and_both_auth_methods_need_the_label(kind: str, auth: dict[str, Any]) -> None:
    kube = FakeKube(secret("creds", "team-a", data=CREDS_DATA))
    conns = connections(kube)
    await conns.upsert(kind, body(kind, copy.deepcopy(auth)))
    [conn] = conns.all()
    assert isinstance(conn.spec, ConnectionSpec)

    async def first_use() -> None:
        client = await conns.client(conn)  # client credentials are read here,
        await client._auth.token()  # a token Secret on the first request

    with pytest.raises(ConfigurationError) as caught:
        await first_use()
    message = str(caught.value)
    assert "kubectl label secret -n team-a creds scaivault.scailabs.ai/credentials=true" in message
    for form in (*canary_forms(CANARY), *canary_forms(CANARY_TOKEN)):
        assert form not in message
    await conns.aclose()


async def test_client_credentials_from_a_labelled_secret() -> None:
    kube = FakeKube(secret("creds", "team-a", labels=dict(LABELLED), data=CREDS_DATA))
    conns = connections(kube)
    await conns.upsert("VaultConnection", body("VaultConnection", {"clientCredentials": {
        "tokenUrl": "https://127.0.0.1:9/token", "secretRef": {"name": "creds"}}}))  # fmt: skip
    [conn] = conns.all()
    client = await conns.client(conn)
    assert isinstance(client._auth, ClientCredentials)
    await conns.aclose()


# -- 2. adoption needs consent -------------------------------------------------------------------------------


def test_nothing_to_refuse_when_absent_or_ours() -> None:
    for policy in ("Owner", "Adopt"):
        assert target_refusal(None, owner_uid=UID, creation_policy=policy) is None
        ours = secret(refs=[controller("VaultSecret", "db", UID)])
        assert target_refusal(ours, owner_uid=UID, creation_policy=policy) is None


def test_owner_policy_refuses_and_says_both_steps() -> None:
    message = target_refusal(secret("shared", "team-a"), owner_uid=UID, creation_policy="Owner")
    assert message is not None
    assert "Secret team-a/shared exists and is not managed by this VaultSecret" in message
    assert "creationPolicy: Adopt" in message
    assert "kubectl annotate secret -n team-a shared scaivault.scailabs.ai/adopt=true" in message
    consenting = secret("shared", "team-a", annotations={ADOPT_ANNOTATION: "true"})
    assert target_refusal(consenting, owner_uid=UID, creation_policy="Owner") is not None  # Owner never adopts


@pytest.mark.parametrize("annotations", [None, {}, {ADOPT_ANNOTATION: "false"}, {ADOPT_ANNOTATION: "yes"},
                                         {ADOPT_ANNOTATION: "True"}, {ADOPT_ANNOTATION: CANARY}])  # fmt: skip
def test_adopt_without_consent_says_how_to_consent(annotations: dict[str, str] | None) -> None:
    message = target_refusal(secret("x", "ns", annotations=annotations), owner_uid=UID, creation_policy="Adopt")
    assert message is not None
    assert message == (
        "Secret ns/x exists and is not ours; to let this VaultSecret take it over, annotate it: "
        "kubectl annotate secret -n ns x scaivault.scailabs.ai/adopt=true"
    )
    assert CANARY not in message


def test_adopt_with_consent() -> None:
    consenting = secret(annotations={ADOPT_ANNOTATION: "true"})
    assert target_refusal(consenting, owner_uid=UID, creation_policy="Adopt") is None
    # Owner references that are not controllers (e.g. a plain "belongs to") do not stand in the way.
    with_plain_owner = secret(
        annotations={ADOPT_ANNOTATION: "true"}, refs=[controller("App", "a", "u", controller=False)]
    )
    assert target_refusal(with_plain_owner, owner_uid=UID, creation_policy="Adopt") is None
    no_type = secret(annotations={ADOPT_ANNOTATION: "true"}, type_=None)  # absent type means Opaque
    assert target_refusal(no_type, owner_uid=UID, creation_policy="Adopt") is None


@pytest.mark.parametrize("policy", ["Owner", "Adopt"])
@pytest.mark.parametrize(("kind", "name"), [("Deployment", "web"), ("VaultSecret", "other-vaultsecret"),
                                            ("ExternalSecret", "payments")])  # fmt: skip
def test_never_a_secret_controlled_by_another_controller(policy: str, kind: str, name: str) -> None:
    refs = [controller("App", "plain", "u1", controller=False), controller(kind, name, "u2")]
    existing = secret("x", "ns", annotations={ADOPT_ANNOTATION: "true"}, refs=refs)
    message = target_refusal(existing, owner_uid=UID, creation_policy=policy)
    assert message is not None
    assert f"Secret ns/x exists and is controlled by {kind}/{name}" in message
    assert "spec.target.name" in message


@pytest.mark.parametrize("policy", ["Owner", "Adopt"])
def test_never_a_service_account_token(policy: str) -> None:
    existing = secret("default-token", "ns", annotations={ADOPT_ANNOTATION: "true",
                      "kubernetes.io/service-account.name": "default"}, type_=SERVICE_ACCOUNT_TOKEN_TYPE)  # fmt: skip
    message = target_refusal(existing, owner_uid=UID, creation_policy=policy)
    assert message is not None
    assert "Secret ns/default-token" in message
    assert "service-account-token Secrets are never adopted" in message


def test_a_long_controller_name_is_clipped() -> None:
    existing = secret(refs=[controller("Thing", "n" * 5000, "u2")])
    message = target_refusal(existing, owner_uid=UID, creation_policy="Adopt")
    assert message is not None
    assert len(message) < 1000


def test_no_value_in_any_refusal() -> None:
    """Data, annotation and label values of the existing Secret never reach a message."""
    values = {"password": CANARY}
    variants = [
        secret(
            data=values,
            labels={"l": CANARY},
            annotations={"kubectl.kubernetes.io/last-applied-configuration": CANARY, ADOPT_ANNOTATION: "no"},
        ),
        secret(data=values, annotations={"a": CANARY}, refs=[controller("Deployment", "web", "u2")]),
        secret(data=values, annotations={"a": CANARY, ADOPT_ANNOTATION: "true"}, type_=SERVICE_ACCOUNT_TOKEN_TYPE),
    ]
    for existing in variants:
        for policy in ("Owner", "Adopt"):
            message = target_refusal(existing, owner_uid=UID, creation_policy=policy)
            assert message is not None
            for form in canary_forms(CANARY):
                assert form not in message


def test_the_demo_token_secret_opts_in() -> None:
    """`make demo` applies crds/examples/: its token Secret must carry the credentials label."""
    from scaivault_operator._tools.demo import load_examples

    docs = load_examples("http://127.0.0.1:8200")
    [connection] = [d for d in docs if d["kind"] == "ClusterVaultConnection"]
    ref = connection["spec"]["auth"]["tokenSecretRef"]
    [token] = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]]
    assert token["metadata"]["namespace"] == ref["namespace"]
    assert credentials_refusal(token, ref["namespace"], ref["name"]) is None


async def test_the_first_poll_after_a_refused_credentials_read_resyncs_the_connection() -> None:
    """A refused (or missing) credentials Secret fails the watcher's list too; once fixed, its first successful
    poll re-syncs the connection's unready VaultSecrets, whose own retry of the InvalidSpec would be slow."""
    from collections.abc import AsyncIterator

    from scaivault_operator._cogs.metrics import Metrics
    from scaivault_operator._cogs.scaivault import SecretPage, SecretSummary
    from scaivault_operator._core.connections import Breaker, Connection
    from scaivault_operator._core.watcher import VersionWatcher
    from scaivault_operator._logic.registry import Registry

    key = ("ClusterVaultConnection", "", "default")
    spec = ConnectionSpec.model_validate({"url": "https://vault", "pollInterval": "1s",
                                          "auth": {"tokenSecretRef": {"namespace": "ns", "name": "t"}}})  # fmt: skip
    conn = Connection(key=key, spec=spec, error=None, breaker=Breaker(base=10, cap=300))
    refusal = credentials_refusal(secret("t", "ns"), "ns", "t")
    assert refusal is not None

    class Client:
        refused = True

        async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
            if self.refused:
                raise ConfigurationError(refusal)
            yield SecretPage(secrets=(SecretSummary(path="apps/db", version=1),), has_more=False)

    client = Client()

    class Conns:
        def get(self, _: Any) -> Connection:
            return conn

        async def client(self, _: Connection) -> Client:
            return client

    registry = Registry()
    registry.upsert({"metadata": {"namespace": "ns", "name": "a", "uid": "u", "generation": 1},
                     "spec": {"path": "apps/db"}})  # fmt: skip
    resyncs: list[bool] = []
    settings = OperatorSettings(liveness_endpoint=None)
    watcher = VersionWatcher(key, Conns(), registry, settings, lambda source, priority: None,  # type: ignore[arg-type]
                             lambda _, opened: resyncs.append(opened), Metrics())  # fmt: skip
    await watcher.poll_once()
    await watcher.poll_once()
    assert resyncs == []
    assert not conn.breaker.is_open, "a configuration problem is not an outage: no breaker"
    client.refused = False
    await watcher.poll_once()
    assert resyncs == [False]  # re-sync the unready ones, once
    await watcher.poll_once()
    assert resyncs == [False]
