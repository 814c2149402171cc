"""google.protobuf Timestamp / Duration from and to the float seconds (or, for measured stage times,
milliseconds) the domain code keeps."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(unix_s: float | None = None) -> Timestamp:
    """A Timestamp for unix seconds (now when None)."""
    out = Timestamp()
    out.FromNanoseconds(int(round((time.time() if unix_s is None else unix_s) * 1e9)))
    return out


def unix_seconds(ts: Timestamp) -> float:
    """Unix seconds of a Timestamp (0.0 when unset)."""
    return ts.seconds + ts.nanos / 1e9


def duration(seconds: float) -> Duration:
    out = Duration()
    out.FromNanoseconds(int(round(seconds * 1e9)))
    return out


def seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def duration_ms(ms: float) -> Duration:
    """A Duration for a measured time in milliseconds (rounded to the nanosecond)."""
    out = Duration()
    out.FromNanoseconds(int(round(ms * 1e6)))
    return out


def milliseconds(d: Duration) -> float:
    """Milliseconds of a Duration (0.0 when unset)."""
    return d.seconds * 1e3 + d.nanos / 1e6
