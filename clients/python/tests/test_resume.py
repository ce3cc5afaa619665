"""The client across a server restart and token expiry: it reconnects and
resumes from the last seq seen per topic (no gap, no duplicate), and keeps
its connection past a JWT's `exp` by refreshing the token."""

import asyncio
import time

import tickerd
from conftest import JWT_SECRET, eventually, hs256, publish, take

DURABLE = """[server]
publish_token = "pt"

[history]
path = "store"
sync = "always"
"""


def test_resumes_after_a_restart_with_no_gap_and_no_duplicate(server):
    """Kill the server (SIGKILL), start it again on the same port with its
    `[history] path`, publish while the client is still away: the client
    reconnects and gets exactly the missed updates (not snapshots), in order."""
    s = server(DURABLE)
    for i in range(1, 4):
        s.publish("r.a", {"i": i})

    async def main():
        gate = asyncio.Event()  # clear while the test holds the reconnect back
        gate.set()

        async def get_token():
            await gate.wait()  # asked before each connection
            return None

        async with tickerd.connect(s.url, get_token=get_token, backoff_base=0.05) as c:
            sub = c.subscribe("r.*")
            got = await take(sub, 1)
            assert (got[0].seq, got[0].snapshot) == (3, True)
            epoch = c.epoch
            gate.clear()
            s.kill()
            await eventually(lambda: c.state == "reconnecting", "the client sees the drop")
            s.start()
            for i in range(4, 7):
                s.publish("r.a", {"i": i})
            s.publish("r.b", {"i": 1})
            gate.set()
            got = await take(sub, 4)
            assert c.epoch == epoch, "the durable store keeps the epoch"
            assert c.connections == 2
            a = [(u.seq, u.data["i"], u.snapshot) for u in got if u.topic == "r.a"]
            assert a == [(4, 4, False), (5, 5, False), (6, 6, False)], got
            s.publish("r.a", {"i": 7})
            (u,) = await take(sub, 1)
            assert (u.topic, u.seq) == ("r.a", 7)

    asyncio.run(main())


def test_refreshes_the_token_before_it_expires(server):
    """With `get_token` and short-lived JWTs (`[auth.jwt]`, leeway 0), the
    client sends `refresh` before each `exp`: one connection lives through
    the first token's expiry and receives every update."""
    s = server(
        '[server]\ntoken = "static-root"\npublish_token = "pt"\n\n'
        '[auth.jwt]\nhs256_secrets = ["file:jwt.secret"]\nleeway = "0s"\n',
        {"jwt.secret": JWT_SECRET + "\n"},
    )
    issued = []

    def get_token():
        # 6 s of life: refreshed about 1.5 s before exp, a margin a loaded
        # machine keeps; two refreshes outlive the first token.
        token = hs256({"sub": "py", "exp": int(time.time()) + 6, "topics": ["j.>"]})
        issued.append(token)
        return token

    async def main():
        async with tickerd.connect(s.url, get_token=get_token) as c:
            sub = c.subscribe("j.*")
            first_exp = tickerd.jwt_expiry(issued[0])
            for n in range(1, 3):
                await eventually(lambda: c.refreshes >= n, f"token refresh {n}")
                await publish(s, "j.x", n)
                (u,) = await take(sub, 1)
                assert (u.seq, u.data) == (n, n)
            assert time.time() > first_exp, "the first token has expired"
            assert c.connections == 1, c.last_error

    asyncio.run(main())


def test_a_partial_resume_is_backfilled_or_taken_as_a_snapshot(server):
    """Past `[limits] max_resume` the server resumes with the snapshot
    (`resume.partial`): a client with `backfill` yields the missed updates
    from the history route instead, in order; one without yields the
    snapshot, flagged, its seq jumping."""
    s = server(DURABLE + "\n[limits]\nmax_resume = 2\n")
    s.publish("m.a", 1)

    async def main():
        gate = asyncio.Event()  # clear while the test holds the reconnects back
        gate.set()

        async def get_token():
            await gate.wait()
            return None

        filled = await tickerd.connect(s.url, get_token=get_token, backfill=100, backoff_base=0.05)
        plain = await tickerd.connect(s.url, get_token=get_token, backoff_base=0.05)
        async with filled, plain:
            subs = [filled.subscribe("m.*"), plain.subscribe("m.*")]
            for sub in subs:
                assert [u.seq for u in await take(sub, 1)] == [1]
            gate.clear()
            s.kill()
            await eventually(
                lambda: filled.state == plain.state == "reconnecting", "both see the drop"
            )
            s.start()
            for i in range(2, 7):
                s.publish("m.a", i)
            gate.set()
            got = await take(subs[0], 5)
            assert [(u.seq, u.data, u.snapshot) for u in got] == [(i, i, False) for i in range(2, 7)]
            (u,) = await take(subs[1], 1)
            assert (u.seq, u.data, u.snapshot) == (6, 6, True)
            s.publish("m.a", 7)
            for sub in subs:
                assert [u.seq for u in await take(sub, 1)] == [7], "the snapshot is not repeated"

    asyncio.run(main())
