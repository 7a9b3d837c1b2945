"""The workload matcher of ``kubectl scaivault why`` (``_logic/workloads.py``): every way a pod template names a
Secret, what follows a new version by itself, and malformed input read as absent."""

from __future__ import annotations

from typing import Any

import pytest

from scaivault_operator._logic.workloads import (
    Mount,
    SecretUse,
    pod_spec_of,
    secret_uses,
    summarize,
    workloads_using,
)

SECRET = "payments-api"


def deployment(name: str, pod_spec: dict[str, Any], *, kind: str = "Deployment", namespace: str = "shop") -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": {"template": {"spec": pod_spec}}}


def env_ref(var: str, secret: str, key: str, **extra: Any) -> dict:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, **extra}}}


def test_env_secret_key_ref():
    spec = {
        "containers": [
            {
                "name": "app",
                "env": [
                    env_ref("API_KEY", SECRET, "api_key"),
                    {"name": "X", "value": "1"},
                    env_ref("OTHER", "other", "k"),
                ],
            }
        ]
    }

    assert secret_uses(spec, SECRET) == [SecretUse("env", "app", False, "API_KEY", ("api_key",))]


def test_env_from_secret_ref_with_prefix_and_optional():
    spec = {
        "containers": [
            {
                "name": "app",
                "envFrom": [
                    {"configMapRef": {"name": SECRET}},
                    {"prefix": "PAY_", "secretRef": {"name": SECRET, "optional": True}},
                ],
            }
        ]
    }

    [use] = secret_uses(spec, SECRET)
    assert use == SecretUse("envFrom", "app", False, "PAY_", (), optional=True)
    assert not use.follows_updates
    assert use.describe() == "envFrom: every key as a variable with prefix PAY_ (container app), optional"


def test_volume_secret_with_items_and_mounts():
    spec = {
        "containers": [
            {"name": "app", "volumeMounts": [{"name": "creds", "mountPath": "/etc/payments", "readOnly": True}]},
            {"name": "sidecar", "volumeMounts": [{"name": "creds", "mountPath": "/etc/p/key", "subPath": "api_key"}]},
        ],
        "volumes": [
            {"name": "creds", "secret": {"secretName": SECRET, "items": [{"key": "api_key", "path": "k"}]}},
            {"name": "other", "secret": {"secretName": "other"}},
        ],
    }

    [use] = secret_uses(spec, SECRET)
    assert use.kind == "volume"
    assert use.name == "creds"
    assert use.keys == ("api_key",)
    assert use.mounts == (Mount("app", "/etc/payments", False), Mount("sidecar", "/etc/p/key", True))
    assert not use.follows_updates  # the subPath mount never changes
    assert "subPath: never updated" in use.describe()


def test_a_volume_without_subpath_follows_updates():
    spec = {
        "containers": [{"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/s"}]}],
        "volumes": [{"name": "v", "secret": {"secretName": SECRET}}],
    }

    [use] = secret_uses(spec, SECRET)
    assert use.follows_updates
    assert use.describe() == "volume v: /s in app"


def test_projected_volume_source():
    spec = {
        "volumes": [
            {
                "name": "all",
                "projected": {
                    "sources": [
                        {"configMap": {"name": SECRET}},
                        {"secret": {"name": SECRET, "items": [{"key": "endpoint", "path": "e"}]}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]
                },
            }
        ]
    }

    [use] = secret_uses(spec, SECRET)
    assert (use.kind, use.name, use.keys, use.mounts) == ("projected", "all", ("endpoint",), ())
    assert use.describe() == "projected volume all, keys endpoint: not mounted by any container"


def test_image_pull_secret_and_init_and_ephemeral_containers():
    spec = {
        "imagePullSecrets": [{"name": "registry"}, {"name": SECRET}],
        "initContainers": [{"name": "migrate", "env": [env_ref("DB", SECRET, "password")]}],
        "ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": SECRET}}]}],
        "containers": [{"name": "app"}],
    }

    uses = secret_uses(spec, SECRET)
    assert [(u.kind, u.container, u.init) for u in uses] == [
        ("env", "migrate", True),
        ("envFrom", "debug", False),
        ("imagePullSecret", None, False),
    ]
    assert uses[0].describe() == "env DB <- key password (init container migrate)"
    assert uses[2].follows_updates


def test_order_is_containers_then_volumes_then_pull_secrets():
    spec = {
        "imagePullSecrets": [{"name": SECRET}],
        "volumes": [{"name": "v", "secret": {"secretName": SECRET}}],
        "containers": [
            {"name": "a", "env": [env_ref("A", SECRET, "k")]},
            {"name": "b", "envFrom": [{"secretRef": {"name": SECRET}}]},
        ],
    }

    assert [u.kind for u in secret_uses(spec, SECRET)] == ["env", "envFrom", "volume", "imagePullSecret"]


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"containers": None},
        {"containers": "app"},
        {
            "containers": [
                None,
                3,
                {"env": "x"},
                {"env": [None, {"valueFrom": "x"}, {"valueFrom": {"secretKeyRef": 1}}]},
            ]
        },
        {"volumes": [{"secret": None}, {"projected": {"sources": "x"}}, {"projected": {"sources": [None]}}]},
        {"imagePullSecrets": {"name": SECRET}},
        {"containers": [{"name": "app", "env": [{"valueFrom": {"secretKeyRef": {"name": "payments"}}}]}]},
    ],
)
def test_malformed_or_unrelated_specs_have_no_uses(spec):
    assert secret_uses(spec, SECRET) == []


def test_a_reference_without_a_key_or_names_still_counts():
    spec = {"containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": SECRET}}}]}]}

    [use] = secret_uses(spec, SECRET)
    assert (use.container, use.name, use.keys) == ("?", "?", ())
    assert use.describe() == "env ? <- key ? (container ?)"


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("Deployment", {"spec": {"template": {"spec": {"a": 1}}}}, {"a": 1}),
        ("StatefulSet", {"spec": {"template": {"spec": {"a": 2}}}}, {"a": 2}),
        ("DaemonSet", {"spec": {"template": {"spec": {"a": 3}}}}, {"a": 3}),
        ("Job", {"spec": {"template": {"spec": {"a": 4}}}}, {"a": 4}),
        ("CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"a": 5}}}}}}, {"a": 5}),
        ("Pod", {"spec": {"a": 6}}, {"a": 6}),
        ("Deployment", {"spec": {"template": "x"}}, {}),
        ("Deployment", {}, {}),
    ],
)
def test_pod_spec_of_each_kind(kind, body, expected):
    assert dict(pod_spec_of(body, kind)) == expected
    assert dict(pod_spec_of({**body, "kind": kind})) == expected


def test_workloads_using_keeps_order_filters_namespace_and_flags_restarts():
    volume_only = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/s"}]}],
        "volumes": [{"name": "v", "secret": {"secretName": SECRET}}],
    }
    env = {"containers": [{"name": "a", "env": [env_ref("K", SECRET, "k")]}]}
    workloads = [
        deployment("web", volume_only),
        deployment("db", env, kind="StatefulSet"),
        deployment("unrelated", {"containers": [{"name": "a"}]}),
        deployment("elsewhere", env, namespace="other"),
        {"kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {"template": {"spec": env}}},  # no namespace
    ]

    found = workloads_using(workloads, SECRET, namespace="shop")

    assert [(w.kind, w.name, w.needs_restart) for w in found] == [
        ("Deployment", "web", False),
        ("StatefulSet", "db", True),
        ("DaemonSet", "agent", True),
    ]
    data = summarize(found)
    assert data[0] == {
        "kind": "Deployment",
        "name": "web",
        "needsRestart": False,
        "uses": [
            {
                "kind": "volume",
                "container": None,
                "name": "v",
                "keys": [],
                "optional": False,
                "followsUpdates": True,
                "mounts": [{"container": "a", "path": "/s", "subPath": False}],
            }
        ],
    }


def test_sub_path_expr_counts_as_sub_path():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/s", "subPathExpr": "$(X)"}]}],
        "volumes": [{"name": "v", "secret": {"secretName": SECRET}}],
    }

    [use] = secret_uses(spec, SECRET)
    assert use.mounts == (Mount("a", "/s", True),)
