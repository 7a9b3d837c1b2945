"""The operator's own code path on one VaultSecret, in memory and fast enough for thousands of hypothesis examples.

``run_operator`` does what the running operator does with a connection and a VaultSecret, without Kopf and without
sockets: ``Connections.upsert`` (as ``Runtime.on_connection``), ``Runtime.on_vaultsecret`` (the Kopf event),
then ``Syncer.sync_source`` on what that scheduled — the worker's loop, replayed by hand: a sync that leaves its
VaultSecret dirty without a delay runs again at once, as ``Runtime._worker`` would, and more than
``HOT_LOOP_LIMIT`` of those in a row is a stall (``Stall``). Our own writes come back as watch events
(``on_secret`` for the Secret, ``on_vaultsecret`` for the status), so a write that looks like drift would show.
Optionally a ``VersionWatcher.poll_once`` runs the connection's list path too.

``FakeKube`` stands in for ``kube.Kube`` and judges writes as an API server would: Secret names, label and
annotation keys and values (``crdcheck._names``, apimachinery's rules), data keys, the 1 MiB data limit, and the
VaultSecret status against the CRD's status schema (``format: int64`` bounds included). A refused write raises
``KubeError`` with status 422, as the real ``Kube`` does.

ScaiVault is an ``httpx.MockTransport`` behind the real ``ScaiVaultClient`` (``connections.ScaiVaultClient`` is
replaced for the duration by a subclass that passes the transport and a retry policy that does not sleep), so the
client's parsing, error translation and token handling are the real ones.

The operator's log records (DEBUG and up) and everyone else's warnings are captured, with formatted tracebacks, for
leak and crash checks: an exception that escapes ``on_vaultsecret``, ``sync_source`` or ``poll_once`` propagates to the
test.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import itertools
import json
import logging
import re
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import httpx
import jsonschema

from bad_input_strategies import SCHEMAS  # the committed CRDs (importing cel-python now: it raises the recursion limit)
from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.kube import Conflict, KubeError
from scaivault_operator._cogs.scaivault import RetryPolicy, ScaiVaultClient
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core import connections as connections_module
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._core.watcher import VersionWatcher
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import CREDENTIALS_LABEL, MAX_SECRET_BYTES, merge_patch
from scaivault_operator.crdcheck._names import (
    _dns1123_subdomain_errors,
    _label_value_errors,
    _qualified_name_errors,
)

__all__ = [
    "CLIENT_ID",
    "CONN_NAME",
    "CREDS_SECRET",
    "HOT_LOOP_LIMIT",
    "NAMESPACE",
    "OP_NS",
    "REASONS",
    "TOKEN",
    "TOKEN_SECRET",
    "VS_NAME",
    "FakeKube",
    "Outcome",
    "Stall",
    "VaultAnswers",
    "assert_settled",
    "canary_forms",
    "captured_logs",
    "connection_body",
    "leaks",
    "run_operator",
    "secret_answer",
    "secret_metadata_problems",
    "vaultsecret_body",
]

NAMESPACE = "team-a"
OP_NS = "scaivault-system"
VS_NAME = "vs"
CONN_NAME = "default"
TOKEN_SECRET = "scaivault-token"
CREDS_SECRET = "scaivault-client"
TOKEN = "tok-harness-0001"
CLIENT_ID = "harness-client"
CLIENT_SECRET = "harness-client-secret"
#: Immediate re-runs of one source in a row (no delay, still dirty) after which the harness calls it a stall.
HOT_LOOP_LIMIT = 3
#: Sync rounds at most: the first, then retries as their delays come due.
MAX_ROUNDS = 4

SETTINGS = OperatorSettings(
    liveness_endpoint=None, metrics_port=0, retry_base=0.01, retry_max=0.05, forbidden_retry=0.05, poll_jitter=0.0
)
#: Retries inside the client happen (twice), without waiting.
NO_WAIT_RETRY = RetryPolicy(max_attempts=2, base=0.0, cap=0.0, max_total=5.0)


class Stall(AssertionError):
    """The operator would re-run a sync without end (no delay, still dirty) or never finish one."""


# -- the API server -----------------------------------------------------------------------------------------------


def _int64_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("int64")
    def _int64(value: object) -> bool:
        return not isinstance(value, int) or -(2**63) <= value < 2**63

    return checker


_FORMATS = _int64_checker()
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")


@functools.cache
def _status_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(SCHEMAS["VaultSecret"]["properties"]["status"], format_checker=_FORMATS)


def secret_metadata_problems(meta: Mapping[str, Any]) -> list[str]:
    """apimachinery's ObjectMeta rules for what the operator sets on a Secret: name, labels, annotations."""
    name = str(meta.get("name", ""))
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    problems = [f"metadata.name: {e}" for e in _dns1123_subdomain_errors(name)]
    for key, value in labels.items():
        problems += [f"metadata.labels: key: {e}" for e in _qualified_name_errors(key)]
        problems += [f"metadata.labels: value: {e}" for e in _label_value_errors(value)]
    for key in annotations:
        problems += [f"metadata.annotations: key: {e}" for e in _qualified_name_errors(key)]
    # Go's regexp: '$' is the end of the text (Python's re also matches before a final newline).
    if any("\n" in text for text in (name, *labels, *labels.values(), *annotations)):
        problems.append("metadata: a name, label or annotation key or label value holds a newline")
    size = sum(len(k.encode()) + len(v.encode("utf-8", "surrogatepass")) for k, v in annotations.items())
    if size > 256 * 1024:
        problems.append("metadata.annotations: Too long: must have at most 262144 bytes")
    return problems


def _secret_problems(manifest: Mapping[str, Any]) -> list[str]:
    problems = secret_metadata_problems(manifest.get("metadata") or {})
    total = 0
    for key, value in (manifest.get("data") or {}).items():
        if not _SECRET_KEY_RE.fullmatch(key) or len(key) > 253 or key in (".", "..") or key.startswith(".."):
            problems.append("data: Invalid value: a valid config key must consist of alphanumeric characters...")
        try:
            total += len(base64.b64decode(value, validate=True))
        except ValueError:
            problems.append("data: illegal base64 data")
    if total > MAX_SECRET_BYTES:
        problems.append("data: Too long: must have at most 1048576 bytes")
    return problems


class FakeKube:
    """What ``runtime``, ``sync`` and ``connections`` use of ``kube.Kube``, with an API server's write checks."""

    default_namespace = OP_NS

    def __init__(self, *secrets: Mapping[str, Any]) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        for secret in secrets:  # never changed in place: writes replace, reads copy
            meta = secret["metadata"]
            self.secrets[(meta["namespace"], meta["name"])] = secret  # type: ignore[assignment]
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        #: The VaultSecrets the harness created (``_run``): their metadata carries the finalizer the operator sets.
        self.vaultsecrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.connection_statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.writes: list[str] = []
        self.refused: list[str] = []
        #: Watch events of the Secrets the operator wrote, for the harness to deliver: (kind, event type, body).
        self.pending: list[tuple[str, str, dict[str, Any]]] = []
        self._rv = itertools.count(100)

    def _refuse(self, what: str, problems: list[str]) -> KubeError:
        self.refused.append(f"{what}: {'; '.join(problems)}")
        return KubeError(f"{what}: HTTP 422 Invalid: {'; '.join(problems)[:300]}", 422)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        problems = _secret_problems(manifest)
        if problems:
            raise self._refuse(f"create Secret {key[0]}/{key[1]}", problems)
        if key in self.secrets:
            raise Conflict(f"create Secret {key[0]}/{key[1]}: HTTP 409 AlreadyExists", 409)
        body = copy.deepcopy(dict(manifest))
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        body["metadata"].setdefault("uid", f"uid-secret-{key[1]}")
        self.secrets[key] = body
        self.writes.append(f"create {key[0]}/{key[1]}")
        self.pending.append(("Secret", "ADDED", copy.deepcopy(body)))
        return copy.deepcopy(body)

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        current = self.secrets.get((namespace, name))
        if current is None:
            raise KubeError(f"patch Secret {namespace}/{name}: HTTP 404 NotFound", 404)
        merged = merge_patch(current, patch)
        problems = _secret_problems(merged)
        if problems:
            raise self._refuse(f"patch Secret {namespace}/{name}", problems)
        merged["metadata"]["resourceVersion"] = str(next(self._rv))
        self.secrets[(namespace, name)] = merged
        self.writes.append(f"patch {namespace}/{name}")
        self.pending.append(("Secret", "MODIFIED", copy.deepcopy(merged)))
        return copy.deepcopy(merged)

    async def delete_secret(self, namespace: str, name: str) -> None:
        body = self.secrets.pop((namespace, name), None)
        if body is not None:
            self.writes.append(f"delete {namespace}/{name}")
            self.pending.append(("Secret", "DELETED", body))

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        return {"kubernetes.io/metadata.name": namespace, "team": "a"}

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        merged = merge_patch(self.statuses.get((namespace, name), {}), dict(status))
        problems = [f"status{e.json_path[1:]}: {e.message[:200]}" for e in _status_validator().iter_errors(merged)]
        if problems:
            raise self._refuse(f"patch status of VaultSecret {namespace}/{name}", problems)
        self.statuses[(namespace, name)] = merged
        self.writes.append(f"status {namespace}/{name}")
        return True

    async def get_vaultsecret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.vaultsecrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_vaultsecret_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], resource_version: str | None
    ) -> dict[str, Any] | None:
        body = self.vaultsecrets.get((namespace, name))
        if body is None:
            return None
        body["metadata"]["finalizers"] = list(finalizers)
        self.writes.append(f"finalizers {namespace}/{name}")
        return copy.deepcopy(body)

    async def patch_connection_status(
        self, kind: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None:
        key = (kind, namespace or "", name)
        self.connection_statuses[key] = merge_patch(self.connection_statuses.get(key, {}), dict(status))
        self.writes.append(f"connection status {kind} {name}")

    async def post_event(self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append({"involved": dict(involved), "type": type_, "reason": reason, "message": message[:1024]})


def credentials_secrets(token: str = TOKEN, client_secret: str = CLIENT_SECRET) -> list[dict[str, Any]]:
    """The token Secret and the client-credentials Secret every generated connection may name, both labelled, in
    the operator's namespace and in the VaultSecret's (a VaultConnection reads its own namespace)."""

    def encoded(data: Mapping[str, str]) -> dict[str, str]:
        return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    out = []
    for namespace in (OP_NS, NAMESPACE):
        for name, data in (
            (TOKEN_SECRET, {"token": token}),
            (CREDS_SECRET, {"client_id": CLIENT_ID, "client_secret": client_secret}),
        ):
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {"name": name, "namespace": namespace, "labels": {CREDENTIALS_LABEL: "true"}},
                    "data": encoded(data),
                }
            )
    return out


# -- ScaiVault ----------------------------------------------------------------------------------------------------


def secret_answer(path: str, version: int, data: Any) -> dict[str, Any]:
    return {
        "path": path,
        "version": version,
        "secret_type": "json",
        "data": data,
        "metadata": {},
        "created_at": "2026-04-23T14:00:00Z",
        "updated_at": "2026-04-23T14:00:00Z",
    }


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class VaultAnswers:
    """What the mock ScaiVault answers. ``None`` for a call: a valid answer built from the request.

    ``on_read``: GET /v1/secrets/{path}; ``on_list``: GET /v1/secrets?prefix=; ``on_token``: POST to the token URL.
    ``data``: the data of the built read answer. Requests are recorded in ``requests``.
    """

    on_read: Answer | None = None
    on_list: Answer | None = None
    on_token: Answer | None = None
    data: Any = field(default_factory=lambda: {"password": "pw", "user": "u"})
    latest: int = 1
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.scheme not in ("http", "https"):  # what httpx's own transport says to ftp:// and the like
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{request.url.scheme}://'.")
        raw = request.url.raw_path.decode("ascii").split("?")[0]
        if request.method == "POST":
            return self._answer(self.on_token, request) or _json(
                200, {"access_token": "at-harness-0001", "token_type": "Bearer", "expires_in": 300}
            )
        if "/v1/secrets/" in raw:
            path = urllib.parse.unquote(raw.split("/v1/secrets/", 1)[1])
            version = int(request.url.params.get("version") or self.latest)
            return self._answer(self.on_read, request) or _json(200, secret_answer(path, version, self.data))
        if raw.endswith("/v1/secrets"):
            prefix = request.url.params.get("prefix", "")
            built = {"secrets": [{"path": prefix + "db", "version": self.latest}], "cursor": None, "has_more": False}
            return self._answer(self.on_list, request) or _json(200, built)
        if raw.endswith("/v1/auth/whoami"):
            return _json(200, {"identity_id": "harness", "scopes": ["secrets:read"]})
        return _json(404, {"error": "not_found"})

    @staticmethod
    def _answer(answer: Answer | None, request: httpx.Request) -> httpx.Response | None:
        if answer is None:
            return None
        return answer(request) if callable(answer) else answer


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


@contextmanager
def _mocked_scaivault(answers: VaultAnswers) -> Iterator[None]:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # a real request yields to the event loop: timeouts and other tasks get their turn
        return answers(request)

    transport = httpx.MockTransport(answer)

    class MockedClient(ScaiVaultClient):
        def __init__(self, base_url: str, auth: Any, **kwargs: Any) -> None:
            super().__init__(base_url, auth, **{**kwargs, "transport": transport, "retry": NO_WAIT_RETRY})

    with mock.patch.object(connections_module, "ScaiVaultClient", MockedClient):
        yield


# -- logs ---------------------------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(f"{record.levelname} {record.name}: {text}")


@contextmanager
def captured_logs() -> Iterator[_Collect]:
    """Every record of the operator's loggers (``scaivault_operator.*``) at DEBUG and up, and every other logger's at
    WARNING and up (asyncio's "Task exception was never retrieved" among them), formatted with tracebacks, while the
    block runs. The operator's records stop here (pytest's own capture would format each one again)."""
    handler = _Collect()
    root, operator = logging.getLogger(), logging.getLogger("scaivault_operator")
    saved = (operator.level, operator.propagate)
    root.addHandler(handler)
    operator.addHandler(handler)
    operator.setLevel(logging.DEBUG)
    operator.propagate = False
    try:
        yield handler
    finally:
        operator.removeHandler(handler)
        root.removeHandler(handler)
        operator.setLevel(saved[0])
        operator.propagate = saved[1]


# -- the run ------------------------------------------------------------------------------------------------------


def vaultsecret_body(spec: Any, *, name: str = VS_NAME, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VaultSecret",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }


def connection_body(kind: str, spec: Any, *, name: str = CONN_NAME) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-conn-{name}", "generation": 1}
    if kind == "VaultConnection":
        meta["namespace"] = NAMESPACE
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


@dataclass
class Outcome:
    """What the operator left behind: the VaultSecret's status, its Secret, Events, logs, ScaiVault requests."""

    status: dict[str, Any]
    secret: dict[str, Any] | None
    events: list[dict[str, Any]]
    logs: list[str]
    requests: list[httpx.Request]
    syncs: int
    kube: FakeKube

    @property
    def ready(self) -> dict[str, Any]:
        for condition in self.status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return {}

    @property
    def reason(self) -> str | None:
        return self.ready.get("reason")

    @property
    def message(self) -> str:
        return str(self.ready.get("message", ""))

    def texts(self) -> list[str]:
        """Every text a user or an operator's admin could read: statuses (the connection's too), Events, logs."""
        return [
            json.dumps(self.status, ensure_ascii=False),
            *(json.dumps(status, ensure_ascii=False) for status in self.kube.connection_statuses.values()),
            *(json.dumps(e, ensure_ascii=False) for e in self.events),
            *self.logs,
        ]

    def decoded_data(self) -> dict[str, str]:
        data = (self.secret or {}).get("data") or {}
        return {k: base64.b64decode(v).decode("utf-8") for k, v in data.items()}


async def _deliver(runtime: Runtime, kube: FakeKube, vs: Mapping[str, Any]) -> None:
    """Hand the watch events our writes caused back to the operator, as Kopf would."""
    while kube.pending:
        _, event_type, body = kube.pending.pop(0)
        runtime.on_secret(event_type, body)
    status = kube.statuses.get((NAMESPACE, VS_NAME))
    if status is not None:
        stored = kube.vaultsecrets.get((NAMESPACE, VS_NAME))
        metadata = stored["metadata"] if stored is not None else vs.get("metadata")
        await runtime.on_vaultsecret("MODIFIED", {**vs, "metadata": copy.deepcopy(metadata), "status": status})


async def _run(
    vs: Mapping[str, Any] | None,
    conn: Mapping[str, Any] | None,
    answers: VaultAnswers,
    kube: FakeKube,
    *,
    poll: bool,
) -> tuple[Runtime, int]:
    runtime = Runtime(kube, SETTINGS)  # type: ignore[arg-type]  # FakeKube has what Runtime's parts call
    syncs = 0
    try:
        if conn is not None:
            kind = str(conn["kind"])
            await runtime.connections.upsert(kind, conn)
        if vs is not None:
            meta = vs.get("metadata") or {}
            # Its metadata only (what the operator reads back: uid, finalizers); a spec may be nested too deep to copy.
            stored = {"metadata": copy.deepcopy(dict(meta))}
            kube.vaultsecrets[(str(meta.get("namespace")), str(meta.get("name")))] = stored
            await runtime.on_vaultsecret("ADDED", vs)
            await _deliver(runtime, kube, vs)
        if poll and conn is not None:
            key = (str(conn["kind"]), conn["metadata"].get("namespace") or "", conn["metadata"]["name"])
            watcher = VersionWatcher(
                key,
                runtime.connections,
                runtime.registry,
                SETTINGS,
                runtime.schedule,
                lambda c, opened: None,
                runtime.metrics,
            )
            await watcher.poll_once()
        entry = runtime.registry.entries.get((NAMESPACE, VS_NAME))
        source = entry.source if entry is not None else None
        hot = 0
        for _ in range(MAX_ROUNDS):
            if source is None or entry is None or entry.key not in runtime.registry.dirty:
                break
            syncs += 1
            delay = await runtime.syncer.sync_source(source)
            await _deliver(runtime, kube, vs or {})
            entry = runtime.registry.entries.get((NAMESPACE, VS_NAME))
            if entry is None or entry.key not in runtime.registry.dirty:
                break
            hot = hot + 1 if delay is None else 0  # the worker re-runs a dirty source at once when no delay came
            if hot > HOT_LOOP_LIMIT:
                raise Stall(f"source {source} re-runs at once without end ({syncs} syncs)")
        for _ in range(3):  # background writes (a connection's status) run to their end
            await asyncio.sleep(0)
        return runtime, syncs
    finally:
        await runtime.stop()


def run_operator(
    vaultsecret_spec: Any = None,
    connection_spec: Any = None,
    *,
    connection_kind: str = "ClusterVaultConnection",
    connection_name: str = CONN_NAME,
    answers: VaultAnswers | None = None,
    token: str = TOKEN,
    client_secret: str = CLIENT_SECRET,
    poll: bool = False,
    vaultsecret: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
    runner: asyncio.Runner | None = None,
) -> Outcome:
    """Run the operator's code path on one connection and one VaultSecret (see the module docstring).

    ``vaultsecret_spec`` None: no VaultSecret; ``connection_spec`` None: no connection object. ``vaultsecret``
    replaces the whole VaultSecret body (e.g. one with garbage metadata). ``runner``: an ``asyncio.Runner`` to
    reuse across examples (a new event loop per example costs about a millisecond).
    """
    answers = answers if answers is not None else VaultAnswers()
    kube = FakeKube(*credentials_secrets(token, client_secret))
    vs = (
        vaultsecret
        if vaultsecret is not None
        else (vaultsecret_body(vaultsecret_spec) if vaultsecret_spec is not None else None)
    )
    conn = (
        connection_body(connection_kind, connection_spec, name=connection_name) if connection_spec is not None else None
    )

    async def main() -> tuple[Runtime, int]:
        try:
            async with asyncio.timeout(timeout):
                return await _run(vs, conn, answers, kube, poll=poll)
        except TimeoutError:
            raise Stall(f"the operator's code path did not finish within {timeout}s") from None

    with captured_logs() as logs, _mocked_scaivault(answers):
        _, syncs = runner.run(main()) if runner is not None else asyncio.run(main())
    return Outcome(
        status=kube.statuses.get((NAMESPACE, VS_NAME), {}),
        secret=kube.secrets.get((NAMESPACE, _target_name(vs, kube.statuses.get((NAMESPACE, VS_NAME), {})))),
        events=kube.events,
        logs=logs.texts,
        requests=answers.requests,
        syncs=syncs,
        kube=kube,
    )


def _target_name(vs: Mapping[str, Any] | None, status: Mapping[str, Any]) -> str:
    """The Secret the VaultSecret writes: its target name, or — ``target.immutable`` — the versioned Secret its
    status names."""
    spec = (vs or {}).get("spec")
    target = spec.get("target") if isinstance(spec, Mapping) else None
    name = target.get("name") if isinstance(target, Mapping) else None
    if isinstance(target, Mapping) and target.get("immutable") is True:
        written = status.get("secretName")
        if isinstance(written, str) and written:
            return written
    return name if isinstance(name, str) and name else VS_NAME


# -- what every outcome must be -----------------------------------------------------------------------------------

REASONS = frozenset(
    {
        conditions.SYNCED,
        conditions.UNAUTHORIZED,
        conditions.FORBIDDEN,
        conditions.SOURCE_NOT_FOUND,
        conditions.BACKEND_UNAVAILABLE,
        conditions.INVALID_SPEC,
        conditions.POLICY_DENIED,
        conditions.TARGET_CONFLICT,
        conditions.TARGET_NOT_FOUND,
        conditions.INVALID_SOURCE_DATA,
        conditions.TEMPLATE_ERROR,
        conditions.TOO_MANY_SECRETS,
    }
)


def assert_settled(outcome: Outcome) -> None:
    """A known reason with a message, an Event for a failure, no write the API server refused, nothing logged as a
    crash."""
    assert outcome.reason in REASONS, outcome.status
    assert outcome.message
    assert outcome.ready.get("status") == ("True" if outcome.reason == conditions.SYNCED else "False")
    crashes = [t for t in outcome.logs if t.startswith(("ERROR", "CRITICAL")) or "Traceback" in t]
    assert not crashes, crashes
    assert "unexpected error" not in outcome.message, outcome.message
    assert not outcome.kube.refused, outcome.kube.refused
    if outcome.reason != conditions.SYNCED:
        assert any(e["type"] == "Warning" and e["reason"] == outcome.reason for e in outcome.events), outcome.events


def canary_forms(value: str) -> list[str]:
    """``value`` and its base64 encodings at each of the three alignments it can have inside a longer text (how a
    value travels in a Secret's data)."""
    found = [value]
    for pad in (0, 1, 2):
        encoded = base64.b64encode(b"\0" * pad + value.encode()).decode()
        start = 4 if pad else 0
        found.append(encoded[start : len(encoded) - 4])  # the part that does not depend on the neighbours
    return found


def leaks(outcome: Outcome, *canaries: str) -> list[str]:
    """The texts (status, Events, logs) that quote one of ``canaries``, as is or base64-encoded."""
    forms = [form for canary in canaries for form in canary_forms(canary)]
    return [text for text in outcome.texts() if any(form in text for form in forms)]
