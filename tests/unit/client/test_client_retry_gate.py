"""The client's ``retry_gate``: a retry budget shared by all requests of one client (the operator passes the
connection's breaker). Asked before each retry the policy would make; told of each success."""

from __future__ import annotations

import pytest
from client_helpers import VALID_BODIES, ClientFactory, json_response

from scaivault_operator._cogs.scaivault import RetryPolicy, UnavailableError

RETRY = RetryPolicy(max_attempts=4, base=0.001, cap=0.002, max_total=5.0)


class Gate:
    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.asked = 0
        self.successes = 0

    def allow_retry(self) -> bool:
        self.asked += 1
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def record_success(self) -> None:
        self.successes += 1


@pytest.mark.usefixtures("sleeps")
async def test_a_gate_without_tokens_stops_retries_at_once(make_client: ClientFactory) -> None:
    gate = Gate(tokens=0)
    client, requests = make_client(lambda r: json_response(503, {"error": "unavailable"}), retry=RETRY,
                                   retry_gate=gate)  # fmt: skip
    with pytest.raises(UnavailableError):
        await client.read("a/b")
    assert len(requests) == 1
    assert gate.asked == 1


@pytest.mark.usefixtures("sleeps")
async def test_tokens_are_shared_across_requests(make_client: ClientFactory) -> None:
    gate = Gate(tokens=3)
    client, requests = make_client(lambda r: json_response(503, {"error": "unavailable"}), retry=RETRY,
                                   retry_gate=gate)  # fmt: skip
    for _ in range(3):
        with pytest.raises(UnavailableError):
            await client.read("a/b")
    assert len(requests) == 3 + 3  # three first attempts, three retries in all (the first request's)
    assert gate.successes == 0


@pytest.mark.usefixtures("sleeps")
async def test_the_gate_hears_of_successes_also_after_a_retry(make_client: ClientFactory) -> None:
    gate = Gate(tokens=3)
    answers = iter([json_response(502, {"error": "bad_gateway"}), json_response(200, VALID_BODIES["read"])])
    client, requests = make_client(lambda r: next(answers), retry=RETRY, retry_gate=gate)
    await client.read("a/b")
    assert len(requests) == 2
    assert (gate.asked, gate.successes) == (1, 1)


@pytest.mark.usefixtures("sleeps")
async def test_errors_that_are_not_retried_do_not_ask_the_gate(make_client: ClientFactory) -> None:
    gate = Gate(tokens=3)
    client, requests = make_client(lambda r: json_response(404, {"error": "not_found"}), retry=RETRY,
                                   retry_gate=gate)  # fmt: skip
    with pytest.raises(Exception, match="404"):
        await client.read("a/b")
    assert (len(requests), gate.asked, gate.successes) == (1, 0, 0)
