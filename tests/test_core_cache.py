"""The one LRU cache every service keeps (tator_core.cache.BoundedLRU)."""

import pytest

from tator_core.cache import BoundedLRU


def test_lru_bounds_items_and_bytes():
    cache: BoundedLRU[str, bytes] = BoundedLRU(3, max_size=10, size_of=len)
    for k in "abc":
        assert cache.put(k, b"xxx")
    assert cache.get("a") == b"xxx"  # a is now most recent
    cache.put("d", b"xxx")  # 4 items > 3: b (least recent) goes
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3 and cache.size == 9
    cache.put("e", b"xxxxxx")  # 15 bytes > 10: evict from the old end until it fits
    assert cache.size <= 10 and cache.get("e") is not None
    assert not cache.put("huge", b"x" * 11) and cache.get("huge") is None
    off: BoundedLRU[str, bytes] = BoundedLRU(0)
    assert not off.put("a", b"") and off.get("a") is None


def test_entry_bound_only_evicts_least_recently_used_and_membership_is_not_a_use():
    cache: BoundedLRU[str, int] = BoundedLRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert "a" in cache          # not a use: a stays the least recent
    cache.put("c", 3)
    assert cache.get("a") is None and cache.get("b") == 2 and cache.get("c") == 3


def test_replacing_a_key_updates_its_size_and_recency():
    cache: BoundedLRU[str, bytes] = BoundedLRU(5, max_size=10, size_of=len)
    cache.put("a", b"xxxx")
    cache.put("b", b"xxxx")
    cache.put("a", b"x")          # a shrinks and becomes the most recent
    assert cache.size == 5
    cache.put("c", b"xxxxxxx")    # 12 > 10: b (least recent now) goes, a stays
    assert cache.get("b") is None and cache.get("a") == b"x" and cache.size == 8
    assert cache.pop("a") == b"x" and cache.size == 7 and cache.pop("a") is None
    cache.clear()
    assert len(cache) == 0 and cache.size == 0


def test_a_size_bound_needs_a_size_function():
    with pytest.raises(ValueError):
        BoundedLRU(3, max_size=10)
