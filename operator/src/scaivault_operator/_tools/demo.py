"""``make demo``: the whole product in one command, on a machine with nothing but Python.

Owned here: the demo script. It starts a local ScaiVault (dev-vault) and writes the quickstart's secret (and the
secrets of ``crds/examples/templates/`` and ``crds/examples/sources/``), picks a Kubernetes API — the kubeconfig's
cluster when one answers, otherwise kmock's in-process emulator, and says which — applies ``crds/examples/``,
``templates/`` and ``sources/`` (the connection pointed at the local ScaiVault), runs the real operator in-process,
shows the Secrets appear (the templated ones, and those built from several secrets or from every secret under a
prefix), writes version 2 and shows it follow while the pinned VaultSecret stays, then shows two
Deployments restarted for the key they use (spec.rollout), and only the one reading every key (envFrom) restarted
again for version 3, which changes a key the other does not read.

Values are shown masked (length and a short fingerprint), as the operator itself never logs them. On a real
cluster the demo removes the objects it created when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import ANNOTATION_SOURCES, ANNOTATION_VERSION
from scaivault_operator._logic.rollout import ROLLOUT_ANNOTATION
from scaivault_operator.testing import Cluster, emulated_cluster, real_cluster, running_operator

__all__ = ["main", "run_demo"]

PATH = "environments/production/salesforce/api-credentials"
TOKEN = "dev-token"
V1 = {"client_id": "3MVG9...", "client_secret": "REDACTED"}
V2 = {"client_id": "3MVG9...", "client_secret": "NEW_REDACTED"}
V3 = {"client_id": "3MVG9-rotated...", "client_secret": "NEW_REDACTED"}  # only the key the Deployment does not use
APP = "billing"  # the demo's Deployment: SALESFORCE_CLIENT_SECRET from Secret billing-salesforce-env
WORKER = "billing-worker"  # crds/examples/30-deployment-billing-worker.yaml: every key of it (envFrom)
EXAMPLES = Path(__file__).resolve().parents[4] / "crds" / "examples"
CRDS = EXAMPLES.parent


def _pem(label: str, text: str) -> str:
    return f"-----BEGIN {label}-----\n{base64.b64encode(text.encode()).decode()}\n-----END {label}-----\n"


#: The ScaiVault secrets of crds/examples/templates/ (demo values; the PEM blocks hold no real certificate or key).
TEMPLATE_SECRETS: dict[str, dict[str, Any]] = {
    "environments/production/postgres/billing": {
        "user": "billing",
        "password": "demo-p@ss/word",
        "host": "postgres.default.svc",
        "dbname": "billing",
    },
    "environments/production/registry/ghcr": {"registry": "ghcr.io", "username": "demo-bot", "password": "demo-token"},
    "environments/production/tls/api-gateway": {
        "bundle": _pem("CERTIFICATE", "demo leaf certificate")
        + _pem("CERTIFICATE", "demo intermediate CA")
        + _pem("PRIVATE KEY", "demo private key"),
    },
}
#: The templated Secrets of crds/examples/templates/ the demo shows.
TEMPLATED = ("billing-database", "ghcr-pull", "api-gateway-tls", "billing-config")
#: The ScaiVault secrets of crds/examples/sources/ (demo values) and their tags: the payments ones are found by
#: spec.dataFrom (prefix and tags; the legacy one lacks the production tag).
SOURCE_SECRETS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "environments/production/postgres/orders-server": ({"host": "postgres.default.svc", "port": 5432,
                                                        "dbname": "orders"}, []),
    "environments/production/postgres/orders-login": ({"user": "orders", "password": "demo-p@ss"}, []),
    "environments/production/redis/orders": ({"host": "redis.default.svc", "password": "demo-redis"}, []),
    "environments/production/payments/stripe/api": ({"token": "sk_demo"}, ["payments", "production"]),
    "environments/production/payments/adyen/api": ({"api_key": "ak_demo", "hmac_key": "hk_demo"},
                                                   ["payments", "production", "eu"]),
    "environments/production/payments/legacy/api": ({"token": "old"}, ["payments"]),
}  # fmt: skip
#: The Secrets of crds/examples/sources/ the demo shows.
COMPOSED = ("orders-database", "payments-keys", "orders-config")


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _mask(encoded: str) -> str:
    raw = base64.b64decode(encoded)
    return f"<{len(raw)} bytes, sha256:{hashlib.sha256(raw).hexdigest()[:8]}>"


def load_examples(vault_url: str) -> list[dict[str, Any]]:
    """The example manifests in apply order (``templates/`` and ``sources/`` last), with the connection's URL pointed
    at the local ScaiVault."""
    docs: list[dict[str, Any]] = []
    more = [*sorted((EXAMPLES / "templates").glob("*.yaml")), *sorted((EXAMPLES / "sources").glob("*.yaml"))]
    for path in [*sorted(EXAMPLES.glob("*.yaml")), *more]:
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for doc in docs:
        if doc["kind"] in ("ClusterVaultConnection", "VaultConnection"):
            doc["spec"]["url"] = vault_url
    return docs


async def _wait(what: str, check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


class Demo:
    def __init__(self, cluster: Cluster, vault: Any, out: TextIO) -> None:
        self.cluster, self.vault, self.out = cluster, vault, out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def secret_version(self, namespace: str, name: str) -> str | None:
        secret = await self.cluster.get("Secret", namespace, name)
        if secret is None:
            return None
        return str(((secret.get("metadata") or {}).get("annotations") or {}).get("scaivault.scailabs.ai/version"))

    async def show_secret(self, namespace: str, name: str) -> None:
        secret = await self.cluster.get("Secret", namespace, name) or {}
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        kind = "" if secret.get("type", "Opaque") == "Opaque" else f", type {secret.get('type')}"
        sources = annotations.get(ANNOTATION_SOURCES)
        held = f"from {sources}" if sources else f"version {annotations.get(ANNOTATION_VERSION)}"
        self.say(f"  Secret {namespace}/{name}  ({held}{kind})")
        for key, value in sorted((secret.get("data") or {}).items()):
            self.say(f"    {key:<26} {_mask(value)}")

    async def show_vaultsecrets(self, names: list[tuple[str, str]]) -> None:
        self.say(f"  {'NAMESPACE/NAME':<28} {'PATH':<52} {'PINNED':>6} {'SYNCED':>6}  {'READY':<6} REASON")
        for namespace, name in names:
            vs = await self.cluster.get("VaultSecret", namespace, name) or {}
            status = vs.get("status") or {}
            ready = conditions.ready_of(status)
            spec = vs.get("spec") or {}
            cells = [
                f"{namespace}/{name}",
                spec.get("path", ""),
                spec.get("version", "-"),
                status.get("syncedVersion", "-"),
                ready.get("status", "-"),
                ready.get("reason", "-"),
            ]
            self.say("  {:<28} {:<52} {!s:>6} {!s:>6}  {:<6} {}".format(*cells))  # fmt: skip


@contextlib.asynccontextmanager
async def _pick_cluster(out: TextIO, force_emulated: bool) -> AsyncIterator[tuple[Cluster, bool]]:
    if not force_emulated:
        try:
            async with real_cluster() as cluster:
                print(f"Kubernetes: the cluster in your kubeconfig ({cluster.url}).", file=out)
                yield cluster, True
                return
        except ConnectionError as exc:
            print(f"Kubernetes: no reachable cluster ({exc}).", file=out)
    async with emulated_cluster() as emulated:
        print(f"Kubernetes: an in-process emulated API (kmock) at {emulated.url} — not a real cluster.", file=out)
        yield emulated, False


async def _install_crds(cluster: Cluster) -> None:
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if await cluster.get("CustomResourceDefinition", None, crd["metadata"]["name"]) is None:
            await cluster.create(crd)

    async def established() -> bool:
        for path in sorted(CRDS.glob("*.yaml")):
            crd = await cluster.get(
                "CustomResourceDefinition", None, yaml.safe_load(path.read_text())["metadata"]["name"]
            )
            established = conditions.find_condition((crd or {}).get("status"), "Established") or {}
            if established.get("status") != "True":
                return False
        return True

    await _wait("the CRDs to be established", established)


async def run_demo(*, out: TextIO = sys.stdout, force_emulated: bool = False) -> int:
    from scaivault_operator.devvault import DevVaultConfig, run_in_thread

    port = _free_port(8200)
    config = DevVaultConfig(host="127.0.0.1", port=port, tokens={TOKEN: {"secrets:read", "secrets:write"}})
    with run_in_thread(config) as running:
        vault = running.vault
        print(f"ScaiVault: a local dev-vault at {running.url} (token {TOKEN!r}).", file=out)
        result = vault.write(PATH, V1, metadata={"description": "Salesforce OAuth credentials"})
        print(f"  wrote {PATH} -> version {getattr(result, 'version', 1)}", file=out)
        for path, data in TEMPLATE_SECRETS.items():
            vault.write(path, data)
        print(f"  wrote {len(TEMPLATE_SECRETS)} more for crds/examples/templates/ (database, registry, TLS)", file=out)
        for path, (data, tags) in SOURCE_SECRETS.items():
            vault.write(path, data, metadata={"tags": tags} if tags else None)
        print(f"  wrote {len(SOURCE_SECRETS)} more for crds/examples/sources/ (orders database, redis, payments keys "
              "with tags)", file=out)  # fmt: skip
        async with _pick_cluster(out, force_emulated) as (cluster, real):
            demo = Demo(cluster, vault, out)
            created: list[dict[str, Any]] = []
            try:
                if real:
                    await _install_crds(cluster)
                for doc in load_examples(running.url):
                    meta = doc["metadata"]
                    if not real and doc["kind"] == "Namespace":
                        continue  # the emulator has no Namespace objects to create
                    if await cluster.get(doc["kind"], meta.get("namespace"), meta["name"]) is not None:
                        if doc["kind"] == "Namespace":
                            continue
                        demo.say(f"{doc['kind']} {meta['name']} already exists; the demo will not change it. "
                                 "Delete it, or run the demo against an empty cluster.")  # fmt: skip
                        return 1
                    await cluster.create(doc)
                    created.append(doc)
                demo.say(
                    f"Applied crds/examples/: {', '.join(d['kind'] + ' ' + d['metadata']['name'] for d in created)}"
                )
                return await _story(
                    demo,
                    vault,
                    server=None if real else cluster.url,
                    before_stop=(lambda: _remove_vaultsecrets(cluster, created)) if real else None,
                )
            finally:
                if real:
                    for doc in reversed(created):
                        meta = doc["metadata"]
                        with contextlib.suppress(Exception):
                            await cluster.delete(doc["kind"], meta.get("namespace"), meta["name"])
                    demo.say("Removed the demo's objects from the cluster.")


async def _remove_vaultsecrets(cluster: Cluster, created: list[dict[str, Any]]) -> None:
    """On a real cluster, before the operator stops: delete the demo's VaultSecrets and wait until they are gone, so
    that the operator releases those that carry its finalizer (creationPolicy Merge, deletionPolicy Retain)."""
    mine = [d["metadata"] for d in created if d["kind"] == "VaultSecret"]
    for meta in mine:
        with contextlib.suppress(Exception):
            await cluster.delete("VaultSecret", meta.get("namespace"), meta["name"])

    async def gone() -> bool:
        return all([await cluster.get("VaultSecret", m.get("namespace"), m["name"]) is None for m in mine])

    with contextlib.suppress(TimeoutError):
        await _wait("the demo's VaultSecrets to be deleted", gone, limit=30.0)


def _deployment() -> dict[str, Any]:
    secret_ref = {"name": "billing-salesforce-env", "key": "SALESFORCE_CLIENT_SECRET"}
    container = {"name": "app", "image": "registry.k8s.io/pause:3.10",
                 "env": [{"name": "SALESFORCE_CLIENT_SECRET", "valueFrom": {"secretKeyRef": secret_ref}}]}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": "default"},
        "spec": {
            "replicas": 0,  # the demo shows the restart (a new pod template), not pods
            "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [container]}},
        },
    }


async def _stamp(demo: Demo, name: str = APP) -> str | None:
    body = await demo.cluster.get("Deployment", "default", name) or {}
    template = (body.get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(ROLLOUT_ANNOTATION)
    return value if isinstance(value, str) else None


async def _story(
    demo: Demo, vault: Any, *, server: str | None, before_stop: Callable[[], Awaitable[None]] | None = None
) -> int:
    if await demo.cluster.get("Deployment", "default", APP) is not None:
        demo.say(f"Deployment default/{APP} already exists; the demo will not change it.")
        return 1
    await demo.cluster.create(_deployment())
    try:
        return await _run_operator(demo, vault, server=server, before_stop=before_stop)
    finally:
        with contextlib.suppress(Exception):
            await demo.cluster.delete("Deployment", "default", APP)


async def _run_operator(
    demo: Demo, vault: Any, *, server: str | None, before_stop: Callable[[], Awaitable[None]] | None
) -> int:
    names = [("default", "salesforce-api"), ("default", "salesforce-env"), ("default", "salesforce-api-v1")]
    settings = OperatorSettings(liveness_endpoint=None, workers=4)
    demo.say("\nStarting the operator (in this process) ...")
    async with running_operator(settings, server=server) as rt:
        await _wait("the Secret default/salesforce-api", lambda: _has_version(demo, "salesforce-api", "1"))
        await _wait("the pinned Secret", lambda: _has_version(demo, "salesforce-api-v1", "1"))
        await _wait("the renamed Secret", lambda: _has_version(demo, "billing-salesforce-env", "1"))
        demo.say("\n1) The Secrets appeared:")
        await demo.show_secret("default", "salesforce-api")
        await demo.show_secret("default", "billing-salesforce-env")
        await demo.show_vaultsecrets(names)
        for name in TEMPLATED:
            await _wait(f"the templated Secret default/{name}", functools.partial(_has_version, demo, name, "1"))
        demo.say("   And the Secrets shaped by spec.template (crds/examples/templates/, docs/templates.md):")
        for name in TEMPLATED:
            await demo.show_secret("default", name)
        for name in COMPOSED:
            await _wait(f"the Secret default/{name}", functools.partial(_has_sources, demo, name))
        demo.say("   And the Secrets built from several ScaiVault secrets (spec.sources) or from every secret under a "
                 "prefix\n   with some tags (spec.dataFrom; crds/examples/sources/, docs/crds.md):")  # fmt: skip
        for name in COMPOSED:
            await demo.show_secret("default", name)

        demo.say(f"\n2) Two Deployments read Secret billing-salesforce-env as environment variables: {WORKER} every "
                 f"key (envFrom),\n   {APP} only SALESFORCE_CLIENT_SECRET. VaultSecret salesforce-env names both in "
                 "spec.rollout.targets (debounce 1s).")  # fmt: skip
        targets = [{"kind": "Deployment", "name": WORKER}, {"kind": "Deployment", "name": APP}]
        rollout = {"targets": targets, "debounce": "1s"}
        await demo.cluster.patch("VaultSecret", "default", "salesforce-env", {"spec": {"rollout": rollout}})

        demo.say(f"\n3) Writing version 2 of {PATH} to ScaiVault (client_secret changes) ...")
        started = time.monotonic()
        vault.write(PATH, V2)
        await _wait("version 2 in the Secret", lambda: _has_version(demo, "salesforce-api", "2"))
        demo.say(f"   followed in {time.monotonic() - started:.1f}s (poll interval 2s):")
        await demo.show_secret("default", "salesforce-api")
        await _wait("the renamed Secret to follow", lambda: _has_version(demo, "billing-salesforce-env", "2"))
        await asyncio.sleep(0.5)
        await demo.show_vaultsecrets(names)
        demo.say("   The pinned VaultSecret (salesforce-api-v1) stayed on version 1.")
        await _wait("both Deployments to be restarted", lambda: _has_stamps(demo))
        stamp, worker_stamp = await _stamp(demo), await _stamp(demo, WORKER)
        vs = await demo.cluster.get("VaultSecret", "default", "salesforce-env") or {}
        restarted = ((vs.get("status") or {}).get("rollout") or {}).get("workloads") or []
        demo.say(f"   Both restarted: pod-template annotation {ROLLOUT_ANNOTATION}={stamp} on {APP}")
        demo.say("   (a keyed digest of the keys a Deployment uses, never a value). status.rollout.workloads:")
        for workload in restarted:
            demo.say(
                f"     {workload.get('kind')}/{workload.get('name')}: keys {', '.join(workload.get('keys') or [])}"
            )

        demo.say(f"\n4) Writing version 3 of {PATH}: only client_id changes ...")
        vault.write(PATH, V3)
        await _wait("version 3 in the Secret", lambda: _has_version(demo, "billing-salesforce-env", "3"))
        await _wait(f"Deployment {WORKER} to be restarted", lambda: _moved(demo, WORKER, worker_stamp))
        await asyncio.sleep(2.0)  # past the 1 s debounce: a restart of billing would have happened by now
        unchanged = await _stamp(demo) == stamp
        demo.say(f"   {WORKER} restarted again: SALESFORCE_CLIENT_ID changed, and envFrom uses every key.")
        outcome = "not restarted: the key it uses did not change" if unchanged else "RESTARTED (unexpected)"
        demo.say(f"   {APP} {outcome}.")
        if not unchanged:
            return 1

        stats = vault.stats.snapshot()
        demo.say(f"\nScaiVault requests: {stats.calls.get('read', 0)} secret reads, {stats.calls.get('list', 0)} list "
                 f"pages; {rt.syncs} sync jobs ran for {len(rt.registry.entries)} VaultSecrets.")  # fmt: skip
        demo.say("How a new version reaches pods (env vars, volumes, rollout): docs/rollout.md.")
        if before_stop is not None:
            await before_stop()
    demo.say("Done. Next: `helm install` the chart, or see README.md for `kubectl apply -f crds/`.")
    return 0


async def _has_stamps(demo: Demo) -> bool:
    return bool(await _stamp(demo)) and bool(await _stamp(demo, WORKER))


async def _moved(demo: Demo, name: str, stamp: str | None) -> bool:
    return await _stamp(demo, name) != stamp


async def _has_version(demo: Demo, name: str, version: str) -> bool:
    return await demo.secret_version("default", name) == version


async def _has_sources(demo: Demo, name: str) -> bool:
    secret = await demo.cluster.get("Secret", "default", name) or {}
    return bool(((secret.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SOURCES))


def main(force_emulated: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_demo(force_emulated=force_emulated))
    except TimeoutError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
