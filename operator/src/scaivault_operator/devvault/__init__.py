"""dev-vault: a local ScaiVault server for tests, the demo and benchmarks.

A real aiohttp HTTP server implementing the ScaiVault API of the quickstart (``docs/dev-vault.md`` has the
details): bearer tokens with scopes, ``whoami``, versioned secrets (read, write, list with cursors), the OAuth2
client-credentials token endpoint of ScaiKey, fault injection (latency, 503s, 429s with or without
``Retry-After``, expired tokens — also mid-way, a deterministic ``fail_next`` queue, spoiled answer bodies, lists
that lag behind, limited to some call kinds if wanted), deleting and rolling back secrets, request statistics
and ``/_dev`` admin endpoints.
Secrets live in memory, or in SQLite with a data file.

Public surface::

    config = DevVaultConfig(port=0, tokens={"rw-token": {"secrets:read", "secrets:write"}})
    with run_in_thread(config) as running:          # own event loop, daemon thread
        running.vault.write("apps/db", {"password": "..."})
        httpx.get(f"{running.url}/v1/secrets/apps/db", headers={"Authorization": "Bearer rw-token"})
        running.vault.faults.fail_next = [503, 429]
        assert running.vault.stats.count_reads("apps/db", 1) == 1

    async with DevVault(config) as vault:            # on the caller's event loop
        ...

Started from the command line by ``scaivault-operator dev-vault`` (``scaivault_operator.cli``).
"""

from ._config import DevVaultConfig, parse_client_spec, parse_token_spec
from ._faults import FaultConfig
from ._stats import DevVaultStats, StatsSnapshot
from ._thread import RunningDevVault, run_in_thread
from ._vault import DevVault

__all__ = [
    "DevVault",
    "DevVaultConfig",
    "DevVaultStats",
    "FaultConfig",
    "RunningDevVault",
    "StatsSnapshot",
    "parse_client_spec",
    "parse_token_spec",
    "run_in_thread",
]
