"""Bounded LRU caches of embeddings.

Vision embeddings are keyed by (model id, image sha256, context box in
pixels) and bounded by bytes as well as entries: one real SAM3 entry is
about 110 MB (FPN levels at 288², 144², 72², 36² x 256 channels), so an
entry count alone could not bound device memory. Text embeddings are keyed
by (model id, prompt text). Both are dropped freely: a miss only recomputes.

Only the device thread touches them; the lock keeps stats reads safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    def __init__(self, max_items: int, max_bytes: int | None = None,
                 size_of: Callable[[V], int] = lambda _v: 0) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.bytes = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V) -> bool:
        """Keep value unless it alone exceeds the bounds; returns whether it was kept."""
        size = self.size_of(value)
        if self.max_items <= 0 or (self.max_bytes is not None and size > self.max_bytes):
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_items or (self.max_bytes is not None and self.bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
        return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
