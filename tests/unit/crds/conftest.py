"""Fixtures for the CRD tests: the committed CRDs (``crds/*.yaml``) and their OpenAPI schemas, loaded once.

The helpers behind them live in ``crd_support``.
"""

from __future__ import annotations

import pytest
from crd_support import JsonDict, load_crds, openapi_schema


@pytest.fixture(scope="session")
def crds() -> dict[str, JsonDict]:
    """Kind -> committed CustomResourceDefinition."""
    return load_crds()


@pytest.fixture(scope="session")
def schemas(crds: dict[str, JsonDict]) -> dict[str, JsonDict]:
    """Kind -> openAPIV3Schema of the committed CRD."""
    return {kind: openapi_schema(crd) for kind, crd in crds.items()}
