"""The operator finds its cluster as kubectl does: ``KUBECONFIG=a:b`` (a missing first file, the emulator in the
second) reaches both clients — Kopf's watches and our own lightkube calls — with the same server and token."""

from __future__ import annotations

from pathlib import Path

import yaml
from operator_helpers import CONN, cluster_connection, vaultsecret

CANARY = "kubeconfig-canary-token-51c0"


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": CANARY}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "operator"}}],
        "current-context": "emulator",
    }), encoding="utf-8")  # fmt: skip
    return path


async def test_kubeconfig_list_serves_kopf_and_lightkube_alike(bare_env, dev_vault, tmp_path, monkeypatch, caplog):
    config = _kubeconfig(tmp_path / "second.yaml", bare_env.cluster.url)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'first-missing.yaml'}:{config}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    bare_env.via_kubeconfig = True
    await bare_env.token_secret(dev_vault.ro_token)
    await bare_env.create(cluster_connection(CONN, dev_vault.url))
    mark = bare_env.mark()
    runtime = await bare_env.start_operator()

    dev_vault.vault.write("apps/web/db", {"password": "pw"})
    await bare_env.create(vaultsecret("db", "apps/web/db"))
    await bare_env.wait_synced("team-a", "db", 1)

    requests = bare_env.operator_requests(mark)
    watches = [r for r in requests if r.params.get("watch") == "true"]
    calls = [r for r in requests if r.params.get("watch") != "true"]
    assert watches, "Kopf watched through the kubeconfig's server"
    assert any(r.method.value == "PATCH" for r in calls), "our own client wrote through it"
    assert {r.headers.get("Authorization") for r in requests} == {f"Bearer {CANARY}"}
    assert await runtime.readiness() == (True, "ok")
    assert CANARY not in caplog.text
