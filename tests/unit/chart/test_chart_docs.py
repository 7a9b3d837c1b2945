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


# -- docs/rollout.md and the rollout example ---------------------------------------------------------------------

ROLLOUT_DOC = (REPO / "docs" / "rollout.md").read_text(encoding="utf-8")
LINKED_DOCS = ("README.md", "docs/rollout.md", "docs/crds.md", "docs/install.md", "docs/architecture.md")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_rollout_doc_links_resolve() -> None:
    """Every relative link of docs/rollout.md (and the other docs' links to it) names a file that exists, and an
    anchor that is a heading of it."""
    for doc in LINKED_DOCS:
        text = (REPO / doc).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path, _, anchor = target.partition("#")
            if path.startswith(("http://", "https://")) or (doc != "docs/rollout.md" and "rollout.md" not in path):
                continue
            file = (REPO / doc).parent / path if path else REPO / doc
            assert file.is_file(), f"{doc}: link to {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), flags=re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, f"{doc}: no heading for #{anchor} in {path or doc}"
    readme = DOCS["README.md"]
    section = readme[readme.index("### How a new version reaches your pods") :]
    assert "[docs/rollout.md](docs/rollout.md)" in section[: section.index("\n### ", 1)]


def _rollout_specs() -> list[JsonDict]:
    """The VaultSecret specs of docs/rollout.md's and README's YAML blocks that set spec.rollout."""
    specs = []
    for text in (ROLLOUT_DOC, DOCS["README.md"]):
        for block in _blocks(text, "yaml"):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and isinstance(doc.get("spec"), dict) and "rollout" in doc["spec"]:
                    specs.append(doc["spec"])
    return specs


def test_the_documented_rollout_specs_are_valid() -> None:
    from scaivault_operator._cogs.api import VaultSecretSpec

    specs = _rollout_specs()
    assert len(specs) >= 4
    schema = openapi_schema(load_crds()["VaultSecret"])
    for spec in specs:
        body = {"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "VaultSecret",
                "metadata": {"name": "doc", "namespace": "shop"}, "spec": spec}  # fmt: skip
        assert api_server_errors(schema, body) == [], spec
        assert VaultSecretSpec.model_validate(spec).rollout is not None


def test_the_documented_annotations_events_and_setting_are_the_operators() -> None:
    from scaivault_operator._core import rollout as core
    from scaivault_operator._logic.rollout import RELOAD_ANNOTATION, ROLLOUT_ANNOTATION

    for name in (RELOAD_ANNOTATION, ROLLOUT_ANNOTATION, core.RESTARTED, core.WORKLOADS_RESTARTED,
                 core.ROLLOUT_FAILED, core.ROLLOUT_TARGET_NOT_FOUND, "SCAIVAULT_OPERATOR_ROLLOUT_ENABLED"):  # fmt: skip
        assert f"`{name}" in ROLLOUT_DOC, name
    assert f'{RELOAD_ANNOTATION}: "true"' in ROLLOUT_DOC


def test_the_documented_rollout_off_command_renders_no_workload_rules() -> None:
    [command] = [block for block in _blocks(ROLLOUT_DOC, "bash") if "helm upgrade" in block]
    sets = _sets(command)
    assert sets == ["rollout.enabled=false"]
    docs = render(None, *sets)
    for role in [d for d in docs if d["kind"] in ("ClusterRole", "Role")]:
        assert not any("apps" in rule["apiGroups"] for rule in role["rules"])
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [box] = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "SCAIVAULT_OPERATOR_ROLLOUT_ENABLED", "value": "false"} in box["env"]


def test_the_example_rollout_targets_are_example_workloads_that_use_the_secret() -> None:
    """crds/examples: each spec.rollout target is a workload of the examples, in the VaultSecret's namespace, valid
    for Kubernetes, whose pod template uses the VaultSecret's Secret (so a changed key restarts it)."""
    from scaivault_operator._cogs.api import VaultSecretSpec
    from scaivault_operator._logic.workloads import pod_spec_of, secret_uses

    examples = [doc for path in sorted((REPO / "crds" / "examples").glob("*.yaml"))
                for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]  # fmt: skip
    rolling = [doc for doc in examples if doc["kind"] == "VaultSecret" and doc["spec"].get("rollout")]
    assert rolling
    for vault_secret in rolling:
        spec = VaultSecretSpec.model_validate(vault_secret["spec"])
        assert spec.rollout is not None
        assert spec.rollout.targets
        namespace = vault_secret["metadata"]["namespace"]
        secret = spec.target.name or vault_secret["metadata"]["name"]
        for target in spec.rollout.targets:
            [workload] = [doc for doc in examples if doc["kind"] == target.kind and doc["metadata"]["name"] ==
                          target.name and doc["metadata"]["namespace"] == namespace]  # fmt: skip
            kubernetes_validate.validate(workload, "1.37", strict=True)
            kubernetes_validate.validate(workload, "1.27", strict=True)
            uses = [use for use in secret_uses(pod_spec_of(workload), secret) if use.kind != "imagePullSecret"]
            assert uses, f"{target.kind}/{target.name} does not use Secret {secret}"
