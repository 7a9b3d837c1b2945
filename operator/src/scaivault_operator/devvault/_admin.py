"""The ``/_dev`` admin endpoints: switch faults, read and reset statistics, add and revoke tokens, delete secrets.

A development tool: these routes are unauthenticated, never subject to faults and never counted in the
statistics (``DevVault.start`` warns when the server listens beyond loopback). Registered by
``_app.build_app``; the same operations exist in-process on ``DevVault``.

    GET  /_dev/health          {"status": "ok"}
    GET  /_dev/faults          the current FaultConfig as JSON
    PUT  /_dev/faults          merge a JSON object of fault fields (validated; 400 on bad values)
    POST /_dev/faults/reset    all faults off
    GET  /_dev/stats           the counters (see ``_stats``)
    POST /_dev/stats/reset     zero the counters
    POST /_dev/tokens          {"token": "...", "scopes": [...]} adds a static token (201)
    POST /_dev/tokens/revoke   {"token": "..."} revokes a static or issued token: {"revoked": bool}
    POST /_dev/secrets/delete  {"path": "...", "keep": 0} drops every version after the first ``keep`` (0, the
                               default, deletes the secret: the next write is version 1 again)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scaivault_operator._cogs.scaivault._exceptions import InvalidPathError

from ._auth import Authenticator
from ._errors import ApiError
from ._faults import FaultInjector
from ._parsing import check_secret_path, read_json_object
from ._stats import DevVaultStats
from ._store import SecretNotFoundError, SecretStore

__all__ = ["AdminApi"]


def _token_field(body: dict[str, Any]) -> str:
    token = body.get("token")
    if not isinstance(token, str):
        raise ApiError(400, "invalid_request", "'token' is required and must be a string")
    return token


class AdminApi:
    """Handlers of the ``/_dev`` routes, bound to one vault's faults, stats and tokens."""

    def __init__(
        self, faults: FaultInjector, stats: DevVaultStats, auth: Authenticator, store: SecretStore, max_body: int
    ) -> None:
        self._faults = faults
        self._stats = stats
        self._auth = auth
        self._store = store
        self._max_body = max_body

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/_dev/health", self.health, allow_head=False)
        router.add_get("/_dev/faults", self.get_faults, allow_head=False)
        router.add_put("/_dev/faults", self.put_faults)
        router.add_post("/_dev/faults/reset", self.reset_faults)
        router.add_get("/_dev/stats", self.get_stats, allow_head=False)
        router.add_post("/_dev/stats/reset", self.reset_stats)
        router.add_post("/_dev/tokens", self.add_token)
        router.add_post("/_dev/tokens/revoke", self.revoke_token)
        router.add_post("/_dev/secrets/delete", self.delete_secret)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.config.to_json())

    async def put_faults(self, request: web.Request) -> web.Response:
        changes = await read_json_object(request, self._max_body)
        try:
            config = self._faults.update(changes)
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return web.json_response(config.to_json())

    async def reset_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.reset().to_json())

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats.snapshot().to_json())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self._stats.reset()
        return web.json_response(self._stats.snapshot().to_json())

    async def add_token(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, self._max_body)
        token = _token_field(body)
        scopes = body.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise ApiError(400, "invalid_request", "'scopes' must be a list of strings")
        try:
            identity = self._auth.add_token(token, scopes)
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return web.json_response(
            {
                "identity_id": identity.identity_id,
                "identity_type": identity.identity_type,
                "scopes": sorted(identity.scopes),
            },
            status=201,
        )

    async def revoke_token(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, self._max_body)
        return web.json_response({"revoked": self._auth.revoke_token(_token_field(body))})

    async def delete_secret(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, self._max_body)
        path, keep = body.get("path"), body.get("keep", 0)
        if not isinstance(path, str):
            raise ApiError(400, "invalid_request", "'path' is required and must be a string")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ApiError(400, "invalid_request", "'keep' must be an integer >= 0")
        try:
            check_secret_path(path)
        except InvalidPathError as exc:
            raise ApiError(400, "invalid_path", str(exc)) from None
        try:
            deleted = self._store.truncate(path, keep)
        except SecretNotFoundError:
            raise ApiError(404, "not_found", f"no secret at path '{path}'") from None
        try:
            current: int | None = self._store.get(path).version
        except SecretNotFoundError:
            current = None
        return web.json_response({"path": path, "deleted_versions": deleted, "current_version": current})
