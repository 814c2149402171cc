"""Hypothesis strategies built from the proto descriptors: any request of any Tator RPC.

Every field may be set or left out; scalars reach their extremes (NaN, ±inf, integer bounds),
enums take defined and undefined numbers, strings are arbitrary text or hostile picks (NUL, ANSI,
bidi, traversal, very long), bytes are random or real-but-odd images, repeated fields are short or
thousands long, and an ImageRef is sometimes consistent (sha of its bytes) so decoding is reached.
Nothing here knows a particular service: a new RPC or field is fuzzed without a change.
"""

from __future__ import annotations

import functools
import hashlib
import io
from typing import Any

import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st
from PIL import Image

MAX_DEPTH = 3
#: Bytes of one repeated field's copies. Above the services' 64 MiB message limit, so oversized messages
#: are still sent, but bounded: 300 labels x 5,000 prompts of 5,000 characters would be a 7.5 GB request
#: built in the fuzzer's own process before any call (a `make fuzz` run was OOM-killed at 18 GB by one).
MAX_REPEATED_BYTES = 80 << 20
I32, I64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
U32, U64 = (0, 2**32 - 1), (0, 2**64 - 1)

HOSTILE = ["", " ", "\x00", "a\x00b", "\x1b[2J\x1b[31mred", "abc\u202edcba", "x\x85y", "../../../etc/passwd",
           "/etc", "..", ".", "~", "%s%n", "{}", "[", "{" * 500, "A" * 5000, "日本語", "🚗", "synth", "yolo-synth",
           "clip-tiny", "sam3-tiny", "qwen-tiny", "synth-clip-head", "circle", "square", "val", "train",
           "val/images/synth_000000.png", "0" * 64]


def _png(size: tuple[int, int], mode: str = "RGB", **kw: Any) -> bytes:
    buf = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(np.full(size[::-1], 40000, np.uint16)).save(buf, "PNG")
    else:
        Image.new(mode, size, **kw).save(buf, "PNG")
    return buf.getvalue()


@functools.cache
def odd_images() -> list[bytes]:
    """Small real images with the shapes that once went wrong, plus broken ones."""
    good = _png((64, 48))
    return [good, _png((1, 300)), _png((3, 3)), _png((64, 64), "RGBA", color=(0, 0, 0, 0)), _png((32, 32), "I;16"),
            _png((40, 40), "L"), good[:60], good[:8] + b"\x00" * 40, _png((7000, 7000), "1")]


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy:
    t = fd.type
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(st.integers(*I32), st.sampled_from([0, 1, -1, *I32]))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.integers(*I64), st.sampled_from([0, 1, -1, *I64]))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(*U32)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(*U64)
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.one_of(st.floats(width=32), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e30]))
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e300]))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=24), st.sampled_from(HOSTILE))
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from(odd_images()))
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in fd.enum_type.values]), st.integers(-3, 1000))
    raise TypeError(f"unhandled field type {t}")


def _single(fd: FieldDescriptor, depth: int) -> st.SearchStrategy | None:
    if fd.message_type is not None:
        return None if depth >= MAX_DEPTH else message(fd.message_type, depth + 1)
    return _scalar(fd)


def _field(fd: FieldDescriptor, depth: int) -> st.SearchStrategy | None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key = _scalar(fd.message_type.fields_by_name["key"])
        value = _single(fd.message_type.fields_by_name["value"], depth)
        return None if value is None else st.dictionaries(key, value, max_size=3)
    one = _single(fd, depth)
    if one is None:
        return None
    if fd.is_repeated:
        many = 300 if fd.message_type is not None else 5000
        return st.one_of(st.lists(one, max_size=3), one.map(lambda x, n=many: _copies(x, n)))
    return one


def _copies(item: Any, n: int) -> list[Any]:
    """n copies of item, fewer where they would pass MAX_REPEATED_BYTES."""
    size = (len(item.encode()) if isinstance(item, str) else len(item) if isinstance(item, bytes)
            else item.ByteSize() if hasattr(item, "ByteSize") else 8)
    return [item] * max(1, min(n, MAX_REPEATED_BYTES // max(1, size)))


def _build(cls: type, desc: Descriptor, values: dict[str, Any]) -> Any:
    msg = cls()
    for name, value in values.items():
        fd = desc.fields_by_name[name]
        target = getattr(msg, name) if (fd.is_repeated or fd.message_type is not None) else None
        try:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    if fd.message_type.fields_by_name["value"].message_type is not None:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif fd.is_repeated:
                target.extend(value)
            elif fd.message_type is not None:
                target.CopyFrom(value)
            else:
                setattr(msg, name, value)
        except (ValueError, TypeError):  # e.g. a value the field's wire type cannot hold
            continue
    return msg


def _image_ref(cls: type) -> st.SearchStrategy:
    def consistent(data: bytes, send: bool) -> Any:
        ref = cls(sha256=hashlib.sha256(data).hexdigest())
        if send:
            ref.data = data
        return ref

    return st.builds(consistent, st.one_of(st.sampled_from(odd_images()), st.binary(max_size=64)), st.booleans())


@functools.cache
def message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(desc)
    optional = {fd.name: s for fd in desc.fields if (s := _field(fd, depth)) is not None}
    generic = st.fixed_dictionaries({}, optional=optional).map(lambda v: _build(cls, desc, v))
    if desc.full_name == "tator.common.v1.ImageRef":
        return st.one_of(generic, _image_ref(cls))
    return generic
