"""Bad input (issue 10) with the real operator: a burst of generated invalid specs neither crashes nor stalls it.

The operator runs in-process (Kopf and our handlers) against kmock's emulated API and the local ScaiVault over
loopback HTTP. The emulator has no admission for custom resources — it stores what the CRD's schema and CEL would
refuse, as an API server does for objects stored before a rule existed or by a server that skips CEL — so the
generated specs reach the operator as written. They come from ``tests/bad_input_strategies.py`` (the CRDs'
openAPIV3Schema, broken once each) and are the ones ``VaultSecretSpec`` / ``ClusterConnectionSpec`` refuse: both the
specs an API server would refuse too and those it would store (e.g. control characters in ``spec.path``).

50 invalid VaultSecrets and 10 VaultSecrets behind 10 invalid ClusterVaultConnections are created at once, then a
valid VaultSecret: it syncs (no stall), every invalid one ends ``InvalidSpec`` naming its broken field, none costs
a ScaiVault request or a Secret, no invented value reaches a status, an Event or a log line, and nothing is
logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from operator_helpers import decoded, ready_condition, vaultsecret, wait_until
from pydantic import ValidationError

from bad_input_harness import canary_forms
from bad_input_strategies import CANARY, Mutation, crd_errors, field_named, mutated_specs, shape
from scaivault_operator._cogs.api import API_VERSION, CONNECTION_SPECS, VaultSecretSpec

VAULTSECRETS = 50
CONNECTIONS = 10
_HUGE = 3_000
#: Loggers of the test's own infrastructure (the dev vault, the emulated API server): not the operator.
INFRASTRUCTURE_LOGGERS = ("scaivault_operator.devvault", "kmock", "aiohttp.access", "aiohttp.server", "aiohttp.web")


def _refused(model: Any, spec: Any) -> bool:
    try:
        model.model_validate(spec)
    except ValidationError:
        return True
    return False


def _small(spec: Any) -> bool:
    """Keeps the emulator fast: no spec over 3 kB (kmock takes ~0.2 s per 15 kB object; the unit tests send the
    huge ones)."""
    return len(json.dumps(spec)) < _HUGE


def generated(
    kind: str, count: int, draws: int, *, schema_accepted_first: bool = False
) -> list[tuple[dict[str, Any], Mutation]]:
    """``count`` mutated specs of ``kind`` that the operator's model refuses, the same ones every run: taken in
    turn from each (mutation, field) group of ``draws`` generated ones, so that no one kind of break dominates.
    ``schema_accepted_first``: one spec the CRD's schema accepts (an API server would store it; only the model is
    stricter) is taken first, when the draws found any."""
    model = VaultSecretSpec if kind == "VaultSecret" else CONNECTION_SPECS[kind]
    groups: dict[tuple[str, tuple[Any, ...]], list[tuple[dict[str, Any], Mutation]]] = {}

    @settings(
        max_examples=draws,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=mutated_specs(kind))
    def collect(case: tuple[dict[str, Any], Mutation]) -> None:
        spec, mutation = case
        if _small(spec) and _refused(model, spec):
            groups.setdefault((mutation.kind, shape(mutation.where)), []).append(case)

    collect()
    chosen: list[tuple[dict[str, Any], Mutation]] = []
    if schema_accepted_first:
        for key in sorted(groups, key=str):
            accepted = next((case for case in groups[key] if not crd_errors(kind, case[0])), None)
            if accepted is not None:
                groups[key].remove(accepted)
                chosen.append(accepted)
                break
    while len(chosen) < count and any(groups.values()):
        for key in sorted(groups, key=str):
            if groups[key] and len(chosen) < count:
                chosen.append(groups[key].pop(0))
    assert len(chosen) == count, f"only {len(chosen)} refused {kind} specs in {draws} draws"
    return chosen


def _names(messages: list[str], mutation: Mutation) -> bool:
    fields = [mutation.field, *([".".join(map(str, mutation.where[:-1]))] if mutation.dropped else [])]
    return any(field_named(message, f) for message in messages for f in fields if f)


CANARY_FORMS = canary_forms(CANARY)


async def test_a_burst_of_invalid_specs_neither_crashes_nor_stalls_the_operator(cluster, caplog) -> None:
    caplog.set_level(logging.WARNING)  # everyone's warnings and errors (Kopf's, asyncio's)...
    caplog.set_level(logging.DEBUG, logger="scaivault_operator")  # ...and all the operator's records (last: the
    # capture handler takes the level of the last call)
    vaultsecrets = generated("VaultSecret", VAULTSECRETS, draws=400, schema_accepted_first=True)
    connections = generated("ClusterVaultConnection", CONNECTIONS, draws=60)
    schema_accepted = sum(1 for spec, _ in vaultsecrets if not crd_errors("VaultSecret", spec))
    assert schema_accepted >= 1, "some of them are specs an API server would store (the model is stricter)"
    cluster.vault.write("apps/bad-input/db", {"password": "pw-good"})
    cluster.vault.stats.reset()

    bad: dict[tuple[str, str], Mutation] = {}
    bodies: list[dict[str, Any]] = []
    for index, (spec, mutation) in enumerate(vaultsecrets):
        name = f"bad-{index:02d}"
        bodies.append(
            {
                "apiVersion": API_VERSION,
                "kind": "VaultSecret",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": spec,
            }
        )
        bad[("team-a", name)] = mutation
    for index, (spec, mutation) in enumerate(connections):
        name = f"bad-conn-{index:02d}"
        bodies.append(
            {"apiVersion": API_VERSION, "kind": "ClusterVaultConnection", "metadata": {"name": name}, "spec": spec}
        )
        bodies.append(vaultsecret(f"via-{index:02d}", "apps/bad-input/db", namespace="team-b", connection=name))
        bad[("team-b", f"via-{index:02d}")] = mutation
    await asyncio.gather(*(cluster.create(body) for body in bodies))  # at once
    await cluster.create(vaultsecret("good", "apps/bad-input/db"))

    # No stall: the valid VaultSecret, created last, is served while the invalid ones are being refused.
    _, secret = await cluster.wait_synced("team-a", "good", 1, within=15)
    assert decoded(secret) == {"password": "pw-good"}

    await cluster.wait_all_reason(list(bad), "InvalidSpec", within=15)
    stored = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in await cluster.vaultsecrets()}
    unnamed = {
        key: (mutation, ready_condition(stored[key])["message"])
        for key, mutation in bad.items()
        if not _names([ready_condition(stored[key])["message"]], mutation)
    }
    assert not unnamed, unnamed

    # Nothing was read for them (the one read is the valid VaultSecret's), and no Secret was written for them.
    assert cluster.vault.stats.snapshot().calls["read"] == 1, cluster.vault.stats.snapshot().to_json()
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in await cluster.secrets()}
    assert not secrets & set(bad)

    # No invented value anywhere but the specs themselves; no crash in the log.
    texts = [json.dumps(b.get("status") or {}) for b in stored.values()]
    texts += [json.dumps(e) for e in await cluster.events()]
    records = [r for r in caplog.records if not r.name.startswith(INFRASTRUCTURE_LOGGERS)]
    texts += [r.getMessage() for r in records]
    leaked = [text[:300] for text in texts if any(form in text for form in CANARY_FORMS)]
    assert not leaked, leaked[:3]
    crashes = [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not crashes, crashes[:3]  # Kopf logs a handler's exception at ERROR
    await wait_until(
        lambda: cluster.runtime is not None and len(cluster.runtime.queue) == 0, 5, what="the work queue drains"
    )
