"""Opaque page tokens (AIP-158).

A token is base64 of the query it belongs to plus a position (an offset, or a keyset cursor), so
a token replayed against another query is refused instead of silently paging something else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tator_core import errors

DEFAULT_PAGE_SIZE = 50
T = TypeVar("T")


def encode_token(query: dict[str, Any], position: object) -> str:
    raw = json.dumps({"q": query, "p": position}, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: dict[str, Any]) -> object:
    """The position a token holds (None for the first page); INVALID_ARGUMENT page_token when it is
    malformed or was issued for another query."""
    if not token:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, same = doc["p"], doc["q"] == query
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise errors.invalid_argument("page_token", "page_token is not a token this server issued") from None
    if not same:
        raise errors.invalid_argument("page_token", "page_token belongs to another query (dataset, split or "
                                      "filter changed); start again without a token")
    return position


def page_by_key(items: Sequence[T], key: Callable[[T], str], size: int, token: str,
                query: dict[str, Any]) -> tuple[list[T], str]:
    """One page of `items` ordered by a unique string key, and the next page's token ("" on the
    last). The token holds the last key, not an offset, so an item added or removed between calls
    neither repeats nor skips another."""
    after = decode_token(token, query)
    if after is not None and not isinstance(after, str):
        raise errors.invalid_argument("page_token", "page_token is not a token this server issued")
    size = size or DEFAULT_PAGE_SIZE
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [it for it in ordered if key(it) > after]
    page = ordered[:size]
    return page, encode_token(query, key(page[-1])) if len(ordered) > size else ""


def decode_offset(token: str, query: dict[str, Any]) -> int:
    position = decode_token(token, query)
    if position is None:
        return 0
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise errors.invalid_argument("page_token", "page_token is not a token this server issued")
    return position
