"""Sharding (issue 14, ``_logic/sharding.py``): ``--shard i/n`` splits the VaultSecrets by a hash of their namespace,
``--selector`` by their labels; the runtime forgets what another shard serves (a relabelled VaultSecret moves), and
one shard writes the connections' status.

The pure parts first (``parse_shard``, ``shard_of``, ``parse_selector``, ``Shard``), then the command line, then two
``Runtime``s fed the same watch events, as two operator Deployments would see them.
"""

from __future__ import annotations

import asyncio
import hashlib
import string
from typing import Any

import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kube_fakes import QuietSecretWatch
from test_registry import CONN, managed_secret, ready_status, vs

from scaivault_operator._app.handlers import configure_kopf
from scaivault_operator._cogs.api import GROUP
from scaivault_operator._cogs.kube import Identity
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import MANAGED_BY, MANAGED_BY_LABEL, RETAIN_FINALIZER
from scaivault_operator._logic.registry import Release
from scaivault_operator._logic.sharding import MAX_SHARDS, Shard, parse_selector, parse_shard, shard_of
from scaivault_operator.cli import main

# -- parse_shard -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/1", (0, 1)), ("0/2", (0, 2)), ("1/2", (1, 2)), ("4/5", (4, 5)), (" 2/3 ", (2, 3)), ("63/64", (63, 64)),
     ("01/02", (1, 2))],
)  # fmt: skip
def test_parse_shard_reads_i_of_n(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "2/2", "3/2", "0/0", "-1/2", "1/-2", "0/65", "1 / 2", "a/b", "1/2/3", "1/2x", "½", "0.5/2"]
)
def test_parse_shard_refuses_what_is_not_i_below_n(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_at_most_max_shards() -> None:
    assert parse_shard(f"0/{MAX_SHARDS}") == (0, MAX_SHARDS)
    with pytest.raises(ValueError, match=f"n <= {MAX_SHARDS}"):
        parse_shard(f"0/{MAX_SHARDS + 1}")


# -- shard_of ----------------------------------------------------------------------------------------------------

#: namespace → its shard among 2, 3, 4 and 5. Pinned: a change of the hash moves namespaces between the shards of a
#: running cluster (each Deployment of a rolling upgrade would disagree with the others) and must fail here.
PINNED = {
    "default": (1, 1, 1, 4),
    "kube-system": (1, 1, 1, 4),
    "team-a": (0, 0, 0, 1),
    "team-b": (0, 2, 2, 2),
    "payments": (0, 0, 0, 0),
    "ns-1": (1, 2, 1, 1),
    "é": (1, 0, 3, 1),
}


@pytest.mark.parametrize("namespace", sorted(PINNED))
def test_shard_of_is_pinned(namespace: str) -> None:
    assert tuple(shard_of(namespace, n) for n in (2, 3, 4, 5)) == PINNED[namespace]
    assert shard_of(namespace, 1) == 0
    assert shard_of("default", 64) == 61


def test_shard_of_is_sha256_of_the_namespace_not_pythons_hash() -> None:
    """The first 8 bytes of SHA-256 (big-endian) modulo n: the same in every process, whatever PYTHONHASHSEED."""
    for namespace in ("default", "team-a", "x" * 63):
        digest = int.from_bytes(hashlib.sha256(namespace.encode()).digest()[:8], "big")
        assert all(shard_of(namespace, n) == digest % n for n in range(1, 9))


@given(st.text(alphabet=string.ascii_lowercase + string.digits + "-", max_size=63))
def test_every_namespace_is_in_exactly_one_shard(namespace: str) -> None:
    for count in range(1, 6):
        owners = [i for i in range(count) if Shard(i, count).owns_namespace(namespace)]
        assert owners == [shard_of(namespace, count)]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_namespaces_spread_over_every_shard(count: int) -> None:
    sizes = [0] * count
    for i in range(1000):
        sizes[shard_of(f"ns-{i}", count)] += 1
    assert min(sizes) > 1000 / count * 0.8, sizes


# -- selectors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "matching", "not_matching"),
    [
        ("shard=a", [{"shard": "a"}, {"shard": "a", "x": "y"}], [{}, {"shard": "b"}, {"Shard": "a"}]),
        ("shard==a", [{"shard": "a"}], [{}, {"shard": "b"}]),
        ("shard = a", [{"shard": "a"}], [{"shard": "b"}]),
        ("shard!=a", [{}, {"shard": "b"}, {"other": "a"}], [{"shard": "a"}]),
        ("shard=", [{"shard": ""}], [{}, {"shard": "a"}]),
        ("shard in (a,b)", [{"shard": "a"}, {"shard": "b"}], [{}, {"shard": "c"}]),
        ("shard in ( a , b )", [{"shard": "b"}], [{"shard": "c"}]),
        ("shard notin (a,b)", [{}, {"shard": "c"}], [{"shard": "a"}, {"shard": "b"}]),
        ("shard", [{"shard": ""}, {"shard": "a"}], [{}, {"other": "shard"}]),
        ("!shard", [{}, {"other": "shard"}], [{"shard": ""}, {"shard": "a"}]),
        ("example.com/shard=a", [{"example.com/shard": "a"}], [{"shard": "a"}]),
        # Commas inside parentheses belong to the set; outside, they AND the requirements.
        ("shard in (a,b),tier!=test", [{"shard": "a"}, {"shard": "b", "tier": "prod"}],
         [{"shard": "a", "tier": "test"}, {"shard": "c"}]),
        ("tier notin (test, dev), shard in (a, b), !legacy", [{"shard": "a", "tier": "prod"}, {"shard": "b"}],
         [{"shard": "a", "tier": "dev"}, {"shard": "a", "legacy": "true"}, {"tier": "prod"}]),
        ("shard=a,shard=b", [], [{"shard": "a"}, {"shard": "b"}]),
    ],
)  # fmt: skip
def test_selectors_match_as_the_api_server_does(
    selector: str, matching: list[dict[str, str]], not_matching: list[dict[str, str]]
) -> None:
    parsed = parse_selector(selector)
    assert parsed.text == selector.strip()
    for labels in matching:
        assert parsed.matches(labels), labels
    for labels in not_matching:
        assert not parsed.matches(labels), labels


def test_commas_inside_parentheses_do_not_split() -> None:
    parsed = parse_selector("a in (x,y,z),b notin (u,v)")
    assert [(r.key, r.operator, sorted(r.values)) for r in parsed.requirements] == [
        ("a", "in", ["x", "y", "z"]),
        ("b", "notin", ["u", "v"]),
    ]


@pytest.mark.parametrize(
    "selector",
    ["", " ", ",", "=a", "!", "a b", "a=b c", "a=b=c", "a!b", "a in (x", "a in x", "a in x)", "a > 3", "-a=b", "a=-b",
     "a=(b)", "a/=b", ".a/b=c"],
)  # fmt: skip
def test_invalid_selectors_are_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        parse_selector(selector)


#: Selectors ``parse_selector`` accepts but the API server refuses (``kubectl get --raw '...?labelSelector=...'``
#: on kube-apiserver v1.36: 400 BadRequest with the message noted). With one of them as ``--selector`` the operator
#: starts, Kopf's VaultSecret watch gets the 400 and the process exits with a traceback instead of a usage error.
REFUSED_BY_THE_API_SERVER = [
    pytest.param("a=b,", id="trailing-comma"),  # found '', expected: identifier after ','
    pytest.param("a,,b", id="empty-requirement"),  # found ',', expected: identifier after ','
    pytest.param("a in (b),", id="set-then-trailing-comma"),
    pytest.param("a in (b c)", id="space-in-set"),  # found 'c', expected: ',' or ')'
    pytest.param("a/b/c=x", id="two-slashes"),  # a valid label key must consist of alphanumeric characters ...
    pytest.param("Example.com/a=b", id="uppercase-prefix"),  # prefix part a lowercase RFC 1123 subdomain ...
    pytest.param("x" * 64 + "=y", id="key-over-63"),  # name part must be no more than 63 bytes
    pytest.param("k=" + "v" * 64, id="value-over-63"),  # must be no more than 63 bytes
]


@pytest.mark.parametrize("selector", REFUSED_BY_THE_API_SERVER)
def test_selectors_the_api_server_refuses_are_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        parse_selector(selector)


# -- Shard --------------------------------------------------------------------------------------------------------


def test_no_shard_serves_everything_and_writes_connection_status() -> None:
    shard = Shard.of(None, None)
    assert not shard.sharded
    assert shard.owns("any", {})
    assert shard.writes_connection_status
    assert shard.describe() == "every VaultSecret"


def test_owns_needs_both_the_namespace_and_the_labels() -> None:
    # "team-b" is shard 2 of 3, "team-a" shard 0 (PINNED).
    shard = Shard.of("2/3", "shard=a")
    assert shard.sharded
    assert shard.owns("team-b", {"shard": "a"})
    assert not shard.owns("team-b", {"shard": "b"})
    assert not shard.owns("team-a", {"shard": "a"})
    assert shard.owns_namespace("team-b")
    assert not shard.owns_namespace("team-a")
    assert shard.describe() == "shard 2/3 (by namespace), VaultSecrets matching 'shard=a'"
    assert not shard.writes_connection_status


def test_only_shard_zero_writes_connection_status_by_default() -> None:
    assert [Shard.of(f"{i}/3", None).writes_connection_status for i in range(3)] == [True, False, False]
    # Selector shards all have index 0: the setting connection_status decides (see the Runtime test below).
    assert Shard.of(None, "shard!=a").writes_connection_status


def test_shard_of_settings_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.of("2/2", None)
    with pytest.raises(ValueError, match="label selector"):
        Shard.of(None, "a b")


# -- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard", "2/2"], "invalid settings: shard '2/2': need 0 <= i < n <= 64"),
        (["--shard", "0/0"], "need 0 <= i < n"),
        (["--shard", "one/two"], "shard must be i/n"),
        (["--shard", "0/65"], "n <= 64"),
        (["--selector", "shard in (a"], "invalid settings: not a label selector: 'shard in (a'"),
        (["--selector", "=a"], "not a label selector"),
        (["--selector", ","], "an empty requirement"),
        (["--shard", "0/2", "--selector", "a b"], "not a label selector"),
    ],
)
def test_run_refuses_a_bad_shard_or_selector_with_a_usage_error(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["run", "--kubeconfig", "/nonexistent/kubeconfig", *flags])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("scaivault-operator run: error: invalid settings:")
    assert message in err


def test_a_bad_shard_from_the_environment_is_a_usage_error_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCAIVAULT_OPERATOR_SHARD", "3/3")
    with pytest.raises(SystemExit) as raised:
        main(["run", "--kubeconfig", "/nonexistent/kubeconfig"])
    assert raised.value.code == 2
    assert "shard '3/3'" in capsys.readouterr().err


def test_run_passes_shard_and_selector_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags reach ``OperatorSettings`` (flags win over the environment); an empty flag clears the setting."""
    import scaivault_operator._app.runner as runner
    import scaivault_operator._cogs.kubeconfig as kubeconfig

    seen: list[OperatorSettings] = []

    async def operate(settings: OperatorSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(runner, "operate", operate)
    monkeypatch.setattr(runner, "configure_logging", lambda settings: None)
    monkeypatch.setattr(kubeconfig, "load", lambda **_: None)
    monkeypatch.setenv("SCAIVAULT_OPERATOR_SELECTOR", "from=env")
    assert main(["run", "--shard", "1/3", "--selector", "shard in (a,b)"]) == 0
    assert main(["run", "--selector", ""]) == 0
    assert (seen[0].shard, seen[0].selector) == ("1/3", "shard in (a,b)")
    assert (seen[1].shard, seen[1].selector) == (None, None)


def test_the_watch_asks_the_api_server_for_the_selected_vaultsecrets_only() -> None:
    sharded, plain = kopf.OperatorSettings(), kopf.OperatorSettings()
    configure_kopf(sharded, OperatorSettings(selector="shard!=a", shard="1/2"))
    configure_kopf(plain, OperatorSettings(shard="1/2"))
    assert sharded.watching.label_selectors[GROUP, "vaultsecrets"] == "shard!=a"
    assert (GROUP, "vaultsecrets") not in plain.watching.label_selectors  # by namespace: every event, filtered here
    for settings in (sharded, plain):  # the Secrets are watched outside Kopf (secretwatch), by their label
        assert ("v1", "secrets") not in settings.watching.label_selectors


# -- two Runtimes fed the same events -----------------------------------------------------------------------------


class RecordingKube(QuietSecretWatch):
    """What ``Runtime`` calls of ``kube.Kube`` in these tests: listings at start (``vaultsecrets``, ``secrets``) and a
    record of every write, which none of these events may cause."""

    def __init__(self, secrets: list[dict[str, Any]] | None = None) -> None:
        self.writes: list[str] = []
        self.secrets = secrets or []
        #: What a list of the VaultSecrets returns: key → (uid, labels).
        self.vaultsecrets: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}

    async def server_version(self) -> str:
        return "v1.36.2"

    async def whoami(self) -> Identity | None:
        return None

    def managed_secrets(self) -> list[dict[str, Any]]:
        return [secret for secret in self.secrets if secret["metadata"]["labels"].get(MANAGED_BY_LABEL) == MANAGED_BY]

    async def list_connections(self, namespaces: Any) -> list[tuple[str, dict[str, Any]]]:
        return []

    async def list_vaultsecret_uids(self, namespaces: Any) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
        return dict(self.vaultsecrets)

    def __getattr__(self, name: str) -> Any:
        async def write(*args: Any, **kwargs: Any) -> bool:
            self.writes.append(name)
            return True

        if name.startswith(("patch_", "create_", "delete_", "post_")):
            return write
        raise AttributeError(name)


def runtime(kube: RecordingKube | None = None, **settings: Any) -> Runtime:
    values = {"liveness_endpoint": None, "metrics_port": 0, "workers": 1, **settings}
    return Runtime(kube or RecordingKube(), OperatorSettings(**values))  # type: ignore[arg-type]


def labelled(body: dict[str, Any], **labels: str) -> dict[str, Any]:
    body["metadata"]["labels"] = dict(labels)
    return body


def queued(rt: Runtime) -> int:
    return len(rt.queue)


async def test_two_hash_shards_own_disjoint_sets_that_cover_every_vaultsecret() -> None:
    shards = [runtime(shard="0/2"), runtime(shard="1/2")]
    keys = set()
    for i in range(120):
        namespace = f"tenant-{i % 30}"
        body = vs(f"vs-{i}", f"apps/vs-{i}", namespace=namespace, uid=f"uid-{i}")
        keys.add((namespace, f"vs-{i}"))
        for rt in shards:
            await rt.on_vaultsecret("ADDED", body)
            await rt.on_vaultsecret("MODIFIED", body)  # again: nothing changes
    owned = [set(rt.registry.entries) for rt in shards]
    assert owned[0].isdisjoint(owned[1])
    assert owned[0] | owned[1] == keys
    assert owned[0]
    assert owned[1]
    for index, rt in enumerate(shards):
        assert all(shard_of(namespace, 2) == index for namespace, _ in rt.registry.entries)
        assert queued(rt) == len(owned[index])  # each new VaultSecret queued once, on its own shard only
        assert rt.registry.followed_paths(CONN) == {f"apps/{name}" for _, name in owned[index]}


def test_a_hash_shard_indexes_only_its_namespaces_secrets() -> None:
    shard = runtime(shard="0/2")  # team-a is shard 0, default shard 1
    for namespace in ("team-a", "default"):
        shard.on_secret("ADDED", managed_secret(namespace=namespace))
    assert set(shard.registry.secrets) == {("team-a", "db")}


async def test_a_hash_shard_ignores_deletions_of_other_shards_vaultsecrets() -> None:
    shard = runtime(shard="1/2")  # default is shard 1, team-a shard 0
    await shard.on_vaultsecret("ADDED", vs(namespace="default"))
    await shard.on_vaultsecret("DELETED", vs(namespace="team-a"))
    assert set(shard.registry.entries) == {("default", "db")}


def _synced(shard_label: str) -> dict[str, Any]:
    """VaultSecret team-a/db, Ready at version 1 (status written by whichever shard served it), with deletionPolicy
    Retain and our finalizer: forgetting it must never release its Secret."""
    body = vs(status=ready_status(1), target={"deletionPolicy": "Retain"})
    body["metadata"]["finalizers"] = [RETAIN_FINALIZER]
    return labelled(body, shard=shard_label)


@pytest.mark.parametrize("event_in_a", ["MODIFIED", "DELETED"])
async def test_a_relabelled_vaultsecret_moves_from_one_selector_shard_to_the_other(event_in_a: str) -> None:
    """``shard=a`` and ``shard!=a``: team-a/db moves from a to b. Shard a forgets it (a MODIFIED event where the API
    does not filter, a DELETED one where the watch's label selector does) without touching its Secret or releasing
    it; shard b takes it as in sync — its status and the Secret index say so — and queues no sync. New versions of
    its path are then b's to follow."""
    kube_a, kube_b = RecordingKube(), RecordingKube()
    a, b = runtime(kube_a, selector="shard=a"), runtime(kube_b, selector="shard!=a", connection_status=False)
    for rt in (a, b):
        rt.on_secret("ADDED", managed_secret())  # every selector shard sees every managed Secret
        await rt.on_vaultsecret("ADDED", _synced("a"))
    assert set(a.registry.entries) == {("team-a", "db")}
    assert b.registry.entries == {}
    assert queued(a) == queued(b) == 0  # a: trusted as in sync (warm)

    await a.on_vaultsecret(event_in_a, _synced("b"))
    await b.on_vaultsecret("ADDED", _synced("b"))

    assert a.registry.entries == {}
    assert Release(("team-a", "db")) not in a.queue
    assert queued(a) == 0
    assert a.registry.followed_paths(CONN) == set()
    assert set(b.registry.entries) == {("team-a", "db")}
    assert queued(b) == 0, "b re-synced a VaultSecret its status and Secret say is in sync"
    assert b.registry.entries[("team-a", "db")].synced_version == 1
    assert kube_a.writes == kube_b.writes == []  # no Secret, status, finalizer or Event written by either
    assert a.registry.observe_versions(CONN, {"apps/web/db": 2}) == []
    assert b.registry.observe_versions(CONN, {"apps/web/db": 2}) == [(CONN, "apps/web/db", None)]


async def test_a_relabelled_vaultsecret_whose_secret_b_has_not_seen_is_synced_by_b() -> None:
    """Not provably in sync for b (no Secret in its index yet): b syncs it, a still does nothing."""
    a, b = runtime(selector="shard=a"), runtime(selector="shard!=a", connection_status=False)
    a.on_secret("ADDED", managed_secret())
    await a.on_vaultsecret("ADDED", _synced("a"))
    await a.on_vaultsecret("MODIFIED", _synced("b"))
    await b.on_vaultsecret("ADDED", _synced("b"))
    assert a.registry.entries == {}
    assert queued(a) == 0
    assert queued(b) == 1


async def test_an_event_for_an_object_another_shard_serves_is_ignored() -> None:
    a = runtime(selector="shard=a")
    await a.on_vaultsecret("ADDED", labelled(vs(), shard="b"))
    await a.on_vaultsecret(None, labelled(vs(), shard="b"))
    await a.on_vaultsecret("DELETED", labelled(vs(), shard="b"))
    assert a.registry.entries == {}
    assert queued(a) == 0


@pytest.mark.parametrize(
    ("settings", "writes"),
    [
        ({}, True),
        ({"shard": "0/3"}, True),
        ({"shard": "1/3"}, False),
        ({"shard": "2/3", "connection_status": True}, True),
        ({"selector": "shard=a"}, True),
        ({"selector": "shard!=a", "connection_status": False}, False),
    ],
)
def test_one_shard_writes_the_connection_status(settings: dict[str, Any], writes: bool) -> None:
    assert runtime(**settings).connection_status.enabled is writes


async def test_a_shard_that_does_not_write_connection_status_starts_no_heartbeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    rt = runtime(shard="1/2")
    await rt.start()
    try:
        assert rt.connection_status._beat is None
    finally:
        await rt.stop()
    assert "serving shard 1/2 (by namespace)" in caplog.text


# -- a re-list forgets what was relabelled away meanwhile ----------------------------------------------------------


async def test_a_relist_forgets_a_vaultsecret_relabelled_away_while_the_watch_was_down() -> None:
    """Shard ``shard=a`` serves team-a/db and team-a/web. Its watch expires (410 Gone); meanwhile db is relabelled to
    b. Kopf lists again with the selector: only web comes back (db is not listed, and no DELETED event comes for it).
    The runtime's check after a re-list must forget db, which shard b now serves."""
    kube = RecordingKube(secrets=[managed_secret(), managed_secret("web")])
    a = runtime(kube, selector="shard=a", relist_quiet=0.0)
    await a.start()
    try:
        db = _synced("a")
        web = _synced("a")
        web["metadata"].update(name="web", uid="uid-web")
        web["spec"]["path"] = "apps/web/web"
        kube.secrets[1]["metadata"]["ownerReferences"][0]["uid"] = "uid-web"
        for body in (db, web):
            await a.on_vaultsecret(None, body)  # Kopf's first listing
        assert set(a.registry.entries) == {("team-a", "db"), ("team-a", "web")}
        kube.vaultsecrets = {("team-a", "db"): (db["metadata"]["uid"], {"shard": "b"}),  # db: now b's
                             ("team-a", "web"): ("uid-web", {"shard": "a"})}  # fmt: skip
        await a.on_vaultsecret(None, web)  # the re-list: Kopf lists with the label selector, db is not in it
        for _ in range(100):
            if a._relist is None:
                break
            await asyncio.sleep(0.01)
        assert a._relist is None
        assert set(a.registry.entries) == {("team-a", "web")}, "db is served by both shards"
    finally:
        await a.stop()
