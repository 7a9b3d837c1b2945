"""The API server's limits that the checks enforce, and the server version checked by default.

Owns the CEL cost limits of ``apiextensions`` (``STATIC_ESTIMATED_COST_LIMIT`` per expression,
``STATIC_ESTIMATED_CRD_COST_LIMIT`` per schema), ``LATEST_SERVER_MINOR``, ``celconfig``'s request size and the
uint64 bound costs saturate at. Imported by the CEL modules, ``_validator`` and ``_api``; ``crdcheck`` re-exports the
public ones.
"""

from __future__ import annotations

from typing import Final

#: Largest static CEL cost of one expression (``StaticEstimatedCostLimit``).
STATIC_ESTIMATED_COST_LIMIT: Final = 10_000_000
#: Largest total static CEL cost of one schema (``StaticEstimatedCRDCostLimit``).
STATIC_ESTIMATED_CRD_COST_LIMIT: Final = 100_000_000
#: The server minor version whose behaviour is checked unless told otherwise (any >= 32 behaves the same here).
LATEST_SERVER_MINOR: Final = 34

_MAX_REQUEST_SIZE: Final = 3 * 1024 * 1024  # celconfig.MaxRequestSizeBytes
_MAX_UINT64: Final = 2**64 - 1
