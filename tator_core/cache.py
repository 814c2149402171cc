"""One bounded, thread-safe LRU cache on cachetools, for every cache the services keep.

A cache is bounded by its number of entries and, when given `max_size` and `size_of`, also by
the total size of its values (bytes of decoded images or embeddings: an entry count alone
cannot bound memory when one entry is a hundred megabytes). A value larger than `max_size` on
its own is not kept. Every cache here only saves work: a miss recomputes or resends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    def __init__(self, max_items: int, max_size: int | None = None,
                 size_of: Callable[[V], float] | None = None) -> None:
        if (max_size is None) != (size_of is None):
            raise ValueError("max_size and size_of go together")
        self.max_items = max_items
        self.max_size = max_size
        # Without a size bound cachetools counts entries; with one it sums size_of, and the entry
        # bound is kept by put() below.
        self._data: LRUCache[K, V] = (LRUCache(maxsize=max(0, max_items)) if max_size is None
                                      else LRUCache(maxsize=max_size, getsizeof=size_of))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Membership without counting as a use."""
        with self._lock:
            return key in self._data

    @property
    def size(self) -> float:
        """Total size_of the values held (the entry count when the cache has no size bound)."""
        return self._data.currsize

    def get(self, key: K) -> V | None:
        """The value, marked most recently used; None on a miss."""
        with self._lock:
            return self._data.get(key)

    def put(self, key: K, value: V) -> bool:
        """Keep value as the most recently used, evicting the least recently used past either
        bound; returns False when value alone exceeds a bound (it is then not kept)."""
        if self.max_items <= 0:
            return False
        with self._lock:
            self._data.pop(key, None)
            try:
                self._data[key] = value
            except ValueError:  # cachetools: larger than maxsize on its own
                return False
            while len(self._data) > self.max_items:
                self._data.popitem()
        return True

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
