"""Time for the dev vault: the injectable clock type and the one timestamp format of the API.

Owns ``Clock`` (a callable returning Unix seconds, ``time.time`` by default) and ``rfc3339`` (UTC, second
precision, ``Z`` suffix). Used by ``_store`` (version timestamps), ``_auth`` (token ``iat``/``exp``) and
``_vault``; tests inject a fake clock to expire tokens without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "rfc3339"]

Clock = Callable[[], float]


def rfc3339(seconds: int) -> str:
    """Format Unix ``seconds`` as ``2026-04-23T14:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
