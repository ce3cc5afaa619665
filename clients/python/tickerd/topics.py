"""Topic patterns, as the server reads them (docs/protocol.md, "Topics and
patterns"): `*` is one segment, `>` one or more trailing segments, and a
wildcard in the first segment never matches a `$` topic. The same cases
(tests/data/topic_cases.json) are checked against the server, tickerd.js and
this module, so that the client routes an update where the server sent it.
"""

from typing import Iterable


def matches(pattern: str, topic: str) -> bool:
    """True when `pattern` matches `topic`."""
    if pattern == topic:
        return True
    p = pattern.split(".")
    t = topic.split(".")
    if t[0].startswith("$") and p[0] in ("*", ">"):
        return False
    for i, seg in enumerate(p):
        if seg == ">":
            return i == len(p) - 1 and len(t) > i
        if i >= len(t):
            return False
        if seg != "*" and seg != t[i]:
            return False
    return len(p) == len(t)


def covers(a: str, b: str) -> bool:
    """True when every topic pattern `b` matches is also matched by `a`."""
    if a == b:
        return True
    p = a.split(".")
    q = b.split(".")
    if q[0].startswith("$") and p[0] in ("*", ">"):
        return False
    for i, seg in enumerate(p):
        if seg == ">":
            return i == len(p) - 1 and len(q) > i
        if i >= len(q) or q[i] == ">":
            return False
        if seg != "*" and seg != q[i]:
            return False
    return len(p) == len(q)


def is_pattern(s: str) -> bool:
    """True when `s` has a wildcard segment (it names no single topic)."""
    return any(seg in ("*", ">") for seg in s.split("."))


def any_matches(patterns: Iterable[str], topic: str) -> bool:
    """True when one of `patterns` matches `topic`."""
    return any(matches(p, topic) for p in patterns)
