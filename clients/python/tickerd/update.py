"""The value a subscription yields: one update of one topic, always whole
(deltas are merged back before it is made)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Update:
    """One update of `topic`, as the server numbered it.

    `seq` grows by one per update of the topic (a jump means the server
    merged updates: `max_rate`, or a slow reader); `ts` is the publish time in
    ms since the Unix epoch; `data` the whole value; `snapshot` is True for
    the topic's latest value sent when the subscription began (or when a
    resume could not deliver the missed updates: the value may jump).
    """

    topic: str
    seq: int
    ts: int
    data: Any
    snapshot: bool = False
