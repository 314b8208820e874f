"""Changing the shard count of a live deployment (store/resize.py): the backend's steps, each backend.

Asserted through :class:`~wfctl.store.DataDir` (what every process opens) and the shards' stores.
"""

from __future__ import annotations

import time

import pytest

from wfctl.errors import InputError
from wfctl.store import DataDir, StoreError

from .support import T0, make_runs, state


def opened(deployment) -> DataDir:
    return DataDir.open(deployment.path, create=False)


def test_shards_created_but_not_published_leave_the_old_count_and_the_next_add_completes_them(deploy):
    deployment = deploy(shards=2)
    opened(deployment).backend.create_shards(range(2, 4), now=time.time())  # cut short before publishing
    datadir = opened(deployment)
    assert datadir.shard_count == 2
    with pytest.raises(InputError, match="shards 0..1, not 2"):
        datadir.open_shard(2)
    resized = datadir.add_shards(2)
    assert (resized.before, resized.after, resized.key_shards) == (2, 4, 2)
    again = opened(deployment)
    assert (again.shard_count, again.settings.key_count) == (4, 2)
    with again.open_shard(3) as store:
        make_runs(store, 2)
        assert store.count_runs() == 2 and store.get_run("wf-1").shard == 3


def test_publishing_a_count_is_a_compare_and_set(deploy):
    deployment = deploy(shards=2)
    datadir = opened(deployment)
    placed = datadir.backend.create_shards(range(2, 3), now=time.time())
    with pytest.raises(InputError, match=r"the shard count changed meanwhile \(now 2, not 3\)"):
        datadir.backend.publish_shards(3, 4, 2, placed)
    assert opened(deployment).shard_count == 2
    datadir.backend.publish_shards(2, 3, 2, placed)
    assert opened(deployment).shard_count == 3


def test_another_process_adopts_the_count_when_it_refreshes(deploy):
    deployment = deploy(shards=2)
    early = opened(deployment)
    with early.open_catalog() as catalog:
        opened(deployment).add_shards(1)
        assert early.shard_count == 2
        assert early.refresh_shards(catalog) and early.shard_count == 3 and early.settings.key_count == 2
        assert not early.refresh_shards(catalog)


def test_drop_shard_keeps_a_shard_holding_a_run_and_drops_an_empty_one(deploy):
    deployment = deploy(shards=2)
    datadir = opened(deployment)
    datadir.add_shards(2)
    with datadir.open_shard(3) as store:
        make_runs(store, 1)
        datadir.backend.publish_shards(4, 2, 2)  # lowered first: then each shard is dropped if still empty
        assert datadir.backend.drop_shard(3) is False
        assert store.get_run("wf-0") is not None
        assert store.delete_runs(["wf-0"]) == 0  # unfinished
        store.cancel_runs(["wf-0"], now=T0)
        assert store.delete_runs(["wf-0"]) == 1
        assert datadir.backend.drop_shard(3) is True
        with pytest.raises(StoreError):  # a store opened before: its start fails, it is not written
            store.create_run("late", "wf", {}, state(), now=T0)
    assert datadir.backend.drop_shard(2) is True
    again = opened(deployment)
    assert again.shard_count == 2
    again.add_shards(2)  # shards come back, empty, where removed ones were
    with opened(deployment).open_shard(3) as store:
        assert store.count_runs() == 0
        make_runs(store, 1)
        assert store.get_run("wf-0").shard == 3


def test_remove_refuses_shards_holding_runs_and_changes_nothing(deploy):
    deployment = deploy(shards=1)
    datadir = opened(deployment)
    with pytest.raises(InputError, match=r"no shard can be removed: keyed starts .* route over shards 0..0"):
        datadir.remove_shards(1)
    datadir.add_shards(2)
    with datadir.open_shard(1) as store:
        make_runs(store, 1)
    with pytest.raises(InputError, match=r"shard 1 holds 1 run\(s\), 1 unfinished: nothing removed"):
        datadir.remove_shards(2)
    assert opened(deployment).shard_count == 3
    resized = datadir.remove_shards(1)  # shard 2 is empty
    assert (resized.before, resized.after) == (3, 2)
    assert opened(deployment).shard_count == 2
    with opened(deployment).open_shard(1) as store:
        assert store.count_runs() == 1
