"""Workload rollouts, the pure decisions (``_logic/rollout``): keyed digests, changed keys, the debounce planner,
which workloads a change restarts and the patch that restarts them.

A restart writes ``scaivault.scailabs.ai/rollout`` on the pod template: ``secret=stamp,...``, where a stamp digests
the keyed digests of the keys the workload uses. Never a value, nor a plain hash of one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaivault_operator._logic.rollout import (
    RELOAD_ANNOTATION,
    ROLLOUT_ANNOTATION,
    WORKLOAD_KINDS,
    Change,
    Planner,
    Restart,
    changed_keys,
    format_stamps,
    key_digests,
    parse_stamps,
    plan,
    restart_patch,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def data(**values: str) -> dict[str, str]:
    """A Secret's ``data`` from clear text."""
    return {key: b64(value) for key, value in values.items()}


def change(
    before: Mapping[str, str],
    after: Mapping[str, str],
    *,
    secret: str = "db",
    vaultsecret: str | None = None,
    auto: bool = True,
    targets: frozenset[tuple[str, str]] = frozenset(),
    key: bytes = KEY,
) -> Change:
    return Change(vaultsecret or secret, secret, changed_keys(before, after), key_digests(key, after), targets, auto)


def container(name: str = "app", *, env: dict[str, tuple[str, str]] | None = None, env_from: list[str] | None = None,
              mounts: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """``env``: variable -> (secret, key)."""
    body: dict[str, Any] = {"name": name, "image": "busybox"}
    if env:
        body["env"] = [{"name": var, "valueFrom": {"secretKeyRef": {"name": s, "key": k}}}
                       for var, (s, k) in env.items()]  # fmt: skip
    if env_from:
        body["envFrom"] = [{"secretRef": {"name": s}} for s in env_from]
    if mounts:
        body["volumeMounts"] = [{"name": v, "mountPath": f"/etc/{v}"} for v in mounts]
    return body


def workload(
    name: str = "web",
    kind: str = "Deployment",
    *,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    pull: list[str] | None = None,
    annotations: dict[str, Any] | None = None,
    stamp: Any = None,
    resource_version: str | None = "7",
) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": containers if containers is not None else [container()]}
    if init_containers:
        pod["initContainers"] = init_containers
    if volumes:
        pod["volumes"] = volumes
    if pull:
        pod["imagePullSecrets"] = [{"name": p} for p in pull]
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}}, "spec": pod}
    if stamp is not None:
        template["metadata"]["annotations"] = {ROLLOUT_ANNOTATION: stamp}
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "uid": f"uid-{name}"}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if annotations is not None:
        meta["annotations"] = annotations
    return {"kind": kind, "metadata": meta, "spec": {"template": template}}


def env_user(secret: str = "db", key: str = "password", **kw: Any) -> dict[str, Any]:
    return workload(containers=[container(env={"VAR": (secret, key)})], **kw)


def secret_volume(secret: str = "db", items: list[str] | None = None, name: str = "creds") -> dict[str, Any]:
    source: dict[str, Any] = {"secretName": secret}
    if items is not None:
        source["items"] = [{"key": k, "path": k} for k in items]
    return {"name": name, "secret": source}


def projected_volume(secret: str = "db", items: list[str] | None = None, name: str = "all") -> dict[str, Any]:
    source: dict[str, Any] = {"name": secret}
    if items is not None:
        source["items"] = [{"key": k, "path": k} for k in items]
    return {"name": name, "projected": {"sources": [{"configMap": {"name": "cm"}}, {"secret": source}]}}


def applied(body: dict[str, Any], restart: Restart) -> dict[str, Any]:
    """``body`` after ``restart_patch(restart)`` (what the API server would store)."""
    template = body["spec"]["template"]
    template.setdefault("metadata", {}).setdefault("annotations", {})[ROLLOUT_ANNOTATION] = restart.value
    return body


V1 = data(password="pw-1", user="app", host="db.local")
V2_PASSWORD = data(password="pw-2", user="app", host="db.local")
V2_HOST = data(password="pw-1", user="app", host="db2.local")


# -- digests -------------------------------------------------------------------------------------------------------


def test_digests_are_keyed_per_operator_key_and_per_secret_key() -> None:
    ours = key_digests(KEY, V1)
    assert set(ours) == set(V1)
    assert ours == key_digests(KEY, dict(V1)), "stable for the same key"
    others = key_digests(OTHER_KEY, V1)
    assert all(ours[k] != others[k] for k in V1), "another operator key: other digests"
    same_value = key_digests(KEY, {"a": b64("x"), "b": b64("x")})
    assert same_value["a"] != same_value["b"], "the key name is part of the digest"


def test_no_value_nor_a_plain_hash_of_it_appears_in_a_digest() -> None:
    value = "hunter2"
    digests = key_digests(KEY, data(password=value))
    plain = {hashlib.sha256(value.encode()).hexdigest(), hashlib.sha256(b64(value).encode()).hexdigest()}
    for digest in digests.values():
        assert value not in digest
        assert b64(value) not in digest
        assert digest not in plain
        assert not any(p.startswith(digest[:16]) or digest.startswith(p[:16]) for p in plain)


def test_digests_skip_values_that_are_not_strings() -> None:
    assert set(key_digests(KEY, {"a": b64("x"), "b": None, "c": 3})) == {"a"}


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.binary(min_size=16, max_size=32), st.binary(min_size=16, max_size=32))
def test_digests_hide_any_value_and_depend_on_the_key(value: str, key: bytes, other: bytes) -> None:
    ours = key_digests(key, {"k": b64(value)})["k"]
    assert ours != hashlib.sha256(value.encode()).hexdigest()
    assert ours != hashlib.sha256(b64(value).encode()).hexdigest()
    if key != other:
        assert ours != key_digests(other, {"k": b64(value)})["k"]


# -- changed keys --------------------------------------------------------------------------------------------------


def test_changed_keys_are_the_added_removed_and_changed() -> None:
    assert changed_keys(V1, V1) == frozenset()
    assert changed_keys(V1, V2_PASSWORD) == {"password"}
    assert changed_keys({"a": "1"}, {"a": "1", "b": "2"}) == {"b"}
    assert changed_keys({"a": "1", "b": "2"}, {"a": "1"}) == {"b"}
    assert changed_keys({}, {}) == frozenset()


@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["x", "y"])),
       st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["x", "y"])))  # fmt: skip
def test_changed_keys_is_symmetric_and_exact(before: dict[str, str], after: dict[str, str]) -> None:
    changed = changed_keys(before, after)
    assert changed == changed_keys(after, before)
    assert changed == {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed_keys(after, after) == frozenset()


# -- the planner (debounce per namespace) --------------------------------------------------------------------------


def test_the_planner_joins_the_changes_of_one_secret_in_a_window() -> None:
    planner = Planner()
    first = change(V1, V2_PASSWORD, auto=False)
    later = change(V2_PASSWORD, data(password="pw-2", user="app", host="db3.local"), auto=True,
                   targets=frozenset({("Deployment", "web")}))  # fmt: skip
    planner.note("team-a", first)
    planner.note("team-a", later)
    planner.note("team-a", change(V1, V2_HOST, secret="cache"))
    planner.note("team-b", change(V1, V2_HOST))
    taken = {c.secret: c for c in planner.take("team-a")}
    assert set(taken) == {"db", "cache"}
    db = taken["db"]
    assert db.changed == {"password", "host"}, "the keys changed by either"
    assert db.digests == later.digests, "the later data"
    assert db.auto
    assert db.targets == later.targets, "the later settings"
    assert planner.take("team-a") == [], "taken once"
    assert [c.secret for c in planner.take("team-b")] == ["db"]
    assert planner.take("nowhere") == []


def test_put_back_keeps_the_failed_window_under_newer_changes() -> None:
    planner = Planner()
    failed = [change(V1, V2_PASSWORD), change(V1, V2_HOST, secret="cache")]
    newer = change(V2_PASSWORD, data(password="pw-3", user="root", host="db.local"))
    planner.note("team-a", newer)  # noted while the failed window ran
    planner.put_back("team-a", failed)
    back = {c.secret: c for c in planner.take("team-a")}
    assert back["db"].changed == {"password", "user"}
    assert back["db"].digests == newer.digests, "the newest data wins"
    assert back["cache"] == failed[1]
    planner.put_back("team-a", [])
    assert planner.take("team-a") == []


# -- plan: each kind of use ----------------------------------------------------------------------------------------


def only(restarts: list[Restart]) -> Restart:
    assert len(restarts) == 1, restarts
    return restarts[0]


def test_env_restarts_only_for_its_one_key() -> None:
    restart = only(plan([env_user(key="password")], [change(V1, V2_PASSWORD)]))
    assert (restart.kind, restart.name, restart.secrets) == ("Deployment", "web", (("db", ("password",)),))
    assert restart.vaultsecrets == ("db",)
    assert restart.uid == "uid-web"
    assert restart.resource_version == "7"
    assert set(parse_stamps(restart.value)) == {"db"}
    assert plan([env_user(key="password")], [change(V1, V2_HOST)]) == [], "an unused key changed"
    assert plan([env_user(secret="other")], [change(V1, V2_PASSWORD)]) == [], "another Secret"


def test_env_from_uses_every_key() -> None:
    body = workload(containers=[container(env_from=["db"])])
    assert only(plan([body], [change(V1, V2_HOST)])).secrets == (("db", ("host",)),)
    both = data(password="pw-2", user="app", host="db2.local")
    assert only(plan([body], [change(V1, both)])).secrets == (("db", ("host", "password")),)


def test_a_removed_key_restarts_its_env_from_users() -> None:
    """The variable of a removed key stays in the running pods until they restart."""
    removed = data(password="pw-1", user="app")
    body = workload(containers=[container(env_from=["db"])])
    restart = only(plan([body], [change(V1, removed)]))
    assert restart.secrets == (("db", ("host",)),)
    assert plan([applied(body, restart)], [change(V1, removed)]) == [], "stable"
    assert only(plan([env_user(key="host")], [change(V1, removed)])).secrets == (("db", ("host",)),)


@pytest.mark.parametrize("volume", [secret_volume, projected_volume])
def test_volumes_with_items_use_their_items_without_every_key(volume: Any) -> None:
    whole = workload(containers=[container(mounts=["v"])], volumes=[volume(name="v")])
    assert only(plan([whole], [change(V1, V2_HOST)])).secrets == (("db", ("host",)),)
    picked = workload(containers=[container(mounts=["v"])], volumes=[volume(items=["password"], name="v")])
    assert only(plan([picked], [change(V1, V2_PASSWORD)])).secrets == (("db", ("password",)),)
    assert plan([picked], [change(V1, V2_HOST)]) == []


def test_image_pull_secrets_are_not_a_use() -> None:
    puller = workload(pull=["db"])
    assert plan([puller], [change(V1, V2_PASSWORD)]) == []
    # Named as a target, it counts as not referencing the Secret: every key.
    target = change(V1, V2_PASSWORD, auto=False, targets=frozenset({("Deployment", "web")}))
    assert only(plan([puller], [target])).secrets == (("db", ("password",)),)


def test_init_containers_count() -> None:
    body = workload(containers=[container()], init_containers=[container("migrate", env={"P": ("db", "password")})])
    assert only(plan([body], [change(V1, V2_PASSWORD)])).secrets == (("db", ("password",)),)
    assert plan([body], [change(V1, V2_HOST)]) == []


def test_an_env_reference_without_a_key_counts_as_every_key() -> None:
    body = workload(containers=[{"name": "app", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db"}}}]}])
    assert only(plan([body], [change(V1, V2_HOST)])).secrets == (("db", ("host",)),)


# -- plan: who is selected -----------------------------------------------------------------------------------------


def test_nothing_restarts_without_targets_auto_or_the_reload_annotation() -> None:
    assert plan([env_user()], [change(V1, V2_PASSWORD, auto=False)]) == []


def test_targets_select_by_kind_and_name() -> None:
    targets = frozenset({("Deployment", "web")})
    restarted = plan(
        [env_user(), workload("web", "StatefulSet", containers=[container(env_from=["db"])]),
         workload("api", containers=[container(env_from=["db"])])],
        [change(V1, V2_PASSWORD, auto=False, targets=targets)],
    )  # fmt: skip
    assert [(r.kind, r.name) for r in restarted] == [("Deployment", "web")]


def test_a_target_that_does_not_reference_the_secret_uses_every_key() -> None:
    targets = frozenset({("Deployment", "api")})
    restart = only(plan([workload("api")], [change(V1, V2_HOST, auto=False, targets=targets)]))
    assert restart.secrets == (("db", ("host",)),)
    removed = data(password="pw-1")
    restart = only(plan([workload("api")], [change(V1, removed, auto=False, targets=targets)]))
    assert restart.secrets == (("db", ("host", "user")),)


def test_a_target_that_references_the_secret_restarts_only_for_its_keys() -> None:
    targets = frozenset({("Deployment", "web")})
    assert plan([env_user()], [change(V1, V2_HOST, auto=False, targets=targets)]) == []


def test_auto_restarts_every_user_and_no_one_else() -> None:
    restarted = plan([env_user(), workload("api"), workload("cache", containers=[container(env_from=["db"])])],
                     [change(V1, V2_PASSWORD)])  # fmt: skip
    assert [r.name for r in restarted] == ["web", "cache"]


@pytest.mark.parametrize(("annotations", "restarted"), [
    ({RELOAD_ANNOTATION: "true"}, True),
    ({RELOAD_ANNOTATION: "True"}, False),
    ({RELOAD_ANNOTATION: "yes"}, False),
    ({RELOAD_ANNOTATION: "false"}, False),
    ({RELOAD_ANNOTATION: True}, False),
    ({}, False),
    (None, False),
])  # fmt: skip
def test_the_reload_annotation_opts_in_from_the_workload(annotations: Any, restarted: bool) -> None:
    planned = plan([env_user(annotations=annotations)], [change(V1, V2_PASSWORD, auto=False)])
    assert bool(planned) is restarted


def test_the_reload_annotation_counts_on_the_workload_not_its_pod_template() -> None:
    body = env_user()
    body["spec"]["template"]["metadata"]["annotations"] = {RELOAD_ANNOTATION: "true"}
    assert plan([body], [change(V1, V2_PASSWORD, auto=False)]) == []


def test_the_reload_annotation_needs_a_use() -> None:
    body = workload("api", annotations={RELOAD_ANNOTATION: "true"})
    assert plan([body], [change(V1, V2_PASSWORD, auto=False)]) == []


# -- plan: stamps --------------------------------------------------------------------------------------------------


def test_the_same_stamp_restarts_nothing_and_new_data_does() -> None:
    body = env_user()
    first = change(V1, V2_PASSWORD)
    restart = only(plan([body], [first]))
    assert plan([applied(body, restart)], [first]) == [], "its pods already run with this data"
    again = only(plan([body], [change(V2_PASSWORD, data(password="pw-3", user="app", host="db.local"))]))
    assert again.value != restart.value


def test_the_stamp_depends_only_on_the_used_keys() -> None:
    password = only(plan([env_user()], [change(V1, V2_PASSWORD)]))
    # Other keys differ, the password is the same: the same stamp (the workload would not restart).
    other_keys = data(password="pw-2", user="root", host="elsewhere")
    assert only(plan([env_user()], [change(V1, other_keys)])).value == password.value


def test_a_stamp_written_with_another_operator_key_differs() -> None:
    ours = only(plan([env_user()], [change(V1, V2_PASSWORD)]))
    theirs = only(plan([env_user()], [change(V1, V2_PASSWORD, key=OTHER_KEY)]))
    assert ours.value != theirs.value


def test_several_secrets_make_one_restart_with_both_stamps_and_other_stamps_kept() -> None:
    body = workload(containers=[container(env={"P": ("db", "password"), "H": ("cache", "host")})],
                    stamp="legacy=0123abcd")  # fmt: skip
    restart = only(plan([body], [change(V1, V2_PASSWORD), change(V1, V2_HOST, secret="cache", vaultsecret="vs-c")]))
    stamps = parse_stamps(restart.value)
    assert set(stamps) == {"db", "cache", "legacy"}
    assert stamps["legacy"] == "0123abcd"
    assert restart.value == format_stamps(stamps), "sorted"
    assert restart.secrets == (("cache", ("host",)), ("db", ("password",)))
    assert restart.vaultsecrets == ("db", "vs-c")
    assert restart.describe() == "key host of Secret cache; key password of Secret db"


def test_one_secret_already_stamped_restarts_for_the_other_only() -> None:
    body = workload(containers=[container(env={"P": ("db", "password"), "H": ("cache", "host")})])
    db = change(V1, V2_PASSWORD)
    body = applied(body, only(plan([body], [db])))
    restart = only(plan([body], [db, change(V1, V2_HOST, secret="cache")]))
    assert restart.secrets == (("cache", ("host",)),)
    assert set(parse_stamps(restart.value)) == {"db", "cache"}


# -- plan: kinds and malformed input -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_statefulsets_and_daemonsets_too(kind: str) -> None:
    body = workload("w", kind, containers=[container(env_from=["db"])])
    assert only(plan([body], [change(V1, V2_PASSWORD)])).kind == kind


@pytest.mark.parametrize("kind", ["ReplicaSet", "Job", "CronJob", "Pod", None, "deployment"])
def test_other_kinds_are_ignored(kind: Any) -> None:
    body = workload(containers=[container(env_from=["db"])])
    body["kind"] = kind
    assert plan([body], [change(V1, V2_PASSWORD)]) == []


@pytest.mark.parametrize("stamp", ["", "garbage", "=abc", "db=", ",,", "db", 42, ["db=x"], {"db": "x"}])
def test_a_malformed_stamp_is_read_as_absent(stamp: Any) -> None:
    restart = only(plan([env_user(stamp=stamp)], [change(V1, V2_PASSWORD)]))
    assert set(parse_stamps(restart.value)) == {"db"}


def test_parse_stamps_keeps_what_parses() -> None:
    assert parse_stamps(None) == {}
    assert parse_stamps(7) == {}
    assert parse_stamps("a=1, b=2 ,=3,c=,d,e=f=g") == {"a": "1", "b": "2", "e": "f=g"}
    assert format_stamps({"b": "2", "a": "1"}) == "a=1,b=2"
    assert parse_stamps(format_stamps({"x": "1", "y": "2"})) == {"x": "1", "y": "2"}


@pytest.mark.parametrize("body", [
    {},
    {"kind": "Deployment"},
    {"kind": "Deployment", "metadata": None},
    {"kind": "Deployment", "metadata": {"name": 3}},
    {"kind": "Deployment", "metadata": "web"},
    {"kind": "Deployment", "metadata": {"name": "web", "annotations": ["x"]}, "spec": None},
    {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"metadata": "x", "spec": []}}},
    {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"metadata": {"annotations": "x"}}}},
    {"kind": "Deployment", "metadata": {"name": "web"}, "spec": ["x"]},
])  # fmt: skip
def test_malformed_workloads_never_raise(body: dict[str, Any]) -> None:
    assert plan([body], [change(V1, V2_PASSWORD)]) == []


def test_a_malformed_annotation_map_with_a_use_still_restarts_by_auto() -> None:
    body = env_user()
    body["spec"]["template"]["metadata"]["annotations"] = "garbage"
    body["metadata"]["annotations"] = ["garbage"]
    assert only(plan([body], [change(V1, V2_PASSWORD)])).name == "web"


# -- the patch -----------------------------------------------------------------------------------------------------


def test_restart_patch_is_guarded_by_the_resource_version() -> None:
    restart = only(plan([env_user()], [change(V1, V2_PASSWORD)]))
    assert restart_patch(restart) == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: restart.value}}}},
    }
    unguarded = only(plan([env_user(resource_version=None)], [change(V1, V2_PASSWORD)]))
    assert unguarded.resource_version is None
    assert restart_patch(unguarded) == {
        "spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: unguarded.value}}}}
    }


def test_describe_names_keys_and_secrets_only() -> None:
    restart = Restart("Deployment", "web", "db=x", None, (("cache", ("a", "b")), ("db", ("p",))), ("db",))
    assert restart.describe() == "keys a, b of Secret cache; key p of Secret db"


# -- properties ----------------------------------------------------------------------------------------------------

KEYS = ["a", "b", "c", "d"]
VALUES = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["v1", "v2", "v3"]), max_size=4)


@st.composite
def uses(draw: st.DrawFn) -> dict[str, Any]:
    """A Deployment using Secret ``db`` in one of the ways a pod spec can (or not at all)."""
    way = draw(st.sampled_from(["env", "envFrom", "volume", "items", "projected", "pull", "none"]))
    key = draw(st.sampled_from(KEYS))
    items = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    if way == "env":
        return env_user(key=key)
    if way == "envFrom":
        return workload(containers=[container(env_from=["db"])])
    if way == "volume":
        return workload(volumes=[secret_volume()])
    if way == "items":
        return workload(volumes=[secret_volume(items=items)])
    if way == "projected":
        return workload(volumes=[projected_volume(items=draw(st.none() | st.just(items)))])
    if way == "pull":
        return workload(pull=["db"])
    return workload()


def used_keys(body: dict[str, Any], before: Mapping[str, str], after: Mapping[str, str]) -> set[str] | None:
    pod = body["spec"]["template"]["spec"]
    every = set(before) | set(after)
    for c in pod["containers"]:
        if c.get("envFrom"):
            return every
        if c.get("env"):
            return {c["env"][0]["valueFrom"]["secretKeyRef"]["key"]}
    for volume in pod.get("volumes", []):
        source = volume.get("secret") or volume["projected"]["sources"][1]["secret"]
        return {i["key"] for i in source["items"]} if "items" in source else every
    return None


@settings(max_examples=200, deadline=None)
@given(uses(), VALUES, VALUES, VALUES, st.sampled_from(["auto", "target", "reload"]))
def test_a_restart_happens_exactly_when_a_used_key_changed_and_is_stable(
    body: dict[str, Any], v1: dict[str, str], v2: dict[str, str], v3: dict[str, str], how: str
) -> None:
    if how == "reload":
        body["metadata"]["annotations"] = {RELOAD_ANNOTATION: "true"}
    targets = frozenset({("Deployment", "web")}) if how == "target" else frozenset()
    before, after = data(**v1), data(**v2)
    first = change(before, after, auto=how == "auto", targets=targets)
    used = used_keys(body, before, after)
    if used is None and how == "target":
        used = set(before) | set(after)  # a target that does not reference the Secret: every key
    restarts = plan([body], [first])
    expected = sorted((used or set()) & first.changed)
    assert [r.secrets for r in restarts] == ([(("db", tuple(expected)),)] if expected else [])
    for restart in restarts:
        assert restart.value is not None
        # No value, no base64 of a value, no plain hash of one in the annotation.
        for value in {*v1.values(), *v2.values()}:
            for form in (value, b64(value), hashlib.sha256(value.encode()).hexdigest()[:16],
                         hashlib.sha256(b64(value).encode()).hexdigest()[:16]):  # fmt: skip
                assert form not in restart.value
        body = applied(body, restart)
    # The stamps applied: the same changes again restart nothing.
    assert plan([body], [first]) == []
    # Then a third version restarts it again exactly when a used key changed since the second.
    third = data(**v3)
    second = change(after, third, auto=how == "auto", targets=targets)
    used = used_keys(body, after, third)
    if used is None and how == "target":
        used = set(after) | set(third)
    assert bool(plan([body], [second])) == bool((used or set()) & second.changed)
