"""The ScaiVault client: typed, async, with one error tree.

Public surface (everything else lives in private modules)::

    async with ScaiVaultClient("https://vault.example", StaticToken(path="/var/run/token")) as vault:
        me = await vault.whoami()
        secret = await vault.read("apps/web/db", version=3)
        async for page in vault.list_secrets("apps/"):
            ...
        await vault.write("apps/web/db", {"password": "..."})

Errors: see ``_exceptions`` for the tree; callers catch ``ScaiVaultError`` or one of its classes, and tell the
ScaiVault API's errors from the OAuth token endpoint's by ``error.endpoint`` (``Endpoint``).
"""

from ._auth import ClientCredentials, RereadableToken, StaticToken, TokenProvider
from ._client import DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT, ScaiVaultClient
from ._exceptions import (
    APIError,
    BadRequestError,
    ConfigurationError,
    Endpoint,
    ForbiddenError,
    InvalidPathError,
    NotFoundError,
    RateLimitedError,
    ResponseError,
    ScaiVaultError,
    TransientError,
    UnauthenticatedError,
    UnavailableError,
)
from ._models import Identity, Secret, SecretPage, SecretSummary, WriteResult
from ._paths import encode_path, validate_path, validate_prefix
from ._retry import RetryPolicy

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "APIError",
    "BadRequestError",
    "ClientCredentials",
    "ConfigurationError",
    "Endpoint",
    "ForbiddenError",
    "Identity",
    "InvalidPathError",
    "NotFoundError",
    "RateLimitedError",
    "RereadableToken",
    "ResponseError",
    "RetryPolicy",
    "ScaiVaultClient",
    "ScaiVaultError",
    "Secret",
    "SecretPage",
    "SecretSummary",
    "StaticToken",
    "TokenProvider",
    "TransientError",
    "UnauthenticatedError",
    "UnavailableError",
    "WriteResult",
    "encode_path",
    "validate_path",
    "validate_prefix",
]
