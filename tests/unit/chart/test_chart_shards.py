"""``shards`` (docs/sharding.md): N operator Deployments that split the VaultSecrets by a hash of their namespace.

One shard renders exactly what the chart rendered before sharding existed (same names, labels and selectors: an
upgrade changes nothing). N shards: Deployment ``<fullname>-shard-<i>`` runs ``--shard=i/N``, its pods carry the
label ``scaivault.scailabs.ai/shard=<i>`` and its selector includes it (no Deployment selects another's pods); with
``replicaCount > 1`` each has its own peering object and PodDisruptionBudget. The ServiceAccount, RBAC, metrics
Service, ServiceMonitor and NetworkPolicy are shared and select every shard's pods. The operator's own parser and
``Shard`` read the rendered command lines: every namespace belongs to exactly one shard, and only shard 0 writes the
connections' status.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from chart_support import (
    CHART,
    FULLNAME,
    NAMESPACE,
    REPO,
    HelmFailed,
    JsonDict,
    find,
    find_all,
    helm,
    render,
    rules,
)

from scaivault_operator._logic.sharding import MAX_SHARDS, Shard
from scaivault_operator.cli import build_parser

SHARD_LABEL = "scaivault.scailabs.ai/shard"
NAMESPACES = ["default", "kube-system", "team-a", "team-b", "payments"] + [f"tenant-{i}" for i in range(40)]


def deployments(docs: list[JsonDict]) -> list[JsonDict]:
    return find_all(docs, "Deployment")


def args_of(deployment: JsonDict) -> list[str]:
    [box] = deployment["spec"]["template"]["spec"]["containers"]
    result: list[str] = box["args"]
    return result


def pod_labels(deployment: JsonDict) -> dict[str, str]:
    result: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return result


def selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return match_labels.items() <= labels.items()


def shard_of_deployment(deployment: JsonDict) -> Shard:
    """What the operator started with this Deployment's arguments serves (its own parser, its own ``Shard``)."""
    args = build_parser().parse_args(args_of(deployment))
    return Shard.of(args.shard, args.selector)


# -- one shard: unchanged ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["defaults.yaml", "ha.yaml", "ha-namespaced.yaml", "namespaced.yaml"])
def test_one_shard_is_the_unsharded_chart(values: str) -> None:
    docs = render(values)
    assert render(values, "shards=1") == docs
    [deployment] = deployments(docs)
    assert deployment["metadata"]["name"] == FULLNAME
    assert deployment["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "scaivault-operator", "app.kubernetes.io/instance": "svo"}
    }
    assert SHARD_LABEL not in pod_labels(deployment)
    assert not [arg for arg in args_of(deployment) if arg.startswith("--shard")]
    assert shard_of_deployment(deployment) == Shard()
    for pdb in find_all(docs, "PodDisruptionBudget"):
        assert pdb["metadata"]["name"] == FULLNAME
    assert "podTargetLabels" not in json.dumps(docs)


# -- several shards ---------------------------------------------------------------------------------------------


def test_each_shard_is_a_deployment_with_its_shard_argument() -> None:
    docs = render("shards.yaml")
    found = deployments(docs)
    assert [d["metadata"]["name"] for d in found] == [f"{FULLNAME}-shard-{i}" for i in range(3)]
    for index, deployment in enumerate(found):
        assert deployment["metadata"]["namespace"] == NAMESPACE
        assert [arg for arg in args_of(deployment) if arg.startswith("--shard")] == [f"--shard={index}/3"]
        assert deployment["spec"]["replicas"] == 2
        assert pod_labels(deployment)[SHARD_LABEL] == str(index)
        assert deployment["metadata"]["labels"][SHARD_LABEL] == str(index)
        assert shard_of_deployment(deployment) == Shard(index, 3)


@pytest.mark.parametrize(("values", "count"), [("shards.yaml", 3), ("shards-namespaced.yaml", 2)])
def test_every_namespace_is_served_by_exactly_one_shard_and_one_writes_connection_status(
    values: str, count: int
) -> None:
    shards = [shard_of_deployment(d) for d in deployments(render(values))]
    assert len(shards) == count
    for namespace in NAMESPACES:
        assert sum(shard.owns_namespace(namespace) for shard in shards) == 1, namespace
    assert [shard.writes_connection_status for shard in shards] == [True] + [False] * (count - 1)


def test_namespaced_shards_serve_the_same_namespaces() -> None:
    found = deployments(render("shards-namespaced.yaml"))
    for deployment in found:
        args = build_parser().parse_args(args_of(deployment))
        assert args.namespace == ["team-a", "team-b", "team-c"]
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one replica each: never two at once
    assert find_all(render("shards-namespaced.yaml"), "PodDisruptionBudget") == []


@pytest.mark.parametrize("values", ["shards.yaml", "shards-namespaced.yaml"])
def test_no_deployment_selects_another_shards_pods(values: str) -> None:
    found = deployments(render(values))
    for deployment in found:
        match = deployment["spec"]["selector"]["matchLabels"]
        owners = [other["metadata"]["name"] for other in found if selects(match, pod_labels(other))]
        assert owners == [deployment["metadata"]["name"]]


def test_shared_objects_select_every_shard() -> None:
    docs = render("shards.yaml", "networkPolicy.enabled=true", "networkPolicy.apiServer.peers={172.18.0.2/32}")
    labels = [pod_labels(d) for d in deployments(docs)]
    service = find(docs, "Service", f"{FULLNAME}-metrics", NAMESPACE)
    monitor = find(docs, "ServiceMonitor", FULLNAME, NAMESPACE)
    policy = find(docs, "NetworkPolicy", FULLNAME, NAMESPACE)
    for pod in labels:
        assert selects(service["spec"]["selector"], pod)
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    # Prometheus Operator copies the pod label onto each target: metrics per shard.
    assert monitor["spec"]["podTargetLabels"] == [SHARD_LABEL]


def test_each_shard_has_its_own_budget_and_spreads_its_own_replicas() -> None:
    docs = render("shards.yaml")
    found = deployments(docs)
    budgets = {pdb["metadata"]["name"]: pdb for pdb in find_all(docs, "PodDisruptionBudget")}
    assert sorted(budgets) == [f"{FULLNAME}-shard-{i}" for i in range(3)]
    for deployment in found:
        pdb = budgets[deployment["metadata"]["name"]]
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert pdb["spec"]["maxUnavailable"] == 1
        anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["labelSelector"] == deployment["spec"]["selector"]
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def _peering_args(docs: list[JsonDict]) -> list[str]:
    return [arg.removeprefix("--peering=") for d in deployments(docs) for arg in args_of(d) if arg.startswith("--p")]


def test_each_shard_peers_through_its_own_peering_object() -> None:
    """One peering shared by the shards would let a single pod of them all work."""
    docs = render("shards.yaml")
    names = _peering_args(docs)
    assert names == [f"{FULLNAME}-shard-{i}" for i in range(3)]
    assert {p["metadata"]["name"] for p in find_all(docs, "ClusterKopfPeering")} == set(names)
    cluster_role = find(docs, "ClusterRole", FULLNAME)
    assert ("kopf.dev", "clusterkopfpeerings", ("patch",), tuple(names)) in rules(cluster_role)
    assert ("kopf.dev", "clusterkopfpeerings", ("list", "watch"), ()) in rules(cluster_role)


def test_namespaced_shards_with_peering_have_a_peering_object_per_shard_and_namespace() -> None:
    docs = render("shards-namespaced.yaml", "replicaCount=2", "peering.name=svo-peers")
    names = _peering_args(docs)
    assert names == ["svo-peers-shard-0", "svo-peers-shard-1"]
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in find_all(docs, "KopfPeering")} == {
        (namespace, name) for namespace in ("team-a", "team-b", "team-c") for name in names
    }
    for namespace in ("team-a", "team-b", "team-c"):
        assert ("kopf.dev", "kopfpeerings", ("patch",), tuple(names)) in rules(find(docs, "Role", FULLNAME, namespace))


def test_rbac_and_service_account_are_shared() -> None:
    sharded, single = render("shards.yaml"), render("ha.yaml", "peering.name=")
    [account] = find_all(sharded, "ServiceAccount")
    for deployment in deployments(sharded):
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]

    def without_peering_names(docs: list[JsonDict]) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
        return {(*rule[:3], () if rule[0] == "kopf.dev" else rule[3]) for rule in rules(find(docs, "ClusterRole"))}

    assert without_peering_names(sharded) == without_peering_names(single)
    assert [d["kind"] for d in sharded if d["kind"].endswith(("Role", "RoleBinding"))] == [
        d["kind"] for d in single if d["kind"].endswith(("Role", "RoleBinding"))
    ]


def test_long_names_stay_within_63_characters_and_apart() -> None:
    long = "x" * 63
    docs = render(None, "shards=12", "replicaCount=2", f"fullnameOverride={long}", f"peering.name={long}")
    names = [d["metadata"]["name"] for d in deployments(docs)]
    peerings = _peering_args(docs)
    for group in (names, peerings):
        assert len(group) == len(set(group)) == 12
        assert all(len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) for name in group)
    assert names[11].endswith("-shard-11")


def test_the_chart_allows_as_many_shards_as_the_operator() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["shards"]["maximum"] == MAX_SHARDS
    assert len(deployments(render(None, f"shards={MAX_SHARDS}"))) == MAX_SHARDS
    with pytest.raises(HelmFailed, match="/shards"):
        helm("template", "svo", str(CHART), "--set", f"shards={MAX_SHARDS + 1}")
    with pytest.raises(HelmFailed, match="/shards"):
        helm("template", "svo", str(CHART), "--set", "shards=two")


def test_notes_name_every_shard() -> None:
    output = helm("install", "svo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client", "--set", "shards=2",
                  "--set", "replicaCount=2")  # fmt: skip
    text = output.split("NOTES:", 1)[1]
    assert "2 shards split the VaultSecrets by a hash of their namespace" in text
    assert "shard 0 writes the connections' status" in text
    assert "its own peering object" in text
    for index in range(2):
        assert f"rollout status deployment/{FULLNAME}-shard-{index}" in text


# -- docs/sharding.md ---------------------------------------------------------------------------------------------


def test_the_documented_chart_commands_render_the_shards_they_promise() -> None:
    text = (REPO / "docs" / "sharding.md").read_text(encoding="utf-8")
    commands = [block for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL) if "helm " in block]
    assert commands
    for command in commands:
        words = shlex.split(command.replace("\\\n", " "), comments=True)
        sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
        shards = int(next(item.split("=", 1)[1] for item in sets if item.startswith("shards=")))
        assert len(deployments(render(None, *sets))) == shards


def test_the_documented_selector_release_passes_the_settings(tmp_path: Path) -> None:
    """docs/sharding.md, "Selector shards with the chart": the second release's values."""
    text = (REPO / "docs" / "sharding.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL) if "SCAIVAULT_OPERATOR_SELECTOR" in b]
    values = tmp_path / "b.yaml"
    values.write_text(block, encoding="utf-8")
    docs = render(str(values))
    [deployment] = deployments(docs)
    assert deployment["metadata"]["name"] == "scaivault-operator-b"
    [box] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in box["env"]}
    assert env["SCAIVAULT_OPERATOR_SELECTOR"] == "shard!=a"
    assert env["SCAIVAULT_OPERATOR_CONNECTION_STATUS"] == "false"
    assert find_all(docs, "CustomResourceDefinition") == []
    assert find_all(docs, "ClusterVaultConnection") == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", ["docs/sharding.md", "docs/install.md", "README.md"])
def test_sharding_links_resolve(doc: str) -> None:
    """Every relative link of docs/sharding.md, and the links to it, name a file that exists and a heading of it."""
    text = (REPO / doc).read_text(encoding="utf-8")
    checked = 0
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path, _, anchor = target.partition("#")
        if path.startswith(("http://", "https://")) or (doc != "docs/sharding.md" and "sharding.md" not in path):
            continue
        file = (REPO / doc).parent / path if path else REPO / doc
        assert file.is_file(), f"{doc}: link to {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), flags=re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"{doc}: no heading for #{anchor} in {path or doc}"
        checked += 1
    assert checked
