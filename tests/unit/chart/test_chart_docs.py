"""What README.md and docs/install.md tell users to run works: the `helm install` command renders with a default
connection, and the complete example's manifests are valid (the VaultSecret against its CRD, the Deployment
against Kubernetes' schema) and fit together."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_support import REPO, JsonDict, find, helm, render

sys.path.insert(0, str(REPO / "tests" / "unit" / "crds"))
from crd_support import api_server_errors, load_crds, openapi_schema

DOCS = {name: (REPO / name).read_text(encoding="utf-8") for name in ("README.md", "docs/install.md")}


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def _helm_install_sets(text: str) -> list[str]:
    """The ``--set`` values of the document's main install command (the one that sets the URL)."""
    install = "helm install scaivault-operator charts/scaivault-operator"
    [command] = [b for b in _blocks(text, "bash") if install in b and "scaivault.url=" in b]
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_documented_helm_install_renders_a_usable_default_connection(doc: str) -> None:
    sets = _helm_install_sets(DOCS[doc])
    assert sets
    docs = render(None, *sets)
    spec = find(docs, "ClusterVaultConnection", "default")["spec"]
    assert spec["url"] == "https://scaivault.scailabs.ai"
    assert spec["auth"]["tokenSecretRef"]["name"] == "scaivault-token"  # the Secret the same block creates
    assert spec["access"]


CREATE_TOKEN_SECRET = re.compile(r"kubectl (-n \S+ )?create secret generic (?P<name>\S+)")


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_documented_token_secret_is_labelled_as_credentials(doc: str) -> None:
    """The operator reads credentials only from Secrets labelled scaivault.scailabs.ai/credentials=true: every
    `kubectl create secret` in the docs is followed, in the same block, by the command that labels it."""
    created = 0
    for block in _blocks(DOCS[doc], "bash"):
        for match in CREATE_TOKEN_SECRET.finditer(block):
            created += 1
            namespace = shlex.split(block[match.start() :].splitlines()[0])[2]
            label = f"kubectl -n {namespace} label secret {match['name']} scaivault.scailabs.ai/credentials=true"
            assert label in block[match.end() :], f"{doc}: no `{label}` after `{match.group(0)}`"
    assert created >= 2


def _complete_example() -> list[JsonDict]:
    [block] = [b for b in _blocks(DOCS["README.md"], "yaml") if "kind: VaultSecret" in b and "kind: Deployment" in b]
    return [doc for doc in yaml.safe_load_all(block) if doc]


def test_the_complete_example_is_valid_and_consistent() -> None:
    vault_secret = find(_complete_example(), "VaultSecret")
    deployment = find(_complete_example(), "Deployment")
    schema = openapi_schema(load_crds()["VaultSecret"])
    assert api_server_errors(schema, vault_secret) == []
    kubernetes_validate.validate(deployment, "1.37", strict=True)
    secret_name = vault_secret["spec"]["target"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    [env] = pod["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == secret_name  # as an environment variable
    [volume] = pod["volumes"]
    assert volume["secret"]["secretName"] == secret_name  # and as files
    assert "subPath" not in pod["containers"][0]["volumeMounts"][0]  # subPath mounts never refresh
    # The documented install's access rules allow this namespace and path.
    rules = render(None, *_helm_install_sets(DOCS["README.md"]))
    [rule] = find(rules, "ClusterVaultConnection", "default")["spec"]["access"]
    assert vault_secret["metadata"]["namespace"] in rule["namespaces"]
    assert any(vault_secret["spec"]["path"].startswith(prefix) for prefix in rule["pathPrefixes"])


def _crd_section_commands() -> list[list[str]]:
    """The helm commands of docs/install.md's "CRDs: install, upgrade, and the two paths", as argument lists."""
    text = DOCS["docs/install.md"]
    start = text.index("## CRDs: install, upgrade, and the two paths")
    section = text[start : text.index("\n## ", start + 1)]
    commands = []
    for block in _blocks(section, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["helm"]:
                commands.append(words)
    return commands


def test_the_documented_crd_commands_use_flags_and_values_that_exist() -> None:
    """Every flag of the CRD section's helm commands is one this helm has, and every --set is a chart value."""
    commands = _crd_section_commands()
    assert {words[1] for words in commands} == {"install", "upgrade"}
    flags_used = {word for words in commands for word in words if word.startswith("--")}
    assert {"--take-ownership", "--force-conflicts", "--reuse-values"} <= flags_used
    helps = {command: helm(command, "--help") for command in ("install", "upgrade")}
    for words in commands:
        for word in words:
            if word.startswith("--"):
                assert f"  {word.split('=')[0]} " in helps[words[1]] or f", {word} " in helps[words[1]], word
    sets = sorted({words[i + 1] for words in commands for i, word in enumerate(words) if word == "--set"})
    assert sets == ["crds.install=false", "crds.install=true"]
    render(None, *sets[:1])  # the chart accepts them (values.schema.json)
    render(None, *sets[1:])


def _section(text: str, heading: str) -> str:
    """``heading``'s section of a Markdown text: up to the next heading of the same or a higher level."""
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    ends = [text.find(f"\n{'#' * n} ", start + 1) for n in range(1, len(level) + 1)]
    return text[start : min([end for end in ends if end != -1], default=len(text))]


def _sets(block: str) -> list[str]:
    words = shlex.split(block.replace("\\\n", " "), comments=True)
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


def test_the_documented_network_policy_renders_what_it_says(tmp_path: Path) -> None:
    """docs/install.md, "NetworkPolicy": the Prometheus example and the `helm upgrade` that enables the policy."""
    section = _section(DOCS["docs/install.md"], "### NetworkPolicy")
    [example] = _blocks(section, "yaml")
    values = tmp_path / "network-policy.yaml"
    values.write_text(example, encoding="utf-8")
    policy = find(render(str(values)), "NetworkPolicy")
    kubernetes_validate.validate(policy, "1.37", strict=True)
    [ingress] = policy["spec"]["ingress"]
    assert ingress["from"] == yaml.safe_load(example)["networkPolicy"]["metrics"]["from"]
    [command] = [block for block in _blocks(section, "bash") if "helm upgrade" in block]
    sets = _sets(command)
    assert "networkPolicy.enabled=true" in sets
    api_server = find(render(None, *sets), "NetworkPolicy")["spec"]["egress"][1]
    assert api_server["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]


def test_the_documented_install_by_digest_pins_the_image() -> None:
    section = _section(DOCS["docs/install.md"], "## The container image")
    [command] = [block for block in _blocks(section, "bash") if "image.digest=" in block]
    sets = [item.replace("<digest>", "0" * 64) for item in _sets(command)]
    [deployment] = [doc for doc in render(None, *sets) if doc["kind"] == "Deployment"]
    [box] = deployment["spec"]["template"]["spec"]["containers"]
    assert box["image"] == "registry.example.com/scaivault-operator@sha256:" + "0" * 64
