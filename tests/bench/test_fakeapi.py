"""The in-memory Kubernetes API (bench/fakeapi) against what a real API server does — the behaviour Kopf, lightkube
and the operator's e2e tests rely on: discovery, resourceVersion and watch semantics, selectors, paging, patches,
the status subresource, generation, garbage collection, Status errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from bench.fakeapi import FakeApi
from fakeapi_support import TEST_AGENT

GROUP_PATH = "/apis/scaivault.scailabs.ai/v1alpha1"
VS = f"{GROUP_PATH}/namespaces/team-a/vaultsecrets"
SECRETS = "/api/v1/namespaces/team-a/secrets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def vaultsecret(name: str, path: str = "apps/db", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "VaultSecret",
            "metadata": {"name": name, **meta}, "spec": {"path": path}}  # fmt: skip


def secret(name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, **extra}


async def created(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def watch_lines(http: httpx.AsyncClient, url: str, params: dict[str, str], count: int,
                      limit: float = 5.0) -> list[dict[str, Any]]:  # fmt: skip
    """The first ``count`` events of a watch (or fewer when the server ends the stream)."""
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with http.stream("GET", url, params={"watch": "true", **params}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            async for line in response.aiter_lines():
                if line.strip():
                    events.append(json.loads(line))
                    if len(events) >= count:
                        return

    await asyncio.wait_for(read(), limit)
    return events


# -- discovery ----------------------------------------------------------------------------------------------


async def test_discovery_lists_core_crds_and_subresources(http: httpx.AsyncClient) -> None:
    core = (await http.get("/api/v1")).json()
    names = {r["name"] for r in core["resources"]}
    assert {"namespaces", "secrets", "events", "namespaces/status"} <= names
    groups = {g["name"] for g in (await http.get("/apis")).json()["groups"]}
    assert {"apiextensions.k8s.io", "scaivault.scailabs.ai"} <= groups
    ours = (await http.get(GROUP_PATH)).json()
    by_name = {r["name"]: r for r in ours["resources"]}
    assert by_name["vaultsecrets"]["namespaced"] is True
    assert by_name["clustervaultconnections"]["namespaced"] is False
    assert "vaultsecrets/status" in by_name
    assert (await http.get("/api")).json()["versions"] == ["v1"]
    assert (await http.get("/version")).json()["major"] == "1"


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def widget_crd(**schema: Any) -> dict[str, Any]:
    """A minimal CRD a real API server accepts (a version needs a schema; listKind is defaulted)."""
    root = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        **schema,
    }
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": root}}]}}  # fmt: skip


async def test_a_crd_created_over_http_registers_its_resource(http: httpx.AsyncClient) -> None:
    body = await created(http, CRDS, widget_crd())
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]}["Established"] == "True"
    assert body["spec"]["names"]["listKind"] == "WidgetList"  # defaulted, as the server stores it
    assert body["status"]["storedVersions"] == ["v1"]
    widget = await created(http, "/apis/example.com/v1/namespaces/x/widgets", {"metadata": {"name": "w"}})
    assert widget["kind"] == "Widget"
    assert widget["metadata"]["generation"] == 1
    await http.delete(f"{CRDS}/widgets.example.com")
    assert (await http.get("/apis/example.com/v1/namespaces/x/widgets/w")).status_code == 404


async def test_a_crd_the_api_server_would_refuse_is_422_invalid_with_its_causes(http: httpx.AsyncClient) -> None:
    """The first release's bug: a description on the root metadata. A real server answers exactly this."""
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] = {
        "type": "object", "description": "Standard object metadata."}  # fmt: skip
    response = await http.post(CRDS, json=crd)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Invalid", 422)
    assert body["message"] == (
        'CustomResourceDefinition.apiextensions.k8s.io "widgets.example.com" is invalid: '
        "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name "
        "and generateName, but metadata is implicitly specified"
    )
    assert body["details"]["causes"] == [{
        "reason": "FieldValueForbidden",
        "message": "Forbidden: must not specify anything other than name and generateName, but metadata is "
                   "implicitly specified",
        "field": "spec.validation.openAPIV3Schema.properties[metadata]"}]  # fmt: skip
    assert (await http.get(f"{CRDS}/widgets.example.com")).status_code == 404  # nothing stored or registered
    assert (await http.get("/apis/example.com/v1/namespaces/x/widgets")).status_code == 404


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["spec"]["versions"][0].pop("schema"), "spec.versions[0].schema.openAPIV3Schema"),
        (lambda c: c["spec"]["names"].update(plural="widget"), "metadata.name"),
        (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].update(
            {"x-kubernetes-validations": [{"rule": "self.size() >"}]}),
         "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"),
    ],
    ids=["no schema", "plural not in the name", "CEL that does not compile"],
)  # fmt: skip
async def test_bad_crds_are_refused(http: httpx.AsyncClient, mutate: Any, field: str) -> None:
    crd = widget_crd()
    mutate(crd)
    response = await http.post(CRDS, json=crd)
    assert response.status_code == 422, response.text
    assert [cause["field"] for cause in response.json()["details"]["causes"]] == [field]


async def test_a_crd_body_that_does_not_decode_is_400(http: httpx.AsyncClient) -> None:
    crd = widget_crd(maxProperties="three")
    response = await http.post(CRDS, json=crd)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "BadRequest"
    assert "cannot unmarshal string into Go struct field JSONSchemaProps" in response.json()["message"]
    # unknown fields are dropped with a warning by a real server unless the client asks for strict validation
    assert (await http.post(CRDS, json=widget_crd(maxproperties=3))).status_code == 201


async def test_crd_updates_keep_group_and_names_and_are_checked_too(http: httpx.AsyncClient) -> None:
    await created(http, CRDS, widget_crd())
    patch = {"spec": {"scope": "Cluster"}}
    response = await http.patch(f"{CRDS}/widgets.example.com", json=patch, headers=MERGE)
    assert response.status_code == 422, response.text
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in response.json()["message"]
    patch = {"spec": {"versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"metadata": {"type": "object", "description": "x"}}}}}]}}  # fmt: skip
    response = await http.patch(f"{CRDS}/widgets.example.com", json=patch, headers=MERGE)
    assert response.status_code == 422, response.text
    assert response.json()["details"]["causes"][0]["field"] == "spec.validation.openAPIV3Schema.properties[metadata]"


async def test_the_repositorys_crds_are_accepted_at_start(api: FakeApi) -> None:
    crd_type = api.store.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crd_type is not None
    assert {key[1] for key in api.store.objects(crd_type)} == {
        "clustervaultconnections.scaivault.scailabs.ai", "vaultconnections.scaivault.scailabs.ai",
        "vaultsecrets.scaivault.scailabs.ai"}  # fmt: skip


# -- objects ------------------------------------------------------------------------------------------------


async def test_create_sets_server_fields(http: httpx.AsyncClient) -> None:
    vs = await created(http, VS, vaultsecret("a"))
    meta = vs["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["namespace"] == "team-a"
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    plain = await created(http, SECRETS, secret("s", stringData={"k": "v"}))
    assert "generation" not in plain["metadata"]
    assert plain["data"] == {"k": base64.b64encode(b"v").decode()}
    assert "stringData" not in plain
    assert plain["type"] == "Opaque"
    named = await created(http, SECRETS, {"metadata": {"generateName": "gen-"}})
    assert named["metadata"]["name"].startswith("gen-")
    assert len(named["metadata"]["name"]) > 4


async def test_custom_resource_status_is_ignored_on_create(http: httpx.AsyncClient) -> None:
    vs = await created(http, VS, {**vaultsecret("a"), "status": {"syncedVersion": 9}})
    assert "status" not in vs


async def test_errors_are_status_objects_with_plain_json_content_type(http: httpx.AsyncClient) -> None:
    await created(http, VS, vaultsecret("a"))
    cases = [
        (await http.post(VS, json=vaultsecret("a")), 409, "AlreadyExists"),
        (await http.get(f"{VS}/missing"), 404, "NotFound"),
        (await http.post(VS, json=vaultsecret("Bad_Name")), 422, "Invalid"),
        (await http.post(VS, json={"spec": {}}), 422, "Invalid"),
        (await http.patch(f"{VS}/a", json={"x": 1}, headers={"Content-Type": "application/apply-patch+yaml"}),
         415, "UnsupportedMediaType"),
        (await http.post(SECRETS, json=secret("b64", data={"k": "not base64!"})), 400, "BadRequest"),
        (await http.get("/apis/nope.example.com/v1/things"), 404, "NotFound"),
    ]  # fmt: skip
    for response, code, reason in cases:
        assert response.status_code == code, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["kind"] == "Status"
        assert body["code"] == code
        assert body["reason"] == reason
    message = (await http.get(f"{VS}/missing")).json()["message"]
    assert message == 'vaultsecrets.scaivault.scailabs.ai "missing" not found'


async def test_generation_moves_only_with_the_spec(http: httpx.AsyncClient) -> None:
    await created(http, VS, vaultsecret("a"))
    labelled = (await http.patch(f"{VS}/a", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)).json()
    assert labelled["metadata"]["generation"] == 1
    changed = (await http.patch(f"{VS}/a", json={"spec": {"path": "apps/other"}}, headers=MERGE)).json()
    assert changed["metadata"]["generation"] == 2
    status = (await http.patch(f"{VS}/a/status", json={"status": {"syncedVersion": 3}}, headers=MERGE)).json()
    assert status["metadata"]["generation"] == 2
    assert status["status"] == {"syncedVersion": 3}


async def test_status_subresource_and_main_resource_ignore_each_other(http: httpx.AsyncClient) -> None:
    await created(http, VS, vaultsecret("a"))
    both = {"spec": {"path": "apps/changed"}, "status": {"syncedVersion": 1}, "metadata": {"labels": {"l": "v"}}}
    via_status = (await http.patch(f"{VS}/a/status", json=both, headers=MERGE)).json()
    assert via_status["spec"]["path"] == "apps/db"
    assert via_status["status"] == {"syncedVersion": 1}
    assert "labels" not in via_status["metadata"]
    via_main = (await http.patch(f"{VS}/a", json={**both, "status": {"syncedVersion": 7}}, headers=MERGE)).json()
    assert via_main["spec"]["path"] == "apps/changed"
    assert via_main["status"] == {"syncedVersion": 1}
    assert via_main["metadata"]["labels"] == {"l": "v"}


async def test_no_op_writes_keep_the_resource_version(http: httpx.AsyncClient, api: FakeApi) -> None:
    vs = await created(http, VS, vaultsecret("a"))
    same = (await http.patch(f"{VS}/a", json={"spec": {"path": "apps/db"}}, headers=MERGE)).json()
    assert same["metadata"]["resourceVersion"] == vs["metadata"]["resourceVersion"]
    assert api.store.rv == int(vs["metadata"]["resourceVersion"])


async def test_json_patch_and_merge_patch(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("s", labels={"a": "1", "b": "2"}))
    ops = [{"op": "add", "path": "/metadata/labels/c", "value": "3"}, {"op": "remove", "path": "/metadata/labels/a"},
           {"op": "replace", "path": "/metadata/labels/b", "value": "two"}]  # fmt: skip
    patched = (await http.patch(f"{SECRETS}/s", json=ops, headers=JSON_PATCH)).json()
    assert patched["metadata"]["labels"] == {"b": "two", "c": "3"}
    failed = await http.patch(f"{SECRETS}/s", json=[{"op": "test", "path": "/metadata/labels/b", "value": "x"}],
                              headers=JSON_PATCH)  # fmt: skip
    assert failed.status_code == 422
    merged = (await http.patch(f"{SECRETS}/s", json={"metadata": {"labels": {"b": None}}}, headers=MERGE)).json()
    assert merged["metadata"]["labels"] == {"c": "3"}
    strategic = await http.patch(f"{SECRETS}/s", json={"metadata": {"annotations": {"x": "y"}}},
                                 headers={"Content-Type": "application/strategic-merge-patch+json"})  # fmt: skip
    assert strategic.json()["metadata"]["annotations"] == {"x": "y"}


async def test_stale_resource_version_conflicts(http: httpx.AsyncClient) -> None:
    vs = await created(http, VS, vaultsecret("a"))
    await http.patch(f"{VS}/a", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)
    stale = {**vs, "spec": {"path": "apps/x"}}
    assert (await http.put(f"{VS}/a", json=stale)).status_code == 409
    stale_patch = {"metadata": {"resourceVersion": vs["metadata"]["resourceVersion"]}, "spec": {"path": "apps/y"}}
    assert (await http.patch(f"{VS}/a", json=stale_patch, headers=MERGE)).status_code == 409
    current = (await http.get(f"{VS}/a")).json()
    replaced = await http.put(f"{VS}/a", json={**current, "spec": {"path": "apps/z"}})
    assert replaced.status_code == 200
    assert replaced.json()["metadata"]["generation"] == 2


async def test_secret_type_is_immutable(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("s", type="Opaque"))
    response = await http.patch(f"{SECRETS}/s", json={"type": "kubernetes.io/tls"}, headers=MERGE)
    assert response.status_code == 422


# -- lists and selectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-1", "web-2"}),
        ("app==web,tier=front", {"web-1"}),
        ("app!=web", {"db", "bare"}),
        ("app in (web, db)", {"web-1", "web-2", "db"}),
        ("app notin (web)", {"db", "bare"}),
        ("tier", {"web-1", "db"}),
        ("!tier", {"web-2", "bare"}),
        ("app in (web),!tier", {"web-2"}),
    ],
)
async def test_label_selectors(http: httpx.AsyncClient, selector: str, expected: set[str]) -> None:
    for name, labels in [("web-1", {"app": "web", "tier": "front"}), ("web-2", {"app": "web"}),
                         ("db", {"app": "db", "tier": "back"}), ("bare", {})]:  # fmt: skip
        await created(http, SECRETS, secret(name, labels=labels))
    items = (await http.get(SECRETS, params={"labelSelector": selector})).json()["items"]
    assert {i["metadata"]["name"] for i in items} == expected


async def test_field_selector_and_cluster_wide_list(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("a"))
    await created(http, "/api/v1/namespaces/team-b/secrets", secret("a"))
    everywhere = (await http.get("/api/v1/secrets")).json()["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere] == [("team-a", "a"),
                                                                                        ("team-b", "a")]  # fmt: skip
    only_b = (await http.get("/api/v1/secrets", params={"fieldSelector": "metadata.namespace=team-b"})).json()
    assert [i["metadata"]["namespace"] for i in only_b["items"]] == ["team-b"]


async def test_paging_is_a_consistent_snapshot(http: httpx.AsyncClient) -> None:
    for i in range(7):
        await created(http, SECRETS, secret(f"s-{i}"))
    first = (await http.get(SECRETS, params={"limit": "3"})).json()
    assert len(first["items"]) == 3
    assert first["metadata"]["remainingItemCount"] == 4
    await created(http, SECRETS, secret("s-late"))  # not in the snapshot
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = (await http.get(SECRETS, params={"limit": "3", "continue": token})).json()
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"s-{i}" for i in range(7)]
    gone = await http.get(SECRETS, params={"limit": "3", "continue": first["metadata"]["continue"]})
    assert gone.status_code == 410
    assert gone.json()["reason"] == "Expired"


async def test_the_operators_lightkube_calls(api: FakeApi, http: httpx.AsyncClient) -> None:
    from scaivault_operator._cogs.kube import Kube

    for i in range(5):
        await created(http, SECRETS, secret(f"s-{i}", labels={"k": "v"}))
    await created(http, SECRETS, secret("unlabelled"))
    kube = Kube.for_server(api.url)
    try:
        listed = await kube.list_secrets_at("", "k=v")
        assert [s["metadata"]["name"] for s in listed.items] == [f"s-{i}" for i in range(5)]
        assert listed.resource_version
        assert await kube.get_secret("team-a", "missing") is None
        new = secret("new", data={"k": base64.b64encode(b"v").decode()})
        new["metadata"]["namespace"] = "team-a"
        made = await kube.create_secret(new)
        assert made["metadata"]["uid"]
        patched = await kube.patch_secret("team-a", "new", {"metadata": {"annotations": {"a": "b"}}})
        assert patched["metadata"]["annotations"] == {"a": "b"}
        await created(http, VS, vaultsecret("vs"))
        await kube.patch_vaultsecret_status("team-a", "vs", {"syncedVersion": 2})
        assert (await http.get(f"{VS}/vs")).json()["status"] == {"syncedVersion": 2}
        from scaivault_operator._cogs.kube import Conflict

        with pytest.raises(Conflict):  # lightkube raised ApiError: the Status came as application/json
            await kube.create_secret(new)
    finally:
        await kube.aclose()
    assert api.count("list", "secrets", exclude_client=TEST_AGENT) == 1


async def test_workloads_the_operator_rolls_out(api: FakeApi, http: httpx.AsyncClient) -> None:
    """Deployments, StatefulSets and DaemonSets are served (the operator lists them after a Secret's keys change:
    a 404 there would be retried, which no real API server causes)."""
    from scaivault_operator._cogs.kube import Kube

    deployments = "/apis/apps/v1/namespaces/team-a/deployments"
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}  # fmt: skip
    made = await created(http, deployments, body)
    assert made["metadata"]["generation"] == 1
    kube = Kube.for_server(api.url)
    try:
        assert await kube.list_workloads("team-b") == []
        listed = await kube.list_workloads("team-a")
        assert [(w["kind"], w["metadata"]["name"]) for w in listed] == [("Deployment", "web")]
        patch = {"spec": {"template": {"metadata": {"annotations": {"restarted": "1"}}}}}
        assert await kube.patch_workload("Deployment", "team-a", "web", patch)
        assert not await kube.patch_workload("StatefulSet", "team-a", "web", patch)
    finally:
        await kube.aclose()
    assert (await http.get(f"{deployments}/web")).json()["metadata"]["generation"] == 2
    groups = (await http.get("/apis")).json()["groups"]
    assert "apps" in [g["name"] for g in groups]


# -- watch --------------------------------------------------------------------------------------------------


async def test_watch_without_version_starts_with_the_state(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("a"))
    events = await watch_lines(http, SECRETS, {}, 1)
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "a"


async def test_watch_from_a_list_version_streams_only_later_changes(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("before"))
    rv = (await http.get(SECRETS)).json()["metadata"]["resourceVersion"]
    task = asyncio.create_task(watch_lines(http, SECRETS, {"resourceVersion": rv}, 3))
    await asyncio.sleep(0.1)
    await created(http, SECRETS, secret("after"))
    await http.patch(f"{SECRETS}/after", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)
    await http.delete(f"{SECRETS}/after")
    events = await task
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]  # fmt: skip
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(rv)


async def test_watch_replays_history_after_a_disconnect(http: httpx.AsyncClient) -> None:
    first = await created(http, SECRETS, secret("a"))
    await http.patch(f"{SECRETS}/a", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)
    events = await watch_lines(http, SECRETS, {"resourceVersion": first["metadata"]["resourceVersion"]}, 1)
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"]["metadata"]["labels"] == {"x": "1"}


async def test_watch_from_a_version_too_old_is_410_gone() -> None:
    async with FakeApi(history=3) as small, httpx.AsyncClient(base_url=small.url) as http:
        first = await created(http, SECRETS, secret("s-0"))
        for i in range(1, 6):
            await created(http, SECRETS, secret(f"s-{i}"))
        events = await watch_lines(http, SECRETS, {"resourceVersion": first["metadata"]["resourceVersion"]}, 1)
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert events[0]["object"]["reason"] == "Expired"


async def test_watch_bookmarks_and_timeout(http: httpx.AsyncClient, api: FakeApi) -> None:
    await created(http, SECRETS, secret("a"))
    rv = str(api.store.rv)
    events = await watch_lines(http, SECRETS, {"resourceVersion": rv, "allowWatchBookmarks": "true",
                                               "timeoutSeconds": "1"}, 100, limit=5)  # fmt: skip
    assert events
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert events[-1]["object"]["metadata"]["resourceVersion"] == rv
    no_marks = await watch_lines(http, SECRETS, {"resourceVersion": rv, "timeoutSeconds": "1"}, 100, limit=5)
    assert no_marks == []


async def test_watch_selector_transitions(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("s", labels={"app": "x"}))
    rv = (await http.get(SECRETS)).json()["metadata"]["resourceVersion"]
    task = asyncio.create_task(watch_lines(http, SECRETS, {"resourceVersion": rv, "labelSelector": "app=x"}, 2))
    await asyncio.sleep(0.1)
    await http.patch(f"{SECRETS}/s", json={"metadata": {"labels": {"app": "y"}}}, headers=MERGE)
    await http.patch(f"{SECRETS}/s", json={"metadata": {"labels": {"app": "x"}}}, headers=MERGE)
    assert [e["type"] for e in await task] == ["DELETED", "ADDED"]


async def test_send_initial_events_ends_with_an_annotated_bookmark(http: httpx.AsyncClient) -> None:
    await created(http, SECRETS, secret("a"))
    events = await watch_lines(http, SECRETS, {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                                               "resourceVersionMatch": "NotOlderThan"}, 2)  # fmt: skip
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# -- deletion -------------------------------------------------------------------------------------------------


async def test_owner_deletion_collects_dependents(http: httpx.AsyncClient) -> None:
    owner = await created(http, VS, vaultsecret("owner"))
    ref = {"apiVersion": owner["apiVersion"], "kind": "VaultSecret", "name": "owner",
           "uid": owner["metadata"]["uid"], "controller": True}  # fmt: skip
    await created(http, SECRETS, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    other = await created(http, VS, vaultsecret("other"))
    ref2 = {**ref, "name": "other", "uid": other["metadata"]["uid"], "controller": False}
    await created(http, SECRETS, {"metadata": {"name": "shared", "ownerReferences": [ref, ref2]}})
    assert (await http.delete(f"{VS}/owner")).status_code == 200
    await asyncio.sleep(0.05)
    assert (await http.get(f"{SECRETS}/dep")).status_code == 404
    assert (await http.get(f"{SECRETS}/shared")).status_code == 200  # another owner still exists
    await http.delete(f"{VS}/other")
    await asyncio.sleep(0.05)
    assert (await http.get(f"{SECRETS}/shared")).status_code == 404


async def test_orphan_propagation_keeps_dependents(http: httpx.AsyncClient) -> None:
    owner = await created(http, VS, vaultsecret("owner"))
    ref = {"apiVersion": owner["apiVersion"], "kind": "VaultSecret", "name": "owner", "uid": owner["metadata"]["uid"]}
    await created(http, SECRETS, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    await http.request("DELETE", f"{VS}/owner", json={"propagationPolicy": "Orphan"})
    await asyncio.sleep(0.05)
    kept = (await http.get(f"{SECRETS}/dep")).json()
    assert "ownerReferences" not in kept["metadata"]


async def test_finalizers_hold_deletion(http: httpx.AsyncClient) -> None:
    await created(http, VS, vaultsecret("a", finalizers=["example.com/hold"]))
    deleting = (await http.delete(f"{VS}/a")).json()
    assert deleting["metadata"]["deletionTimestamp"]
    assert (await http.get(f"{VS}/a")).status_code == 200
    await http.patch(f"{VS}/a", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert (await http.get(f"{VS}/a")).status_code == 404


async def test_namespace_deletion_removes_its_objects(http: httpx.AsyncClient) -> None:
    await created(http, "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    await created(http, SECRETS, secret("a"))
    await created(http, "/api/v1/namespaces/team-b/secrets", secret("b"))
    await http.delete("/api/v1/namespaces/team-a")
    assert (await http.get(f"{SECRETS}/a")).status_code == 404
    assert (await http.get("/api/v1/namespaces/team-b/secrets/b")).status_code == 200


async def test_strict_namespaces() -> None:
    async with FakeApi(strict_namespaces=True) as strict, httpx.AsyncClient(base_url=strict.url) as http:
        missing = await http.post(SECRETS, json=secret("a"))
        assert missing.status_code == 404
        assert missing.json()["message"] == 'namespaces "team-a" not found'
        await created(http, "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
        await created(http, SECRETS, secret("a"))


# -- counters -------------------------------------------------------------------------------------------------


async def test_requests_are_counted_by_client_verb_and_resource(http: httpx.AsyncClient, api: FakeApi) -> None:
    await created(http, VS, vaultsecret("a"))
    await http.patch(f"{VS}/a/status", json={"status": {"syncedVersion": 1}}, headers=MERGE)
    await http.get(f"{VS}/a")
    async with httpx.AsyncClient(base_url=api.url, headers={"User-Agent": "other/1"}) as other:
        await other.get(f"{VS}/a")
    assert api.count("create", "vaultsecrets") == 1
    assert api.count("patch", "vaultsecrets/status") == 1
    assert api.count("get", client=TEST_AGENT) == 1
    assert api.count("get", exclude_client=TEST_AGENT) == 1
    assert api.writes(client=TEST_AGENT) == 2
    assert api.writes(client="other") == 0
    stats = (await http.get("/_fake/stats")).json()
    assert stats["requests"][TEST_AGENT]["create vaultsecrets"] == 1
