"""Fixtures of the contract suite: every test runs once per backend in :data:`.backends.BACKENDS`.

``backend`` is a deployment with 2 shards and a 20,000-byte payload limit; ``deploy(shards=N, ...)``
makes others; ``store`` is shard 0 of ``backend`` and ``catalog`` its catalog. Tests assert only
through :class:`~wfctl.store.ShardStore` and :class:`~wfctl.store.CatalogStore`.
"""

from __future__ import annotations

import pytest

from .backends import BACKENDS

MAX_PAYLOAD_BYTES = 20_000


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def deploy(backend_name, tmp_path):
    """``deploy(shards=1, **settings)``: a fresh deployment of the backend under test, removed afterwards."""
    made = []

    def make(shards: int = 1, **settings):
        settings.setdefault("max_payload_bytes", MAX_PAYLOAD_BYTES)
        deployment = BACKENDS[backend_name](tmp_path / f"deployment-{len(made)}", shards=shards, **settings)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()


@pytest.fixture
def backend(deploy):
    return deploy(shards=2)


@pytest.fixture
def store(backend):
    with backend.open_shard(0) as shard:
        yield shard


@pytest.fixture
def catalog(backend):
    with backend.open_catalog() as opened:
        yield opened
