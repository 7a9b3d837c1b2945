"""Runtime readiness (``/readyz``): not before start-up is done, and never while the API server does not answer."""

from __future__ import annotations

from typing import Any

from kube_fakes import QuietSecretWatch

from scaivault_operator._cogs.kube import Identity, KubeError
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime


class StubKube(QuietSecretWatch):
    """The calls ``Runtime.start`` and ``Runtime.readiness`` make; the API server answers while ``up``."""

    def __init__(self) -> None:
        self.up = True
        self.identity: Identity | None = Identity("system:serviceaccount:scaivault-system:op", ("system:masters",))

    async def server_version(self) -> str:
        if not self.up:
            raise KubeError("GET /version: ConnectError", None)
        return "v1.36.2"

    async def whoami(self) -> Identity | None:
        return self.identity

    async def list_connections(self, *_: Any) -> list[tuple[str, dict[str, Any]]]:
        return []


def _runtime(kube: StubKube) -> Runtime:
    return Runtime(kube, OperatorSettings(metrics_port=0, workers=1))  # type: ignore[arg-type]


async def test_not_ready_until_started_then_follows_the_api_server(caplog) -> None:
    kube = StubKube()
    runtime = _runtime(kube)
    assert await runtime.readiness() == (False, "starting")
    caplog.set_level("INFO")
    await runtime.start()
    try:
        assert await runtime.readiness() == (True, "ok")
        kube.up = False
        ready, reason = await runtime.readiness()
        assert not ready
        assert reason.startswith("Kubernetes API server unreachable")
        kube.up = True
        assert await runtime.readiness() == (True, "ok")
    finally:
        await runtime.stop()
    assert await runtime.readiness() == (False, "starting")
    assert "Kubernetes v1.36.2; running as system:serviceaccount:scaivault-system:op" in caplog.text


async def test_identity_unknown_is_logged_and_harmless(caplog) -> None:
    kube = StubKube()
    kube.identity = None
    runtime = _runtime(kube)
    caplog.set_level("INFO")
    await runtime.start()
    await runtime.stop()
    assert "identity unknown" in caplog.text
