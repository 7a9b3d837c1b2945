"""``POST /oauth/token``: the OAuth2 client-credentials grant, emulating the ScaiKey token service.

Owns the form handling of the token endpoint: ``grant_type``, client authentication (form fields or HTTP
Basic, not both), the optional space-separated ``scope`` and the RFC 6749 answer and error shapes (errors
carry ``error_description`` next to the usual ``message``). Checking secrets and minting JWTs is ``_auth``'s
job. Registered by ``_app.build_app``; requests are counted as call kind ``token`` by the stats middleware.
HTTP Basic credentials are taken as sent (not form-urlencoded first, unlike RFC 6749 2.3.1 strictly asks).
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ._auth import Authenticator, ClientError, OAuthClient
from ._errors import ApiError
from ._parsing import read_form

__all__ = ["TokenApi"]

_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="dev-vault"'}


def _oauth_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """An OAuth 2.0 error: the usual shape plus RFC 6749's ``error_description``."""
    return ApiError(status, code, message, headers=headers, extra={"error_description": message})


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from HTTP Basic auth, None without it, ``invalid_client`` if garbled."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _oauth_error(401, "invalid_client", "malformed HTTP Basic credentials", _BASIC_CHALLENGE)
    return client_id, secret


class TokenApi:
    """``POST /oauth/token``: the client-credentials grant of the ScaiKey token service."""

    def __init__(self, auth: Authenticator, max_body: int) -> None:
        self._auth = auth
        self._max_body = max_body

    def _client(self, request: web.Request, form: dict[str, str]) -> OAuthClient:
        basic = _basic_credentials(request)
        if basic is not None and ("client_id" in form or "client_secret" in form):
            raise _oauth_error(400, "invalid_request", "send client credentials either in the form or as Basic")
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        try:
            return self._auth.authenticate_client(client_id, secret)
        except ClientError as exc:
            raise _oauth_error(401, exc.code, exc.message, _BASIC_CHALLENGE) from None

    async def token(self, request: web.Request) -> web.Response:
        form = await read_form(request, self._max_body)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
        client = self._client(request, form)
        scope = form.get("scope")
        requested = frozenset(scope.split()) if scope is not None else None
        try:
            issued = self._auth.issue(client, requested)
        except ClientError as exc:
            raise _oauth_error(400, exc.code, exc.message) from None
        body = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": " ".join(sorted(issued.scopes)),
        }
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
