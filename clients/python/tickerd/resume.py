"""Resuming after a reconnect: the `since` a subscribe carries (the last seq
seen of each topic its patterns match), and the backfill of a topic the
server could only resume with its snapshot (`resume.partial`)."""

import urllib.parse
from typing import Dict, Iterable, List, Optional

from .topics import any_matches
from .transport import get_json
from .update import Update

# Keep `since` well under the server's max_frame_bytes (64 KiB by default).
_MAX_SINCE_BYTES = 32 * 1024


def since_for(seqs: Dict[str, int], patterns: Iterable[str]) -> Dict[str, int]:
    """The entries of `seqs` (topic → last seq seen) that `patterns` match, as
    many as fit in a frame: the rest get snapshots."""
    patterns = tuple(patterns)
    since: Dict[str, int] = {}
    size = 0
    for topic, seq in seqs.items():
        if any_matches(patterns, topic):
            size += len(topic) + 16
            if size > _MAX_SINCE_BYTES:
                break
            since[topic] = seq
    return since


async def missed_updates(
    server: str, token: Optional[str], topic: str, last: int, limit: int, timeout: float
) -> Optional[List[Update]]:
    """The retained updates of `topic` after seq `last`, from
    `/api/topics/{topic}/history`, oldest first; None when the history no
    longer reaches back to `last` (or the topic started over): then the
    snapshot is all there is. A failed request raises."""
    path = f"api/topics/{urllib.parse.quote(topic, safe='')}/history?limit={limit}"
    rows = await get_json(server, path, token, timeout)
    if not rows or rows[0]["seq"] > last + 1 or rows[-1]["seq"] < last:
        return None
    return [
        Update(topic, row["seq"], row.get("ts", 0), row.get("data"), False)
        for row in rows
        if row["seq"] > last
    ]
