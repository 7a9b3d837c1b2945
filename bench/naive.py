"""The naive baseline: the peers' mechanism — one GET per VaultSecret per interval — in its own process.

Every ``--interval`` each item (namespace, name, path) gets one ScaiVault GET, spread evenly over the interval
(as per-object requeue timers spread them); when the version differs from the one in the item's Secret, the
Secret is created or merge-patched. At start it lists its Secrets once (as an informer cache would), so a
restart re-reads every path from ScaiVault but writes nothing that is already current. No backoff: a failed GET
is simply tried again at the next interval (as a requeue-after would). At most ``--concurrency`` GETs are in
flight, as a reconcile worker pool would allow.

Reports on stdout, one JSON object per line: ``started``, then ``pass`` after each full pass over the items.
The benchmark counts its requests at the ScaiVault server and, on the in-memory API, at the Kubernetes API, like
ours. On a real cluster (``--kubeconfig``: the cluster the operator would use, ``$KUBECONFIG`` first) the baseline
counts its own Kubernetes requests, ``{"verb resource": count}``, served as JSON on ``127.0.0.1:--stats-port``.

    python -m bench.naive --vault URL --token T --api URL --items items.json --interval 2
    python -m bench.naive --vault URL --token T --kubeconfig --stats-port P --items items.json --interval 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "naive-baseline"
ANN_VERSION = "naive.bench/version"


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


class Naive:
    def __init__(self, args: argparse.Namespace) -> None:
        self.items: list[tuple[str, str, str]] = [tuple(item) for item in json.loads(Path(args.items).read_text())]
        self.interval: float = args.interval
        self.vault = httpx.AsyncClient(base_url=args.vault, headers={"Authorization": f"Bearer {args.token}"},
                                       timeout=30.0, limits=httpx.Limits(max_connections=args.concurrency))  # fmt: skip
        self.api = kube_client(args.api) if args.api else kube_client_from_kubeconfig()
        self.api.headers["User-Agent"] = "naive-baseline"
        self.api.event_hooks = {"request": [self._count]}
        self.gate = asyncio.Semaphore(args.concurrency)
        self.known: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = {}  # "verb resource" -> Kubernetes requests sent (served on --stats-port)
        self.stats_server: asyncio.Server | None = None

    async def _count(self, request: httpx.Request) -> None:
        key = f"{request_verb(request.method, request.url.path)} secrets"
        self.counts[key] = self.counts.get(key, 0) + 1

    async def serve_stats(self, port: int) -> None:
        """``GET /`` on 127.0.0.1:``port``: the Kubernetes requests sent so far, as JSON."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await reader.readuntil(b"\r\n\r\n")
                body = json.dumps(self.counts).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                await writer.drain()
            writer.close()

        self.stats_server = await asyncio.start_server(answer, "127.0.0.1", port)

    async def load_known(self) -> None:
        token = ""
        while True:
            params = {"labelSelector": f"{LABEL}={MANAGED_BY}", "limit": "500"}
            if token:
                params["continue"] = token
            response = await self.api.get("/api/v1/secrets", params=params)
            response.raise_for_status()
            body = response.json()
            for item in body.get("items") or []:
                meta = item["metadata"]
                version = (meta.get("annotations") or {}).get(ANN_VERSION)
                if version is not None:
                    self.known[(meta["namespace"], meta["name"])] = int(version)
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    async def check(self, namespace: str, name: str, path: str) -> None:
        async with self.gate:
            try:
                response = await self.vault.get(f"/v1/secrets/{path}")
                if response.status_code != 200:
                    return  # retried at the next interval
                secret = response.json()
                version = int(secret["version"])
                if self.known.get((namespace, name)) == version:
                    return
                await self.write(namespace, name, secret)
                self.known[(namespace, name)] = version
            except (httpx.HTTPError, ValueError, KeyError):
                return

    async def write(self, namespace: str, name: str, secret: dict[str, Any]) -> None:
        data = {k: base64.b64encode(str(v).encode()).decode() for k, v in (secret.get("data") or {}).items()}
        meta = {"name": name, "namespace": namespace, "labels": {LABEL: MANAGED_BY},
                "annotations": {ANN_VERSION: str(secret["version"])}}  # fmt: skip
        url = f"/api/v1/namespaces/{namespace}/secrets"
        if (namespace, name) in self.known:
            response = await self.api.patch(f"{url}/{name}", json={"metadata": meta, "data": data},
                                            headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        else:
            response = await self.api.post(url, json={"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                                                      "type": "Opaque", "data": data})  # fmt: skip
            if response.status_code == 409:
                response = await self.api.patch(f"{url}/{name}", json={"metadata": meta, "data": data},
                                                headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        response.raise_for_status()

    async def run(self) -> None:
        await self.load_known()
        _say("started", items=len(self.items), known=len(self.known))
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = self.interval / max(1, len(self.items))
        passes = 0
        while True:
            began = time.time()
            pending: set[asyncio.Task[None]] = set()
            for index, (namespace, name, path) in enumerate(self.items):
                due = start + passes * self.interval + index * step
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.gate.acquire()  # don't queue unboundedly when behind: wait for a free slot
                self.gate.release()
                task = asyncio.create_task(self.check(namespace, name, path))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
            passes += 1
            _say("pass", n=passes, started=began, duration=time.time() - began)
            if loop.time() > start + passes * self.interval:
                start = loop.time() - passes * self.interval  # behind schedule: start the next pass now


def request_verb(method: str, path: str) -> str:
    """The API server's verb for a request on Secrets (a GET on the collection is a list)."""
    if method == "GET":
        return "list" if path.rstrip("/").endswith("/secrets") else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


def kube_client(url: str) -> httpx.AsyncClient:
    """An unauthenticated API (the in-memory one)."""
    return httpx.AsyncClient(base_url=url, timeout=30.0)


def kube_client_from_kubeconfig() -> httpx.AsyncClient:
    """The cluster the operator would use (``$KUBECONFIG``, in-cluster, ``~/.kube/config``): its URL, CA and
    credentials, through lightkube's httpx adapter."""
    from lightkube.config.client_adapter import AsyncClient, ConnectionParams

    from scaivault_operator._cogs.kubeconfig import load

    return AsyncClient(load().config, ConnectionParams(timeout=httpx.Timeout(30.0)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naive")
    parser.add_argument("--vault", required=True)
    parser.add_argument("--token", required=True)
    api = parser.add_mutually_exclusive_group(required=True)
    api.add_argument("--api", help="an unauthenticated Kubernetes API URL (bench.fakeapi)")
    api.add_argument("--kubeconfig", action="store_true", help="the cluster in $KUBECONFIG (or ~/.kube/config)")
    parser.add_argument("--stats-port", type=int, default=0, help="serve the Kubernetes request counts (0: none)")
    parser.add_argument("--items", required=True, help="JSON list of [namespace, name, path]")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> None:
    naive = Naive(args)
    if args.stats_port:
        await naive.serve_stats(args.stats_port)
    await naive.run()


if __name__ == "__main__":
    main()
