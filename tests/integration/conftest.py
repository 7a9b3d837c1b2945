"""Fixtures for the operator's integration tests (the dev vault fixtures come from ``tests/conftest.py``).

``emulator``: kmock's emulated Kubernetes API (``EmulatedCluster``), with the test's own requests marked.
``bare_env``: an ``OperatorEnv`` on that emulator and ``dev_vault``, nothing created and no operator running.
``cluster``: ``bare_env`` with the token Secret (``ro-token``) in ``scaivault-system``, the ClusterVaultConnection
``default`` pointing at the dev vault (pollInterval 1s, every namespace may read ``apps/``, ``shared/`` and
``missing/``) and the operator running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from operator_helpers import CONN, TEST_AGENT, OperatorEnv, cluster_connection, fast_settings

from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator.testing import EmulatedCluster, emulated_cluster


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return fast_settings()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatedCluster]:
    async with emulated_cluster() as cluster:
        cluster.http.headers["User-Agent"] = TEST_AGENT
        yield cluster


@pytest.fixture
async def bare_env(emulator, dev_vault, operator_settings) -> AsyncIterator[OperatorEnv]:
    env = OperatorEnv(cluster=emulator, vault=dev_vault.vault, settings=operator_settings)
    try:
        yield env
    finally:
        await env.stop_operator()


@pytest.fixture
async def cluster(bare_env, dev_vault) -> OperatorEnv:
    await bare_env.token_secret(dev_vault.ro_token)
    await bare_env.create(cluster_connection(CONN, dev_vault.url))
    await bare_env.start_operator()
    return bare_env
