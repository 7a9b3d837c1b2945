"""The desired Secret: data encoding, errors without values, metadata, ownership, merge patches, drift detection."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.api import KeyMapping, VaultSecretSpec
from scaivault_operator._logic.manifests import (
    ANNOTATION_CONNECTION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_PATH,
    ANNOTATION_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_SECRET_BYTES,
    VAULTSECRET_LABEL,
    Owner,
    SourceDataError,
    data_hash,
    data_intact,
    desired_secret,
    needs_recreate,
    ownership,
    read_data_hash,
    secret_data,
    secret_patch,
    vaultsecret_label_value,
)

CANARY = "CANARY-VALUE-51c2"
OWNER = Owner(
    api_version="scaivault.scailabs.ai/v1alpha1", kind="VaultSecret", name="web-db", namespace="team-a", uid="uid-1"
)


def km(from_: str, to: str | None = None) -> KeyMapping:
    raw = {"from": from_} if to is None else {"from": from_, "to": to}
    return KeyMapping.model_validate(raw)


def decoded(data: dict[str, str]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in data.items()}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spec(**raw: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate({"path": "apps/web/db", **raw})


def merge_apply(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies ``application/merge-patch+json``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_apply(result.get(key), value)
    return result


# -- constants -----------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert MANAGED_BY_LABEL == "app.kubernetes.io/managed-by"
    assert MANAGED_BY == "scaivault-operator"
    assert VAULTSECRET_LABEL == "scaivault.scailabs.ai/vaultsecret"
    assert ANNOTATION_PATH == "scaivault.scailabs.ai/path"
    assert ANNOTATION_VERSION == "scaivault.scailabs.ai/version"
    assert ANNOTATION_CONNECTION == "scaivault.scailabs.ai/connection"
    assert ANNOTATION_DATA_HASH == "scaivault.scailabs.ai/data-hash"
    assert MAX_SECRET_BYTES == 1024 * 1024


# -- secret_data ---------------------------------------------------------------------------------------------


def test_strings_are_stored_as_utf8_bytes() -> None:
    data = secret_data({"user": "alice", "pw": "p@ss wörd ✓", "empty": ""}, None)
    assert decoded(data) == {"user": b"alice", "pw": "p@ss wörd ✓".encode(), "empty": b""}


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (3, b"3"),
        (-1.5, b"-1.5"),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
        ({"b": 1, "a": [1, "x"]}, b'{"a":[1,"x"],"b":1}'),
        ([], b"[]"),
        ({"k": "wörd"}, '{"k":"wörd"}'.encode()),
        ("3", b"3"),
        ('{"b":1,"a":2}', b'{"b":1,"a":2}'),
    ],
)
def test_non_strings_are_compact_sorted_json(value: Any, stored: bytes) -> None:
    assert decoded(secret_data({"k": value}, None)) == {"k": stored}


def test_base64_is_standard_with_padding() -> None:
    assert secret_data({"k": "a"}, None) == {"k": "YQ=="}


def test_keys_select_and_rename() -> None:
    source = {"client_id": "id", "client_secret": "s", "unused": "u"}
    data = secret_data(source, [km("client_secret", "password"), km("client_id")])
    assert decoded(data) == {"password": b"s", "client_id": b"id"}


def test_one_source_key_may_feed_two_secret_keys() -> None:
    data = secret_data({"pw": "s"}, [km("pw"), km("pw", "password")])
    assert decoded(data) == {"pw": b"s", "password": b"s"}


def test_empty_source_gives_empty_data() -> None:
    assert secret_data({}, None) == {}


def test_missing_keys_are_listed_by_name_never_value() -> None:
    source = {"present": CANARY, "other": CANARY}
    with pytest.raises(SourceDataError) as info:
        secret_data(source, [km("present"), km("gone"), km("also-gone", "x")])
    message = info.value.message
    assert "'gone'" in message
    assert "'also-gone'" in message
    assert "2 keys missing" in message
    assert "'present'" in message  # what it has: names only
    assert CANARY not in message
    assert str(info.value) == message
    assert info.value.__cause__ is None


def test_missing_key_from_empty_source() -> None:
    with pytest.raises(SourceDataError, match=r"1 key missing.*'a'.*no keys"):
        secret_data({}, [km("a")])


@pytest.mark.parametrize(
    "bad", ["has space", "slash/inside", "ünïcode", "", ".", "..", "..hidden", "x" * 254, "new\nline", "a:b"]
)
def test_invalid_secret_key_names_suggest_spec_keys(bad: str) -> None:
    with pytest.raises(SourceDataError) as info:
        secret_data({bad: CANARY}, None)
    message = info.value.message
    assert "spec.keys" in message
    assert "not a valid Secret key" in message
    assert CANARY not in message


@pytest.mark.parametrize("good", ["a", ".dotfile", "a.b", "x" * 253, "A-Z_0.9", "tls.crt", ".a..b"])
def test_valid_secret_key_names(good: str) -> None:
    assert set(secret_data({good: "v"}, None)) == {good}


def test_invalid_key_message_suggests_a_valid_name() -> None:
    with pytest.raises(SourceDataError) as info:
        secret_data({"db password": "v"}, None)
    assert "to: 'db_password'" in info.value.message


def test_invalid_rename_target_is_reported_as_a_rename() -> None:
    mapping = KeyMapping.model_validate({"from": "pw", "to": ".."})  # the pattern admits '..'; Kubernetes does not
    with pytest.raises(SourceDataError, match=re.escape("spec.keys renames 'pw' to '..'")):
        secret_data({"pw": CANARY}, [mapping])


def test_renaming_fixes_an_invalid_source_key() -> None:
    assert decoded(secret_data({"db password": "v"}, [km("db password", "db_password")])) == {"db_password": b"v"}


def test_duplicate_targets_rejected() -> None:
    mappings = [KeyMapping.model_construct(from_="a", to="x"), KeyMapping.model_construct(from_="b", to="x")]
    with pytest.raises(SourceDataError, match="same Secret key 'x'"):
        secret_data({"a": "1", "b": "2"}, mappings)


def test_size_limit_counts_key_names_and_decoded_bytes() -> None:
    at_limit = {"k": "x" * (MAX_SECRET_BYTES - 1)}
    assert len(secret_data(at_limit, None)) == 1
    with pytest.raises(SourceDataError) as info:
        secret_data({"kk": "x" * (MAX_SECRET_BYTES - 1)}, None)
    assert str(MAX_SECRET_BYTES + 1) in info.value.message
    assert "spec.keys" in info.value.message


def test_size_limit_counts_utf8_bytes() -> None:
    with pytest.raises(SourceDataError):
        secret_data({"k": "é" * (MAX_SECRET_BYTES // 2)}, None)


def test_keys_can_bring_a_large_secret_under_the_limit() -> None:
    source = {"big": "x" * MAX_SECRET_BYTES, "small": "s"}
    with pytest.raises(SourceDataError):
        secret_data(source, None)
    assert decoded(secret_data(source, [km("small")])) == {"small": b"s"}


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), "\ud800" + CANARY, {"x": "\udfff"}, 10**5000, object(), {1: "a", "b": 2}],
    ids=["nan", "inf", "surrogate", "nested-surrogate", "huge-int", "object", "mixed-keys"],
)
def test_unencodable_values_raise_source_data_error_without_value(value: Any) -> None:
    with pytest.raises(SourceDataError) as info:
        secret_data({"k": value}, None)
    assert "'k'" in info.value.message
    assert CANARY not in info.value.message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_deep_nesting_is_a_source_data_error() -> None:
    value: Any = CANARY
    for _ in range(100_000):
        value = [value]
    with pytest.raises(SourceDataError, match="nested too deeply"):
        secret_data({"k": value}, None)


def test_non_mapping_source_and_non_string_keys() -> None:
    with pytest.raises(SourceDataError, match="not a JSON object"):
        secret_data([CANARY], None)  # type: ignore[arg-type]
    with pytest.raises(SourceDataError, match="not a string"):
        secret_data({1: CANARY}, None)  # type: ignore[dict-item]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
key_names = st.text(max_size=10) | st.sampled_from(["a", "b", "c", ".", "..", "tls.crt"])
sources = st.dictionaries(key_names, json_values, max_size=6)
mappings = st.lists(
    st.builds(lambda f, t: KeyMapping.model_construct(from_=f, to=t), key_names, st.none() | key_names), max_size=5
)


@given(source=sources, keys=st.none() | mappings)
@settings(max_examples=300)
def test_secret_data_raises_only_source_data_error(source: dict[str, Any], keys: list[KeyMapping] | None) -> None:
    try:
        data = secret_data(source, keys)
    except SourceDataError as exc:
        error: SourceDataError | None = exc
    else:
        error = None
    if error is not None:
        assert error.message
        return
    expected = {m.target_key: source[m.from_] for m in keys} if keys is not None else source
    assert set(data) == set(expected)
    for key, b64value in data.items():
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key)
        raw = base64.b64decode(b64value, validate=True)
        value = expected[key]
        if isinstance(value, str):
            assert raw.decode("utf-8") == value
        else:
            assert json.loads(raw) == value


@given(
    names=st.lists(st.text(max_size=6), min_size=1, max_size=4, unique=True),
    keys=st.none() | st.lists(st.builds(lambda f: KeyMapping.model_construct(from_=f, to=None), st.text(max_size=6))),
    value_shape=st.sampled_from(["plain", "nested", "surrogate", "nan"]),
)
def test_canary_never_in_source_data_errors(names: list[str], keys: list[KeyMapping] | None, value_shape: str) -> None:
    value: Any = {
        "plain": CANARY,
        "nested": {"inner": [CANARY]},
        "surrogate": CANARY + "\ud800",
        "nan": [CANARY, float("nan")],
    }[value_shape]
    source = {name: value for name in names}
    texts: list[str] = []
    try:
        secret_data(source, keys)
    except SourceDataError as exc:
        texts = [exc.message, str(exc), repr(exc)]
    for text in texts:
        assert CANARY not in text


# -- data_hash -----------------------------------------------------------------------------------------------


def test_data_hash_format_and_determinism() -> None:
    digest = data_hash({"a": "YQ==", "b": "Yg=="})
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest == data_hash({"b": "Yg==", "a": "YQ=="})
    assert digest != data_hash({"a": "YQ==", "b": "Yw=="})
    assert digest != data_hash({"a": "YQ=="})
    assert data_hash({}) != data_hash({"": ""})


def test_data_hash_is_unambiguous() -> None:
    assert data_hash({"a": "b,c:d"}) != data_hash({"a": "b", "c": "d"})
    assert data_hash({"ab": "c"}) != data_hash({"a": "bc"})


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), st.dictionaries(st.text(max_size=5), st.text()))
def test_data_hash_equal_iff_maps_equal(a: dict[str, str], b: dict[str, str]) -> None:
    assert (data_hash(a) == data_hash(b)) is (a == b)


# -- desired_secret ------------------------------------------------------------------------------------------


def test_desired_secret_full_manifest() -> None:
    data = secret_data({"pw": "s"}, None)
    s = spec(
        version=3, target={"type": "kubernetes.io/basic-auth", "labels": {"app": "web"}, "annotations": {"x": "y"}}
    )
    manifest = desired_secret(owner=OWNER, spec=s, data=data, version=3, connection="ClusterVaultConnection/default")
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "web-db",
            "namespace": "team-a",
            "labels": {"app": "web", MANAGED_BY_LABEL: MANAGED_BY, VAULTSECRET_LABEL: "web-db"},
            "annotations": {
                "x": "y",
                ANNOTATION_PATH: "apps/web/db",
                ANNOTATION_VERSION: "3",
                ANNOTATION_CONNECTION: "ClusterVaultConnection/default",
                ANNOTATION_DATA_HASH: data_hash(data),
            },
            "ownerReferences": [
                {
                    "apiVersion": "scaivault.scailabs.ai/v1alpha1",
                    "kind": "VaultSecret",
                    "name": "web-db",
                    "uid": "uid-1",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": "kubernetes.io/basic-auth",
        "data": data,
    }


def test_desired_secret_target_name_and_defaults() -> None:
    manifest = desired_secret(
        owner=OWNER, spec=spec(target={"name": "db-creds"}), data={}, version=1, connection="VaultConnection/mine"
    )
    assert manifest["metadata"]["name"] == "db-creds"
    assert manifest["metadata"]["labels"][VAULTSECRET_LABEL] == "web-db"
    assert manifest["type"] == "Opaque"
    assert manifest["data"] == {}


def test_our_labels_and_annotations_win() -> None:
    s = spec(
        target={
            "labels": {MANAGED_BY_LABEL: "helm", VAULTSECRET_LABEL: "other"},
            "annotations": {ANNOTATION_PATH: "evil/path", ANNOTATION_DATA_HASH: "sha256:00"},
        }
    )
    manifest = desired_secret(owner=OWNER, spec=s, data={"a": "YQ=="}, version=2, connection="c/d")
    assert manifest["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    assert manifest["metadata"]["labels"][VAULTSECRET_LABEL] == "web-db"
    assert manifest["metadata"]["annotations"][ANNOTATION_PATH] == "apps/web/db"
    assert manifest["metadata"]["annotations"][ANNOTATION_DATA_HASH] == data_hash({"a": "YQ=="})


def test_desired_secret_does_not_alias_inputs() -> None:
    data = {"a": "YQ=="}
    manifest = desired_secret(owner=OWNER, spec=spec(), data=data, version=1, connection="c/d")
    manifest["data"]["b"] = "x"
    assert data == {"a": "YQ=="}


def test_canary_never_in_desired_secret_metadata() -> None:
    data = secret_data({"pw": CANARY, "nested": {"x": CANARY}}, None)
    manifest = desired_secret(owner=OWNER, spec=spec(), data=data, version=1, connection="ClusterVaultConnection/d")
    rendered = json.dumps({k: v for k, v in manifest.items() if k != "data"})
    assert CANARY not in rendered
    assert b64(CANARY) not in rendered


@pytest.mark.parametrize("name", ["web-db", "a", "x" * 63, "a.b"])
def test_label_value_is_the_name_when_valid(name: str) -> None:
    assert vaultsecret_label_value(name) == name


@given(st.from_regex(r"[a-z0-9]([-a-z0-9.]{62,250})[a-z0-9]", fullmatch=True))
def test_label_value_for_long_names_is_valid_and_distinct(name: str) -> None:
    value = vaultsecret_label_value(name)
    assert len(value) <= 63
    assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)
    assert value != vaultsecret_label_value(name + "x")
    assert value == vaultsecret_label_value(name)


# -- ownership / needs_recreate ------------------------------------------------------------------------------


def secret_with_refs(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web-db", "ownerReferences": list(refs)}}


def ref(uid: str, *, controller: bool | None = True, kind: str = "VaultSecret") -> dict[str, Any]:
    r: dict[str, Any] = {"apiVersion": "x/v1", "kind": kind, "name": "n", "uid": uid}
    if controller is not None:
        r["controller"] = controller
    return r


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "absent"),
        ({"metadata": {"name": "x"}}, "foreign"),
        (secret_with_refs(), "foreign"),
        (secret_with_refs(ref("uid-1")), "ours"),
        (secret_with_refs(ref("other", controller=False), ref("uid-1")), "ours"),
        (secret_with_refs(ref("uid-2")), "foreign"),
        (secret_with_refs(ref("uid-1", controller=False)), "foreign"),
        (secret_with_refs(ref("uid-1", controller=None)), "foreign"),
        (secret_with_refs(ref("rs-uid", kind="ReplicaSet")), "foreign"),
        ({"metadata": {"ownerReferences": "garbage"}}, "foreign"),
        ({"metadata": None}, "foreign"),
    ],
)
def test_ownership(existing: dict[str, Any] | None, expected: str) -> None:
    assert ownership(existing, "uid-1") == expected


def desired(data: dict[str, str] | None = None, **target: Any) -> dict[str, Any]:
    return desired_secret(
        owner=OWNER,
        spec=spec(target=target),
        data=data if data is not None else {"a": "YQ=="},
        version=1,
        connection="ClusterVaultConnection/default",
    )


def test_needs_recreate_on_type_change_only() -> None:
    want = desired(type="kubernetes.io/tls")
    assert needs_recreate({"type": "Opaque"}, want)
    assert needs_recreate({}, want)
    assert not needs_recreate({"type": "kubernetes.io/tls"}, want)
    assert not needs_recreate({}, desired())
    assert not needs_recreate({"type": "Opaque", "data": {"z": "eg=="}}, desired())


def test_needs_recreate_for_immutable_secret_with_other_data() -> None:
    want = desired({"a": "YQ=="})
    assert needs_recreate({"type": "Opaque", "immutable": True, "data": {"a": "Yg=="}}, want)
    assert not needs_recreate({"type": "Opaque", "immutable": True, "data": {"a": "YQ=="}}, want)
    assert not needs_recreate({"type": "Opaque", "immutable": False, "data": {"a": "Yg=="}}, want)


# -- secret_patch --------------------------------------------------------------------------------------------


def as_existing(manifest: dict[str, Any], **extra_meta: Any) -> dict[str, Any]:
    """What the API server returns for a manifest we created: plus server fields."""
    existing = copy.deepcopy(manifest)
    existing["metadata"].update({"resourceVersion": "42", "uid": "secret-uid", **extra_meta})
    return existing


def test_no_change_no_patch() -> None:
    want = desired()
    assert secret_patch(as_existing(want), want) is None


def test_data_change_patches_only_changed_keys() -> None:
    old = desired({"a": "YQ==", "b": "Yg==", "gone": "Zw=="})
    new = desired({"a": "YQ==", "b": "Yw==", "new": "bg=="})
    patch = secret_patch(as_existing(old), new)
    assert patch == {
        "data": {"b": "Yw==", "new": "bg==", "gone": None},
        "metadata": {"annotations": {ANNOTATION_DATA_HASH: data_hash(new["data"])}},
    }


def test_string_data_is_ignored() -> None:
    want = desired()
    existing = as_existing(want)
    existing["stringData"] = {"x": "y"}
    assert secret_patch(existing, want) is None


def test_existing_without_data_gets_all_data() -> None:
    want = desired({"a": "YQ=="})
    existing = as_existing(want)
    del existing["data"]
    assert secret_patch(existing, want) == {"data": {"a": "YQ=="}}
    empty = desired({})
    existing_empty = as_existing(empty)
    del existing_empty["data"]
    assert secret_patch(existing_empty, empty) is None


def test_foreign_labels_and_annotations_are_kept_ours_removed() -> None:
    want = desired()
    existing = as_existing(want)
    existing["metadata"]["labels"]["other-controller"] = "x"
    existing["metadata"]["annotations"]["reloader.stakater.com/match"] = "true"
    existing["metadata"]["annotations"]["scaivault.scailabs.ai/obsolete"] = "1"
    existing["metadata"]["annotations"]["kopf.scaivault.scailabs.ai/x"] = "1"  # not under our prefix
    assert secret_patch(existing, want) == {"metadata": {"annotations": {"scaivault.scailabs.ai/obsolete": None}}}


def test_changed_labels_and_annotations() -> None:
    existing = as_existing(desired(labels={"app": "web"}, annotations={"note": "a"}))
    want = desired(labels={"app": "api"}, annotations={"note": "b"})
    assert secret_patch(existing, want) == {"metadata": {"labels": {"app": "api"}, "annotations": {"note": "b"}}}


def test_owner_references_untouched_when_ours() -> None:
    want = desired()
    existing = as_existing(want)
    existing["metadata"]["ownerReferences"].insert(0, ref("someone", controller=False))
    existing["metadata"]["ownerReferences"][1]["blockOwnerDeletion"] = False
    assert secret_patch(existing, want) is None


def test_adoption_replaces_other_controller_keeps_other_refs() -> None:
    want = desired()
    existing = as_existing(want)
    plain = ref("plain-owner", controller=False)
    existing["metadata"]["ownerReferences"] = [ref("other-controller"), plain, ref("uid-1", controller=False)]
    patch = secret_patch(existing, want)
    assert patch == {"metadata": {"ownerReferences": [plain, want["metadata"]["ownerReferences"][0]]}}


def test_adoption_of_unowned_secret_with_other_content() -> None:
    want = desired({"a": "YQ=="}, labels={"app": "web"})
    existing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-db", "namespace": "team-a", "labels": {"made-by": "hand"}},
        "type": "Opaque",
        "data": {"old": "b2xk"},
    }
    patch = secret_patch(existing, want)
    assert patch is not None
    applied = merge_apply(existing, patch)
    assert applied["data"] == want["data"]
    assert applied["metadata"]["labels"] == {"made-by": "hand", **want["metadata"]["labels"]}
    assert applied["metadata"]["annotations"] == want["metadata"]["annotations"]
    assert applied["metadata"]["ownerReferences"] == want["metadata"]["ownerReferences"]
    assert ownership(applied, "uid-1") == "ours"
    assert secret_patch(applied, want) is None


def test_patch_never_contains_type() -> None:
    patch = secret_patch(as_existing(desired()), desired(type="kubernetes.io/tls"))
    assert patch is None


# -- property: the patch brings existing to desired, minimally ------------------------------------------------

_small_text = st.text(alphabet="abxy", min_size=1, max_size=3)
_b64 = st.sampled_from(["YQ==", "Yg==", "Yw==", ""])
_label_maps = st.dictionaries(_small_text, _small_text, max_size=3)
_our_annotation_keys = st.sampled_from(
    ["scaivault.scailabs.ai/path", "scaivault.scailabs.ai/old", "scaivault.scailabs.ai/data-hash"]
)
_ref = st.builds(
    lambda uid, controller: ref(uid, controller=controller),
    st.sampled_from(["uid-1", "uid-2", "uid-3"]),
    st.none() | st.booleans(),
)


@st.composite
def existing_secrets(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(st.dictionaries(_small_text | _our_annotation_keys, _small_text, max_size=4))
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-db", "namespace": "team-a", "resourceVersion": "7"},
        "type": "Opaque",
    }
    if draw(st.booleans()):
        secret["metadata"]["labels"] = draw(_label_maps)
    with_empty_annotations: bool = draw(st.booleans())
    if annotations or with_empty_annotations:
        secret["metadata"]["annotations"] = annotations
    if draw(st.booleans()):
        # The API server allows at most one controller reference.
        refs = draw(st.lists(_ref, max_size=3).filter(lambda rs: sum(r.get("controller") is True for r in rs) <= 1))
        secret["metadata"]["ownerReferences"] = refs
    if draw(st.booleans()):
        secret["data"] = draw(st.dictionaries(_small_text, _b64, max_size=4))
    if draw(st.booleans()):
        secret["stringData"] = {"s": "t"}
    return secret


@given(
    existing=existing_secrets(),
    data=st.dictionaries(_small_text, _b64, max_size=4),
    labels=_label_maps,
    annotations=_label_maps,
)
@settings(max_examples=300)
def test_patch_reaches_desired_and_is_then_none(
    existing: dict[str, Any], data: dict[str, str], labels: dict[str, str], annotations: dict[str, str]
) -> None:
    want = desired(data, labels=labels, annotations=annotations)
    was_ours = ownership(existing, "uid-1") == "ours"
    patch = secret_patch(existing, want)
    applied = merge_apply(existing, patch) if patch is not None else copy.deepcopy(existing)

    assert applied.get("data", {}) == want["data"]
    old_meta, meta, want_meta = existing["metadata"], applied["metadata"], want["metadata"]
    for field in ("labels", "annotations"):
        got = meta.get(field, {})
        assert got.items() >= want_meta[field].items()
        foreign = {k: v for k, v in old_meta.get(field, {}).items() if k not in want_meta[field]}
        if field == "annotations":
            foreign = {k: v for k, v in foreign.items() if not k.startswith("scaivault.scailabs.ai/")}
        assert got == {**foreign, **want_meta[field]}
    assert ownership(applied, "uid-1") == "ours"
    controllers = [r for r in meta.get("ownerReferences", []) if r.get("controller") is True]
    assert len(controllers) == 1
    if was_ours:
        assert meta.get("ownerReferences") == old_meta.get("ownerReferences")
    else:
        assert [r["uid"] for r in meta["ownerReferences"]].count("uid-1") == 1
    assert secret_patch(applied, want) is None

    # Minimality: every field the patch names really differs.
    if patch is not None:
        for key, value in patch.get("data", {}).items():
            assert existing.get("data", {}).get(key) != value
        for field in ("labels", "annotations"):
            for key, value in patch.get("metadata", {}).get(field, {}).items():
                assert old_meta.get(field, {}).get(key) != value


# -- drift detection -----------------------------------------------------------------------------------------


def test_data_intact_and_read_data_hash() -> None:
    want = desired({"a": "YQ=="})
    existing = as_existing(want)
    assert read_data_hash(existing) == data_hash({"a": "YQ=="})
    assert data_intact(existing)
    edited = copy.deepcopy(existing)
    edited["data"]["a"] = "Yg=="
    assert not data_intact(edited)
    added = copy.deepcopy(existing)
    added["data"]["b"] = "Yg=="
    assert not data_intact(added)


def test_data_intact_without_annotation_or_data() -> None:
    assert read_data_hash({}) is None
    assert not data_intact({"metadata": {}, "data": {}})
    assert not data_intact({"metadata": {"annotations": {ANNOTATION_DATA_HASH: 5}}})
    assert not data_intact({"metadata": {"annotations": {ANNOTATION_DATA_HASH: "sha256:ü"}}})
    empty = desired({})
    existing = as_existing(empty)
    del existing["data"]  # the API server omits an empty data map
    assert data_intact(existing)
