"""Opaque page tokens (AIP-158).

A token is base64 of the query it belongs to plus a position (an offset, or a keyset cursor), so
a token replayed against another query is refused instead of silently paging something else.
"""

from __future__ import annotations

import base64
import json

from tator_core import errors

DEFAULT_PAGE_SIZE = 50


def encode_token(query: dict, position: object) -> str:
    raw = json.dumps({"q": query, "p": position}, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: dict) -> object:
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


def decode_offset(token: str, query: dict) -> int:
    position = decode_token(token, query)
    if position is None:
        return 0
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise errors.invalid_argument("page_token", "page_token is not a token this server issued")
    return position
