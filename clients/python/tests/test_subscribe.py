"""Subscribing against a real tickerd: wildcards, snapshots then updates,
deltas merged back into whole values, and the topic rules shared with the
server and tickerd.js."""

import asyncio
import json

import tickerd
from conftest import ROOT, take, within

PUBLISHER = '[server]\npublish_token = "pt"\n'


def test_wildcard_subscription_gets_snapshots_then_updates(server):
    """`subscribe("a.*")` yields each existing matching topic's snapshot
    (flagged), then live updates in seq order; other topics never come."""
    s = server(PUBLISHER)
    s.publish("a.x", {"v": 1})
    s.publish("a.y", {"v": 2})
    s.publish("b.z", {"v": 3})

    async def main():
        async with tickerd.connect(s.url) as c:
            sub = c.subscribe("a.*")
            first = await take(sub, 2)
            assert sorted((u.topic, u.seq, u.data, u.snapshot) for u in first) == [
                ("a.x", 1, {"v": 1}, True),
                ("a.y", 1, {"v": 2}, True),
            ]
            s.publish("b.z", {"v": 4})
            s.publish("a.x", {"v": 5})
            (u,) = await take(sub, 1)
            assert (u.topic, u.seq, u.data, u.snapshot) == ("a.x", 2, {"v": 5}, False)
            assert u.ts > 0

    asyncio.run(main())


def test_delta_subscription_yields_whole_values(server):
    """With `delta=True` the server sends merge patches; the values a
    subscription yields equal those of a plain subscription, update for update
    (fields changed, added, deleted, nested, and a non-object value)."""
    s = server(PUBLISHER)
    values = [
        {"price": 100.0, "sym": "X", "book": {"bid": 1, "ask": 2}, "note": "a long enough text"},
        {"price": 101.5, "sym": "X", "book": {"bid": 1, "ask": 3}, "note": "a long enough text"},
        {"price": 101.5, "sym": "X", "book": {"bid": 2, "ask": 3}},
        {"price": 99.0, "sym": "X", "book": {"bid": 2, "ask": 3}, "extra": [1, 2]},
        7,
        {"price": 98.0, "sym": "X"},
    ]
    s.publish("d.x", values[0])

    async def main():
        async with tickerd.connect(s.url) as plain, tickerd.connect(s.url) as deltas:
            whole = plain.subscribe("d.*")
            patched = deltas.subscribe("d.*", delta=True)
            await take(whole, 1)
            await take(patched, 1)
            for v in values[1:]:
                s.publish("d.x", v)
            got_whole = await take(whole, len(values) - 1)
            got_patched = await take(patched, len(values) - 1)
            assert [u.data for u in got_patched] == values[1:]
            assert [(u.seq, u.data) for u in got_patched] == [(u.seq, u.data) for u in got_whole]

    asyncio.run(main())


def test_a_second_subscription_to_held_topics_gets_their_values(server):
    """Two subscriptions of one client over the same topics each get the
    snapshots (the server sends them once per connection) and each update."""
    s = server(PUBLISHER)
    s.publish("o.a", 1)

    async def main():
        async with tickerd.connect(s.url) as c:
            one = c.subscribe("o.*")
            assert [u.data for u in await take(one, 1)] == [1]
            two = c.subscribe("o.a")
            (u,) = await take(two, 1)
            assert (u.topic, u.data, u.snapshot) == ("o.a", 1, True)
            await two.close()
            s.publish("o.a", 2)
            assert [u.data for u in await take(one, 1)] == [2]

    asyncio.run(main())


def test_refused_subscription_raises_the_servers_reason(server):
    """A pattern the server refuses ends that subscription with the error."""
    s = server(PUBLISHER)

    async def main():
        async with tickerd.connect(s.url) as c:
            sub = c.subscribe("bad..pattern")
            try:
                await within(sub.__anext__())
            except tickerd.TickerdError as e:
                assert "invalid_topic" in str(e) and "empty segment" in str(e), e
            else:
                raise AssertionError("no error")

    asyncio.run(main())


def test_topic_rules_match_the_servers():
    """`tickerd.matches` / `covers` agree with every case of
    tests/data/topic_cases.json (checked against the server and tickerd.js too)."""
    cases = json.loads((ROOT / "tests/data/topic_cases.json").read_text())
    for c in cases["matches"]:
        assert tickerd.matches(c["pattern"], c["topic"]) == c["match"], c
    for c in cases["covers"]:
        assert tickerd.covers(c["by"], c["pattern"]) == c["covers"], c
