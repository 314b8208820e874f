"""Shard routing: FNV-1a over UTF-16 code units, equal to tale's getShardIndex."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wfctl.errors import InputError
from wfctl.store.routing import fnv1a_32, safe_shard_index, shard_for

# Computed with node running tale's getShardIndex body (Math.imul(hash, 16777619) >>> 0).
VECTORS = {
    "": 2166136261,
    "a": 3826002220,
    "workflow-1": 2851892266,
    "😀": 3409036472,
    "wf_def_7f3a9c": 1651634044,
    "jx7d2k9m4n5p6q8r1s3t": 2447568486,
    "k57a8b9c0d1e2f3g4h5j6k7m8n": 2881031385,
    "order-sync:shopify": 1683658785,
    "Ünïcödé-定义": 19974872,
    "\ud800": 75617567,
}


def js_fnv1a(key: str) -> int:
    """An independent reference: walk UTF-16-LE code units as JS charCodeAt does."""
    data = key.encode("utf-16-le", "surrogatepass")
    h = 0x811C9DC5
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 0x01000193) % 2**32
    return h


@pytest.mark.parametrize("key,expected", VECTORS.items())
def test_known_vectors(key, expected):
    assert fnv1a_32(key) == expected
    assert js_fnv1a(key) == expected


def test_non_bmp_character_hashes_as_two_surrogate_units():
    h = 2166136261
    for unit in (0xD83D, 0xDE00):  # "😀" in UTF-16
        h = ((h ^ unit) * 16777619) % 2**32
    assert fnv1a_32("😀") == h


@given(st.text())
def test_matches_reference_for_any_text(key):
    assert fnv1a_32(key) == js_fnv1a(key)
    assert 0 <= fnv1a_32(key) < 2**32


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_shard_for_is_in_range_and_stable(key, shards):
    shard = shard_for(key, shards)
    assert 0 <= shard < shards
    assert shard == fnv1a_32(key) % shards == shard_for(key, shards)


def test_shard_for_known_values():
    assert [shard_for(k, 4) for k in ("", "a", "workflow-1", "😀")] == [1, 0, 2, 0]


def test_shard_for_rejects_zero_shards():
    with pytest.raises(InputError, match="at least 1"):
        shard_for("a", 0)


def test_spreads_execution_ids_evenly():
    counts = [0] * 4
    for i in range(4000):
        counts[shard_for(f"exec-{i}", 4)] += 1
    assert min(counts) > 800


@pytest.mark.parametrize("value,expected", [(0, 0), (3, 3), (2.0, 2)])
def test_safe_shard_index_valid(value, expected):
    assert safe_shard_index(value, 4) == (expected, None)


def test_safe_shard_index_missing_is_shard_zero_without_warning():
    assert safe_shard_index(None, 4) == (0, None)


@pytest.mark.parametrize("value", [-1, 4, 99, 1.5, "2", True, [1]])
def test_safe_shard_index_invalid_falls_back_with_warning(value):
    index, warning = safe_shard_index(value, 4)
    assert index == 0
    assert warning and "shard 0" in warning


@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text()),
       st.integers(min_value=1, max_value=16))
def test_safe_shard_index_always_in_range(value, shards):
    index, _ = safe_shard_index(value, shards)
    assert 0 <= index < shards
