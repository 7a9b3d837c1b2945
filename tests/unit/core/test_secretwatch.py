"""secretwatch and kube's Secret list/watch: the operator's own Secrets, watched outside Kopf.

``SecretWatch`` against a scripted fake (what each watch request delivers or raises), and ``Kube.list_secrets_at`` /
``Kube.watch_secrets`` against ``httpx.MockTransport`` (the requests they send, pages, the watch's lines, 410).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scaivault_operator._cogs.kube import Gone, Kube, KubeError, Listing, WatchEvent
from scaivault_operator._core.secretwatch import SecretWatch

LABELS = {"app.kubernetes.io/managed-by": "scaivault-operator"}
SELECTOR = "app.kubernetes.io/managed-by=scaivault-operator"
CANARY = "canary-value-7f3a9c"


def secret(name: str, rv: str = "", namespace: str = "ns", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "labels": LABELS if labels is None else labels}
    if rv:
        meta["resourceVersion"] = rv
    return {"metadata": meta, "data": {"password": "Y2FuYXJ5"}}


class ScriptedKube:
    """Each list answers the next of ``lists``; each watch request plays the next of ``watches`` (a list of events,
    then the end of the stream, or an exception raised after them). With nothing left, a watch waits forever and
    sets ``idle``."""

    def __init__(self, lists: list[Listing], watches: list[list[Any]]) -> None:
        self.lists, self.watches = lists, watches
        self.listed: list[tuple[str, str]] = []
        self.watched: list[tuple[str, str, str, int]] = []
        self.idle = asyncio.Event()

    async def list_secrets_at(self, namespace: str, selector: str) -> Listing:
        self.listed.append((namespace, selector))
        item = self.lists.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def watch_secrets(
        self, namespace: str, selector: str, resource_version: str, server_timeout: int
    ) -> AsyncIterator[WatchEvent]:
        self.watched.append((namespace, selector, resource_version, server_timeout))
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        for item in self.watches.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.slept: list[float] = []
        self.now = 0.0

    def on_event(self, kind: str, body: Any) -> None:
        assert body["metadata"]["labels"] == LABELS  # what Runtime.on_secret checks first
        self.events.append((kind, body["metadata"]["name"]))

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay

    def clock(self) -> float:
        self.now += 5.0  # each watch lasts a while unless a test says otherwise
        return self.now


async def run(kube: ScriptedKube, rec: Recorder, namespaces: list[str] | None = None, **kwargs: Any) -> SecretWatch:
    watch = SecretWatch(kube, namespaces or ["ns"], LABELS, rec.on_event, sleep=rec.sleep, clock=rec.clock,
                        **kwargs)  # fmt: skip
    listed = await watch.list_existing()
    rec.events.extend(("LISTED", body["metadata"]["name"]) for body in listed)
    watch.start()
    await asyncio.wait_for(kube.idle.wait(), 5)
    await watch.aclose()
    return watch


async def test_the_list_feeds_the_index_and_the_watch_starts_where_it_was_taken() -> None:
    kube = ScriptedKube([Listing([secret("a"), secret("stranger", labels={"x": "y"})], "100")], [])
    rec = Recorder()
    await run(kube, rec, timeout=300)
    assert kube.listed == [("ns", SELECTOR)]
    assert rec.events == [("LISTED", "a")]  # an API that ignores the selector: filtered here
    assert kube.watched == [("ns", SELECTOR, "100", 300)]


async def test_events_are_delivered_and_the_watch_resumes_from_the_last_version_bookmarks_included() -> None:
    first = [("ADDED", secret("b", "101")), ("MODIFIED", secret("a", "102")), ("BOOKMARK", {"metadata": {
        "resourceVersion": "150"}})]  # fmt: skip
    second = [("DELETED", secret("b", "151"))]
    kube = ScriptedKube([Listing([secret("a")], "100")], [first, second])
    rec = Recorder()
    watch = await run(kube, rec)
    assert rec.events == [("LISTED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert [rv for _, _, rv, _ in kube.watched] == ["100", "150", "151"]
    assert rec.slept == []  # a watch the server ended is resumed at once
    assert (watch.watches, watch.relists) == (3, 0)


async def test_gone_lists_again_and_reports_what_vanished_meanwhile() -> None:
    kube = ScriptedKube(
        [Listing([secret("a"), secret("b")], "100"), Listing([secret("b"), secret("c")], "300")],
        [[("MODIFIED", secret("a", "120")), Gone("watch: ERROR 410 Expired", 410)]],
    )
    rec = Recorder()
    watch = await run(kube, rec)
    assert rec.events == [("LISTED", "a"), ("LISTED", "b"), ("MODIFIED", "a"),
                          ("DELETED", "a"), ("MODIFIED", "b"), ("MODIFIED", "c")]  # fmt: skip
    assert [rv for _, _, rv, _ in kube.watched] == ["100", "300"]
    assert watch.relists == 1
    assert rec.slept == []  # it had made progress: no wait before the list


async def test_gone_straight_after_a_list_backs_off() -> None:
    gone = Gone("410", 410)
    kube = ScriptedKube([Listing([], "1"), Listing([], "2"), Listing([], "3")], [[gone], [gone]])
    rec = Recorder()
    await run(kube, rec)
    assert rec.slept == [1.0, 2.0]


async def test_a_secret_relabelled_away_is_deleted_from_the_index_and_strangers_are_ignored() -> None:
    events = [("MODIFIED", secret("a", "101", labels={})), ("ADDED", secret("x", "102", labels={"other": "1"}))]
    kube = ScriptedKube([Listing([secret("a")], "100")], [events])
    rec = Recorder()
    seen: list[tuple[str, str]] = []
    watch = SecretWatch(kube, ["ns"], LABELS, lambda kind, body: seen.append((kind, body["metadata"]["name"])),
                        sleep=rec.sleep, clock=rec.clock)  # fmt: skip
    await watch.list_existing()
    watch.start()
    await asyncio.wait_for(kube.idle.wait(), 5)
    await watch.aclose()
    assert seen == [("DELETED", "a")]


async def test_failures_back_off_exponentially_honour_retry_after_and_reset_after_progress() -> None:
    failures = [[KubeError("net", None)], [KubeError("503", 503)], [KubeError("429", 429, retry_after=7.0)],
                [("ADDED", secret("b", "110")), KubeError("net", None)], [KubeError("403", 403)]]  # fmt: skip
    kube = ScriptedKube([Listing([], "100")], failures)
    rec = Recorder()
    await run(kube, rec, retry_base=1.0, retry_max=30.0)
    assert rec.slept == [1.0, 2.0, 7.0, 1.0, 2.0]


async def test_the_backoff_is_capped() -> None:
    kube = ScriptedKube([Listing([], "1")], [[KubeError("net", None)] for _ in range(8)])
    rec = Recorder()
    await run(kube, rec, retry_base=1.0, retry_max=10.0)
    assert rec.slept == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]


async def test_a_failed_list_after_gone_is_retried() -> None:
    kube = ScriptedKube([Listing([secret("a")], "1"), KubeError("503", 503), Listing([], "9")],
                        [[Gone("410", 410)]])  # fmt: skip
    rec = Recorder()
    await run(kube, rec)
    assert rec.events[-1] == ("DELETED", "a")
    assert [rv for _, _, rv, _ in kube.watched] == ["1", "9"]


async def test_a_watch_that_ends_at_once_with_nothing_is_not_a_busy_loop() -> None:
    kube = ScriptedKube([Listing([], "")], [[], []])
    rec = Recorder()
    rec.clock = lambda: rec.now  # type: ignore[method-assign]  # no time passes
    await run(kube, rec)
    assert rec.slept == [1.0, 1.0]
    assert [rv for _, _, rv, _ in kube.watched] == ["", "", ""]  # no version (kmock): from now, each time


async def test_every_namespace_is_one_watch_and_each_listed_namespace_its_own() -> None:
    kube = ScriptedKube([Listing([secret("a", namespace="n1")], "5"), Listing([], "6")], [])
    rec = Recorder()
    watch = SecretWatch(kube, ["n1", "n2"], LABELS, rec.on_event, sleep=rec.sleep, clock=rec.clock)
    await watch.list_existing()
    watch.start()
    for _ in range(50):
        if len(kube.watched) == 2:
            break
        await asyncio.sleep(0.01)
    await watch.aclose()
    assert sorted(kube.watched) == [("n1", SELECTOR, "5", 300), ("n2", SELECTOR, "6", 300)]
    everywhere = SecretWatch(ScriptedKube([Listing([], "7")], []), [], LABELS, rec.on_event)
    await everywhere.list_existing()
    assert everywhere._kube.listed == [("", SELECTOR)]  # type: ignore[attr-defined]


# -- kube: the requests behind it ------------------------------------------------------------------------------


def kube_with(handler: Any) -> Kube:
    return Kube.for_server("http://api.test", transport=httpx.MockTransport(handler))


async def test_the_list_pages_with_continue_and_keeps_the_first_pages_version() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append({"path": request.url.path, **params})
        if "continue" not in params:
            return httpx.Response(200, json={"metadata": {"resourceVersion": "10", "continue": "t1"},
                                             "items": [secret("a")]})  # fmt: skip
        return httpx.Response(200, json={"metadata": {"resourceVersion": "11"}, "items": [secret("b"), "odd"]})

    kube = kube_with(handler)
    listing = await kube.list_secrets_at("ns", SELECTOR)
    await kube.aclose()
    assert [item["metadata"]["name"] for item in listing.items] == ["a", "b"]
    assert listing.resource_version == "10"
    assert seen == [{"path": "/api/v1/namespaces/ns/secrets", "labelSelector": SELECTOR, "limit": "500"},
                    {"path": "/api/v1/namespaces/ns/secrets", "labelSelector": SELECTOR, "limit": "500",
                     "continue": "t1"}]  # fmt: skip


async def test_a_list_whose_continue_token_expired_starts_again() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("continue", "")
        calls.append(token)
        if token == "old":
            return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired"})
        if len(calls) == 1:
            return httpx.Response(200, json={"metadata": {"resourceVersion": "1", "continue": "old"}, "items": []})
        return httpx.Response(200, json={"metadata": {"resourceVersion": "2"}, "items": [secret("a")]})

    kube = kube_with(handler)
    listing = await kube.list_secrets_at("", SELECTOR)
    await kube.aclose()
    assert calls == ["", "old", ""]
    assert listing == Listing([secret("a")], "2")


def _stream(*lines: str) -> httpx.Response:
    return httpx.Response(200, content=("\n".join(lines) + "\n").encode())


async def _events(kube: Kube, rv: str = "7") -> list[WatchEvent]:
    return [event async for event in kube.watch_secrets("", SELECTOR, rv, 300)]


async def test_the_watch_sends_its_parameters_and_yields_events_and_bookmarks() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return _stream(json.dumps({"type": "ADDED", "object": secret("a", "8")}), "",
                       json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}))  # fmt: skip

    kube = kube_with(handler)
    events = await _events(kube)
    no_version = await _events(kube, rv="")
    await kube.aclose()
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK"]
    assert events[0][1]["metadata"]["name"] == "a"
    assert requests[0].url.path == "/api/v1/secrets"
    assert dict(requests[0].url.params) == {"watch": "true", "labelSelector": SELECTOR, "allowWatchBookmarks": "true",
                                            "timeoutSeconds": "300", "resourceVersion": "7"}  # fmt: skip
    assert "resourceVersion" not in requests[1].url.params
    assert len(no_version) == 2


@pytest.mark.parametrize(
    ("response", "error", "status"),
    [
        (_stream(json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})),
         Gone, 410),
        (httpx.Response(410, json={"kind": "Status", "code": 410}), Gone, 410),
        (httpx.Response(403, json={"kind": "Status", "code": 403}), KubeError, 403),
        (_stream(json.dumps({"type": "ERROR", "object": {"code": 500, "reason": "InternalError"}})), KubeError, 500),
        (_stream(f'{{"type": "ADDED", "object": {{"data": {{"password": "{CANARY}"'), KubeError, None),
        (_stream(json.dumps({"type": "SURPRISE", "object": {"data": CANARY}})), KubeError, None),
    ],
    ids=["error-event-410", "http-410", "http-403", "error-event-500", "not-json", "unknown-type"],
)  # fmt: skip
async def test_watch_failures_are_kube_errors_that_never_quote_the_stream(
    response: httpx.Response, error: type[KubeError], status: int | None
) -> None:
    kube = kube_with(lambda request: response)
    with pytest.raises(error) as raised:
        await _events(kube)
    await kube.aclose()
    assert raised.value.status == status
    assert CANARY not in str(raised.value)


async def test_a_broken_connection_is_a_transient_kube_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("silent", request=request)

    kube = kube_with(handler)
    with pytest.raises(KubeError) as raised:
        await _events(kube)
    await kube.aclose()
    assert raised.value.transient
    assert "ReadTimeout" in str(raised.value)
