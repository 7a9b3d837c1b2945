"""kubeconfig: the configuration found as client-go finds it, merged as kubectl merges, shared by both clients."""

from __future__ import annotations

import base64
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaivault_operator._cogs.kubeconfig import KubeConfigError, load, merge_kubeconfigs

CANARY = "canary-token-7f3a9c"


def kubeconfig(
    path: Path,
    *,
    context: str = "ctx",
    cluster: str = "c",
    user: str = "u",
    server: str = "https://a.example:6443",
    user_body: dict[str, Any] | None = None,
    cluster_body: dict[str, Any] | None = None,
    current: str | None = "ctx",
    namespace: str | None = None,
) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, **(cluster_body or {})}}],
        "users": [{"name": user, "user": user_body if user_body is not None else {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user,
                                                     **({"namespace": namespace} if namespace else {})}}],
    }  # fmt: skip
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def service_account(directory: Path, token: str = CANARY, namespace: str = "scaivault-system") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token + "\n", encoding="utf-8")
    (directory / "namespace").write_text(namespace, encoding="utf-8")
    (directory / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return directory


IN_POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


# -- choosing a configuration -----------------------------------------------------------------------------------


def test_kubeconfig_list_merges_first_file_wins(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a.yaml", server="https://first:6443", current="ctx")
    second = kubeconfig(tmp_path / "b.yaml", server="https://second:6443", current="other", context="other",
                        cluster="c2", user="u2")  # fmt: skip
    access = load(environ={"KUBECONFIG": f"{first}:{second}"}, service_account_dir=tmp_path / "none")
    assert access.server == "https://first:6443"
    assert access.config.context_name == "ctx"
    # Names only in the second file are still there: a context of the second file can be chosen.
    other = load(environ={"KUBECONFIG": f"{first}:{second}"}, context="other", service_account_dir=tmp_path / "none")
    assert other.server == "https://second:6443"


def test_current_context_comes_from_the_first_file_that_sets_it(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a.yaml", server="https://first:6443", current=None)
    second = kubeconfig(tmp_path / "b.yaml", server="https://second:6443", current="other", context="other",
                        cluster="c2", user="u2")  # fmt: skip
    access = load(environ={"KUBECONFIG": f"{first}:{second}"}, service_account_dir=tmp_path / "none")
    assert (access.config.context_name, access.server) == ("other", "https://second:6443")


def test_same_name_in_two_files_keeps_the_first(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a.yaml", server="https://first:6443")
    second = kubeconfig(tmp_path / "b.yaml", server="https://second:6443")
    merged = merge_kubeconfigs([first, second])
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://first:6443"]


def test_missing_and_empty_entries_are_skipped(tmp_path: Path) -> None:
    real = kubeconfig(tmp_path / "real.yaml")
    access = load(environ={"KUBECONFIG": f":{tmp_path / 'missing.yaml'}::{real}:"}, service_account_dir=tmp_path)
    assert access.server == "https://a.example:6443"
    assert "missing.yaml" in access.source  # the source names what was asked for


def test_no_existing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="no kubeconfig file found"):
        load(environ={"KUBECONFIG": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}, service_account_dir=tmp_path)


def test_malformed_file_is_an_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [unclosed", encoding="utf-8")
    with pytest.raises(KubeConfigError, match=r"bad\.yaml is not valid YAML"):
        load(environ={"KUBECONFIG": str(bad)}, service_account_dir=tmp_path)


def test_explicit_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist"):
        load(tmp_path / "nope.yaml", environ={}, service_account_dir=tmp_path)


def test_relative_paths_are_relative_to_their_own_file(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = kubeconfig(tmp_path / "one" / "a.yaml", current=None, cluster_body={"certificate-authority": "ca.pem"})
    user = {"client-certificate": "c.pem", "client-key": "k.pem", "tokenFile": "tok"}
    second = kubeconfig(tmp_path / "two" / "b.yaml", context="other", cluster="c2", user="u2", user_body=user)
    merged = merge_kubeconfigs([first, second])
    cluster = {c["name"]: c["cluster"] for c in merged["clusters"]}
    users = {u["name"]: u["user"] for u in merged["users"]}
    assert cluster["c"]["certificate-authority"] == str(tmp_path / "one" / "ca.pem")
    assert users["u2"] == {
        "client-certificate": str(tmp_path / "two" / "c.pem"),
        "client-key": str(tmp_path / "two" / "k.pem"),
        "tokenFile": str(tmp_path / "two" / "tok"),
    }


def test_kubeconfig_wins_over_in_cluster(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    config = kubeconfig(tmp_path / "k.yaml")
    access = load(environ={**IN_POD, "KUBECONFIG": str(config)}, service_account_dir=sa)
    assert access.server == "https://a.example:6443"


def test_in_cluster_uses_the_service_env_vars_not_cluster_dns(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    access = load(environ=IN_POD, service_account_dir=sa, default_kubeconfig=kubeconfig(tmp_path / "home.yaml"))
    assert access.server == "https://10.96.0.1:443"
    assert access.config.cluster.certificate_auth == str(sa / "ca.crt")
    assert access.config.user is not None
    assert access.config.user.token_file == str(sa / "token")
    assert access.config.user.token is None  # read when needed, so a rotated token is picked up
    assert access.config.context.namespace == "scaivault-system"
    assert "in-cluster" in access.source


def test_in_cluster_ipv6_host_is_bracketed(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    access = load(environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
                  service_account_dir=sa)  # fmt: skip
    assert access.server == "https://[fd00::1]:443"


@pytest.mark.parametrize("missing", ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "token"])
def test_not_in_a_pod_falls_back_to_the_home_kubeconfig(tmp_path: Path, missing: str) -> None:
    sa = service_account(tmp_path / "sa")
    environ = dict(IN_POD)
    if missing == "token":
        (sa / "token").unlink()
    else:
        del environ[missing]
    home = kubeconfig(tmp_path / "home.yaml", server="https://home:6443")
    assert load(environ=environ, service_account_dir=sa, default_kubeconfig=home).server == "https://home:6443"


def test_nothing_found_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError) as caught:
        load(environ={}, service_account_dir=tmp_path / "sa", default_kubeconfig=tmp_path / "config")
    message = str(caught.value)
    assert "KUBECONFIG is not set" in message
    assert "KUBERNETES_SERVICE_HOST" in message
    assert str(tmp_path / "config") in message


# -- Kopf's credentials: the same server and user ----------------------------------------------------------------


async def test_kopf_gets_the_same_server_and_rereads_a_rotated_token(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa", token="first-token")
    access = load(environ=IN_POD, service_account_dir=sa)
    info = await access.connection_info()
    assert (info.server, info.token, info.ca_path) == ("https://10.96.0.1:443", "first-token", str(sa / "ca.crt"))
    assert info.default_namespace == "scaivault-system"
    (sa / "token").write_text("rotated-token\n", encoding="utf-8")  # the kubelet rotated it
    assert (await access.connection_info()).token == "rotated-token"


async def test_kopf_gets_client_certificates_and_ca_data(tmp_path: Path) -> None:
    cert, key, ca = (base64.b64encode(text.encode()).decode() for text in ("CERT", "KEY", "CA"))
    config = kubeconfig(tmp_path / "k.yaml", namespace="apps",
                        cluster_body={"certificate-authority-data": ca, "insecure-skip-tls-verify": False},
                        user_body={"client-certificate-data": cert, "client-key-data": key})  # fmt: skip
    info = await load(config, environ={}).connection_info()
    assert (info.ca_data, info.certificate_data, info.private_key_data) == (ca, cert, key)
    assert (info.token, info.insecure, info.default_namespace) == (None, None, "apps")


async def test_kopf_gets_a_token_from_an_exec_plugin(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', 'status': "
        "{'token': os.environ['PLUGIN_TOKEN'], 'expirationTimestamp': '2030-01-02T03:04:05Z'}}))\n",
        encoding="utf-8",
    )
    exec_spec = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                 "args": [str(plugin)], "env": [{"name": "PLUGIN_TOKEN", "value": CANARY}]}  # fmt: skip
    info = await load(kubeconfig(tmp_path / "k.yaml", user_body={"exec": exec_spec}), environ={}).connection_info()
    assert info.token == CANARY
    assert info.expiration == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_a_failing_exec_plugin_is_an_error_without_its_output(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\necho {CANARY}\necho {CANARY} >&2\nexit 3\n", encoding="utf-8")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}
    access = load(kubeconfig(tmp_path / "k.yaml", user_body={"exec": exec_spec}), environ={})
    with pytest.raises(KubeConfigError, match="exited with 3") as caught:
        await access.connection_info()
    assert CANARY not in str(caught.value)


async def test_unreadable_token_file_error_names_the_file_not_the_token(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    access = load(environ=IN_POD, service_account_dir=sa)
    (sa / "token").write_text("", encoding="utf-8")
    with pytest.raises(KubeConfigError, match="is empty"):
        await access.connection_info()
    (sa / "token").unlink()
    with pytest.raises(KubeConfigError, match="cannot read token file") as caught:
        await access.connection_info()
    assert CANARY not in str(caught.value)


def test_errors_never_quote_tokens(tmp_path: Path) -> None:
    # A context that names a user that does not exist: lightkube's error must not carry the token of another user.
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://x:1"}}],
        "users": [{"name": "u", "user": {"token": CANARY}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "missing", "user": "u"}}],
        "current-context": "ctx",
    }), encoding="utf-8")  # fmt: skip
    with pytest.raises(KubeConfigError) as caught:
        load(path, environ={})
    assert CANARY not in str(caught.value)
