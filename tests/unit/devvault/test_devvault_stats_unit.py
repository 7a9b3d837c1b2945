"""Statistics counters and their JSON form."""

from __future__ import annotations

from scaivault_operator.devvault import DevVaultStats


def test_counters_and_snapshot():
    stats = DevVaultStats()
    stats.record_request("read", 200)
    stats.record_request("read", 404)
    stats.record_request(None, 404)
    stats.record_read("a", 2)
    stats.record_read("a", 2)
    stats.record_read("b", 1)

    snapshot = stats.snapshot()
    assert snapshot.calls == {"whoami": 0, "read": 2, "list": 0, "write": 0, "token": 0}
    assert snapshot.statuses == {200: 1, 404: 2}
    assert snapshot.requests == 3
    assert snapshot.reads_of("a") == {2: 2}
    assert snapshot.to_json() == {
        "requests": 3,
        "calls": {"whoami": 0, "read": 2, "list": 0, "write": 0, "token": 0},
        "statuses": {"200": 1, "404": 2},
        "reads": {"a": {"2": 2}, "b": {"1": 1}},
        "injected": {},
    }
    assert (stats.count("read"), stats.count_status(404), stats.count_reads("a"), stats.count_reads("a", 1)) == (
        2,
        2,
        2,
        0,
    )


def test_snapshot_is_a_copy_and_reset_zeroes():
    stats = DevVaultStats()
    stats.record_request("write", 201)
    snapshot = stats.snapshot()
    stats.reset()

    assert snapshot.calls["write"] == 1
    assert stats.snapshot().requests == 0
    assert stats.count("write") == 0
