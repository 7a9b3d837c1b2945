"""The ClusterVaultConnection "default" the chart makes from values: what `helm install` + one VaultSecret needs.

Each rendered connection passes its CRD (OpenAPI schema and CEL rules, judged by tests/unit/crds' helpers) and the
operator's own pydantic model, and its credentials Secret holds what the operator reads.
"""

from __future__ import annotations

import base64
import sys

import pytest
from chart_support import NAMESPACE, REPO, JsonDict, find, find_all, render

sys.path.insert(0, str(REPO / "tests" / "unit" / "crds"))
from crd_support import api_server_errors, load_crds, openapi_schema

from scaivault_operator._cogs.api import URL_HTTPS_MESSAGE, ConnectionSpec
from scaivault_operator._logic.manifests import CREDENTIALS_LABEL

CONNECTION_SCHEMA = openapi_schema(load_crds()["ClusterVaultConnection"])


def connection(docs: list[JsonDict]) -> JsonDict:
    found = find(docs, "ClusterVaultConnection", "default")
    assert api_server_errors(CONNECTION_SCHEMA, found) == []
    ConnectionSpec.model_validate(found["spec"])
    return found


def secret_data(docs: list[JsonDict], name: str) -> dict[str, str]:
    secret = find(docs, "Secret", name, NAMESPACE)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_no_url_no_connection() -> None:
    docs = render()
    assert find_all(docs, "ClusterVaultConnection") == []
    assert find_all(docs, "Secret") == []


def test_token_from_a_value_is_stored_in_a_secret_the_connection_reads() -> None:
    docs = render("token.yaml")
    spec = connection(docs)["spec"]
    ref = spec["auth"]["tokenSecretRef"]
    assert ref == {"namespace": NAMESPACE, "name": "svo-scaivault-operator-token", "key": "token"}
    assert secret_data(docs, ref["name"]) == {"token": "skt_canary_token_value"}
    assert spec["url"] == "https://scaivault.example.com"
    assert spec["pollInterval"] == "10s"
    assert spec["access"] == [
        {"namespaces": ["default", "billing"], "pathPrefixes": ["environments/production/"]},
        {
            "namespaceSelector": {"matchLabels": {"scailabs.ai/tenant": "true"}},
            "pathPrefixes": ["tenants/{namespace}/"],
        },
    ]
    assert "caBundle" not in spec


def test_token_from_an_existing_secret() -> None:
    docs = render("namespaced.yaml")
    ref = connection(docs)["spec"]["auth"]["tokenSecretRef"]
    assert ref == {"namespace": NAMESPACE, "name": "scaivault-token", "key": "api-token"}
    assert find_all(docs, "Secret") == []


def test_client_credentials_from_values_with_a_private_ca() -> None:
    docs = render("client-credentials.yaml")
    spec = connection(docs)["spec"]
    creds = spec["auth"]["clientCredentials"]
    assert creds == {
        "tokenUrl": "https://scaikey.internal.example.com/oauth/token",
        "secretRef": {"namespace": NAMESPACE, "name": "svo-scaivault-operator-client"},
        "clientIdKey": "client_id",
        "clientSecretKey": "client_secret",
        "scope": "secrets:read",
    }
    assert "tokenSecretRef" not in spec["auth"]
    assert secret_data(docs, "svo-scaivault-operator-client") == {
        "client_id": "operator-client",
        "client_secret": "canary-client-secret",
    }
    assert spec["caBundle"].startswith("-----BEGIN CERTIFICATE-----\nMIIB")
    assert spec["caBundle"].endswith("-----END CERTIFICATE-----\n")


def test_client_credentials_from_an_existing_secret() -> None:
    docs = render("client-credentials-secret.yaml")
    creds = connection(docs)["spec"]["auth"]["clientCredentials"]
    assert creds["secretRef"] == {"namespace": NAMESPACE, "name": "scaivault-client"}
    assert (creds["clientIdKey"], creds["clientSecretKey"]) == ("id", "secret")
    assert "scope" not in creds
    assert find_all(docs, "Secret") == []


def test_plain_http_to_a_service_needs_insecure_http() -> None:
    """scaivault.insecureHTTP reaches the connection (only when true: the CRD's default is false); without it, the
    CRD refuses a plain-HTTP URL to a host that is not loopback — at `helm install`, not later."""
    spec = connection(render("client-credentials-secret.yaml"))["spec"]
    assert spec["url"].startswith("http://scaivault.")
    assert spec["insecureHTTP"] is True
    assert "insecureHTTP" not in connection(render("token.yaml"))["spec"]

    refused = find(render("client-credentials-secret.yaml", "scaivault.insecureHTTP=false"),
                   "ClusterVaultConnection", "default")  # fmt: skip
    assert "insecureHTTP" not in refused["spec"]
    assert URL_HTTPS_MESSAGE in "\n".join(api_server_errors(CONNECTION_SCHEMA, refused))


@pytest.mark.parametrize("values", ["token.yaml", "client-credentials.yaml"])
def test_credentials_appear_only_in_their_secret(values: str) -> None:
    docs = render(values)
    leaks = [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in docs
        if doc["kind"] != "Secret" and any(c in str(doc) for c in ("skt_canary_token_value", "canary-client-secret"))
    ]
    assert leaks == []


@pytest.mark.parametrize(
    ("values", "name"),
    [("token.yaml", "svo-scaivault-operator-token"), ("client-credentials.yaml", "svo-scaivault-operator-client")],
)
def test_the_credentials_secret_the_chart_makes_opts_in(values: str, name: str) -> None:
    """The operator reads credentials only from Secrets labelled scaivault.scailabs.ai/credentials=true."""
    secret = find(render(values), "Secret", name, NAMESPACE)
    assert secret["metadata"]["labels"][CREDENTIALS_LABEL] == "true"
