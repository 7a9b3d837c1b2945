"""An in-memory Kubernetes API for the benchmarks (and, if it proves faithful, the integration tests).

kmock filters its whole request log on every request, so each request costs O(all requests so far); this one
keeps a dict per resource type and costs O(1) per get/create/patch/delete, O(matching objects) per list. It
serves what Kopf and the operator use, with the API server's semantics:

- discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}[/{version}]``, ``/version``), CRDs that register
  their resources when created (``crds=`` loads ``crds/*.yaml``-style bodies at start); the built-in types
  Namespace, Secret, ConfigMap, Event, ServiceAccount, Lease and the workloads the operator rolls out
  (Deployment, StatefulSet, DaemonSet: stored and listed, never run);
- list with label/field selectors and ``limit``/``continue`` paging over consistent snapshots;
- watch from a ``resourceVersion`` (bounded history per resource; ``ERROR`` 410 Expired when too old), without
  one (ADDED for every object first), ``allowWatchBookmarks`` (BOOKMARK events), ``sendInitialEvents``,
  ``timeoutSeconds``; an object that stops matching a watch's selector is seen as DELETED there;
- get, create (``generateName``), update (``resourceVersion`` conflicts), merge and JSON patch (strategic merge
  is treated as a merge patch), the ``status`` subresource, delete with finalizers, ownerReference garbage
  collection (background, foreground, orphan) and namespace deletion;
- ``uid``, ``creationTimestamp``, ``resourceVersion``, ``generation`` (custom resources: bumped on changes
  outside metadata and status); Secrets fold ``stringData``, keep ``type`` immutable, check base64;
- errors as ``Status`` JSON (``Content-Type: application/json``), 400/404/405/409/410/415/422.

Not served: admission of custom resources (no schema or CEL validation; CRDs themselves are checked by
``scaivault_operator.crdcheck`` as the API server checks them), RBAC, server-side apply, ``dryRun``,
strategic-merge list semantics. Requests are counted by (User-Agent, verb, resource): ``FakeApi.count``,
``GET /_fake/stats``.
"""

from ._app import WRITE_VERBS, FakeApi, serve
from ._store import ApiError, Event, ResourceType, Store, Watcher

__all__ = ["WRITE_VERBS", "ApiError", "Event", "FakeApi", "ResourceType", "Store", "Watcher", "load_crds", "serve"]


def load_crds(directory: str | None = None) -> list[dict[str, object]]:
    """The CRD bodies in ``directory`` (default: the repository's ``crds/``)."""
    from pathlib import Path

    import yaml

    path = Path(directory) if directory else Path(__file__).resolve().parents[2] / "crds"
    bodies = []
    for file in sorted(path.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                bodies.append(doc)
    return bodies
