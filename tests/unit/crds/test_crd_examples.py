"""The example manifests in ``crds/examples``: each custom resource passes its CRD (schema and CEL rules) and parses
with its pydantic spec model, and together they make a working demo against the local dev server."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from crd_support import EXAMPLE_SUBDIRS, EXAMPLES_DIR, JsonDict, api_server_errors, is_custom_resource, load_examples
from pydantic import BaseModel

from scaivault_operator._cogs.api import (
    CONNECTION_SPECS,
    ClusterConnectionSpec,
    ConnectionRef,
    ConnectionSpec,
    VaultSecretSpec,
)
from scaivault_operator._logic.policy import check_access

EXAMPLES = load_examples()
CUSTOM_RESOURCES = [(name, doc) for name, doc in EXAMPLES if is_custom_resource(doc)]
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "VaultSecret": VaultSecretSpec,
    "ClusterVaultConnection": ClusterConnectionSpec,
    "VaultConnection": ConnectionSpec,
}


def _ids(examples: list[tuple[str, JsonDict]]) -> list[str]:
    return [f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in examples]


def _find(kind: str, name: str) -> JsonDict:
    [doc] = [doc for _, doc in EXAMPLES if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize(("filename", "document"), CUSTOM_RESOURCES, ids=_ids(CUSTOM_RESOURCES))
def test_example_passes_its_crd(schemas: dict[str, JsonDict], filename: str, document: JsonDict) -> None:
    assert document["apiVersion"] == "scaivault.scailabs.ai/v1alpha1"
    assert api_server_errors(schemas[document["kind"]], document) == []


@pytest.mark.parametrize(("filename", "document"), CUSTOM_RESOURCES, ids=_ids(CUSTOM_RESOURCES))
def test_example_parses_with_its_spec_model(filename: str, document: JsonDict) -> None:
    SPEC_MODELS[document["kind"]].model_validate(document["spec"])


def test_every_example_file_is_commented_and_namespaced_where_needed() -> None:
    for filename, document in EXAMPLES:
        assert document["metadata"]["name"]
        if document["kind"] not in ("ClusterVaultConnection", "Namespace"):
            assert document["metadata"].get("namespace"), f"{filename}: {document['kind']} needs a namespace"
    for filename in {name for name, _ in EXAMPLES}:
        assert (EXAMPLES_DIR / filename).read_text().startswith("# "), f"{filename} has no comment"


def test_every_example_directory_is_loaded() -> None:
    """A new directory of examples is checked here (and created for real by tests/e2e) only once it is in
    ``crd_support.EXAMPLE_SUBDIRS``."""
    directories = {path.parent.relative_to(EXAMPLES_DIR) for path in EXAMPLES_DIR.rglob("*.yaml")}
    assert sorted(map(str, directories)) == sorted(subdir or "." for subdir in EXAMPLE_SUBDIRS)
    assert {name.rpartition("/")[0] for name, _ in EXAMPLES} == set(EXAMPLE_SUBDIRS)


def test_the_documented_examples_are_there() -> None:
    connection = ClusterConnectionSpec.model_validate(_find("ClusterVaultConnection", "default")["spec"])
    assert connection.url == "http://127.0.0.1:8200"
    assert connection.pollInterval == "2s"
    assert connection.auth.tokenSecretRef is not None
    assert connection.auth.tokenSecretRef.model_dump() == {
        "namespace": "scaivault-system",
        "name": "scaivault-token",
        "key": "token",
    }
    salesforce = _find("VaultSecret", "salesforce-api")
    assert salesforce["metadata"]["namespace"] == "default"
    assert salesforce["spec"] == {"path": "environments/production/salesforce/api-credentials"}
    mapped = VaultSecretSpec.model_validate(_find("VaultSecret", "salesforce-env")["spec"])
    assert mapped.keys
    assert mapped.target.name
    assert mapped.target.labels
    pinned = VaultSecretSpec.model_validate(_find("VaultSecret", "salesforce-api-v1")["spec"])
    assert pinned.version == 1


#: crds/examples/templates/: the four shapes issue 12 names, each rendered over the demo's ScaiVault data.
TEMPLATE_EXAMPLES = ["billing-database", "ghcr-pull", "api-gateway-tls", "billing-config"]


@pytest.mark.parametrize("name", TEMPLATE_EXAMPLES)
def test_template_examples_render_over_the_demo_data(name: str) -> None:
    from scaivault_operator._logic.manifests import secret_data
    from scaivault_operator._logic.templating import apply_template
    from scaivault_operator._tools.demo import TEMPLATE_SECRETS, TEMPLATED

    assert name in TEMPLATED  # the demo shows it
    spec = VaultSecretSpec.model_validate(_find("VaultSecret", name)["spec"])
    assert spec.template is not None
    data = apply_template(spec, secret_data(TEMPLATE_SECRETS[spec.path], spec.keys), version=1)
    text = {key: base64.b64decode(value).decode() for key, value in data.items()}
    source = TEMPLATE_SECRETS[spec.path]
    if name == "billing-database":
        assert text == {"DATABASE_URL": "postgres://billing:demo-p%40ss%2Fword@postgres.default.svc:5432/billing",
                        "PGSSLMODE": "require"}  # fmt: skip
    elif name == "ghcr-pull":
        assert spec.secret_type == "kubernetes.io/dockerconfigjson"
        auth = json.loads(text[".dockerconfigjson"])["auths"]["ghcr.io"]
        assert base64.b64decode(auth["auth"]).decode() == "demo-bot:demo-token"
    elif name == "api-gateway-tls":
        assert spec.secret_type == "kubernetes.io/tls"
        assert text["tls.crt"] + text["tls.key"] == source["bundle"]  # leaf, chain, key: the bundle's order
        assert text["ca.crt"].count("BEGIN CERTIFICATE") == 1
    else:
        config = yaml.safe_load(text["config.yaml"])
        assert config["database"]["password"] == source["password"]
        assert text["config.yaml"].endswith("\n")
        assert {"user", "password", "host", "dbname", "config.yaml"} == set(text)  # mergePolicy Merge


def test_the_token_secret_is_the_one_the_connection_reads() -> None:
    ref = _find("ClusterVaultConnection", "default")["spec"]["auth"]["tokenSecretRef"]
    secret = _find("Secret", ref["name"])
    assert secret["metadata"]["namespace"] == ref["namespace"]
    assert secret["stringData"] == {ref["key"]: "dev-token"}  # the dev server's token (`make dev-vault`)
    assert _find("Namespace", ref["namespace"])


def _reads(spec: VaultSecretSpec) -> list[tuple[ConnectionRef, str]]:
    """(connection, path) of every ScaiVault path the VaultSecret reads: ``spec.path``, or each source's path (through
    its own connection, else the spec's) and, for each ``dataFrom`` prefix, a path just under it (through the spec's
    connection)."""
    if spec.path is not None:
        return [(spec.connection, spec.path)]
    reads = [(source.connectionRef or spec.connection, source.path) for source in spec.sources or ()]
    reads += [(spec.connection, entry.prefix + ("" if entry.prefix.endswith("/") else "/") + "found")
              for entry in spec.dataFrom or ()]  # fmt: skip
    return reads


@pytest.mark.parametrize(
    "document",
    [doc for _, doc in CUSTOM_RESOURCES if doc["kind"] == "VaultSecret"],
    ids=lambda doc: doc["metadata"]["name"],
)
def test_every_example_vaultsecret_is_allowed_by_its_connection(document: JsonDict) -> None:
    """The operator's own decision (``policy.check_access``) for every path the example reads: nothing is
    PolicyDenied. A ``dataFrom`` prefix must also lie under an allowed prefix as a whole (it is a plain string
    prefix), so that every secret it can find is allowed, not only the one probed."""
    spec = VaultSecretSpec.model_validate(document["spec"])
    namespace = document["metadata"]["namespace"]
    reads = _reads(spec)
    assert reads
    for ref, path in reads:
        connection = _find(ref.kind, ref.name)
        decision = check_access(
            connection_kind=ref.kind,
            connection_namespace=connection["metadata"].get("namespace"),
            connection_name=ref.name,
            access=CONNECTION_SPECS[ref.kind].model_validate(connection["spec"]).access,
            namespace=namespace,
            namespace_labels=None,
            path=path,
        )
        assert decision.allowed, decision.message
    if spec.dataFrom:
        connection = CONNECTION_SPECS[spec.connection.kind].model_validate(
            _find(spec.connection.kind, spec.connection.name)["spec"]
        )
        allowed = [
            prefix.replace("{namespace}", namespace)
            for rule in connection.access or []
            if rule.namespaces is not None and namespace in rule.namespaces
            for prefix in rule.pathPrefixes
        ]
        for entry in spec.dataFrom:
            assert any(entry.prefix.startswith(prefix) for prefix in allowed), (entry.prefix, allowed)
