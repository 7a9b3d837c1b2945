"""The benchmark's tests: ``bench/`` lives at the repository root, next to ``tests/`` (not in the product)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.fakeapi import FakeApi, load_crds  # noqa: E402
from fakeapi_support import TEST_AGENT  # noqa: E402


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi(crds=load_crds(), bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
async def http(api: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, headers={"User-Agent": TEST_AGENT}, timeout=10.0) as client:
        yield client
