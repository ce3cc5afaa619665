"""Publishing with the WebSocket `publish` op (a refusal raises the server's
reason), the blocking `tickerd.sync` wrapper, and the README's Python example
run as written against the built-in default config."""

import asyncio
import re
import subprocess
import sys

import pytest

import tickerd
import tickerd.sync
from conftest import DEADLINE, ROOT, take

ACCESS = """[server]
token = "root"

[[access]]
token = "desk"
patterns = ["p.>"]
publish = ["p.ok.*"]

[[access]]
token = "reader"
patterns = ["p.>"]
"""


def test_publish_returns_the_seq_and_a_refusal_carries_the_reason(server):
    """`publish` to a topic the token's `publish` grant matches answers its
    seq and ts; outside the grant, or with a token without one, it raises
    `PublishError` with the server's words."""
    s = server(ACCESS)

    async def main():
        async with tickerd.connect(s.url, "desk") as c:
            sub = c.subscribe("p.ok.*")
            r = await c.publish("p.ok.a", {"qty": 3})
            assert (r["topic"], r["seq"]) == ("p.ok.a", 1) and r["ts"] > 0
            (u,) = await take(sub, 1)
            assert (u.topic, u.data) == ("p.ok.a", {"qty": 3})
            with pytest.raises(tickerd.PublishError) as e:
                await c.publish("p.other", 1)
            assert e.value.topic == "p.other"
            assert "forbidden" in e.value.reason and "publish" in e.value.reason, e.value
        async with tickerd.connect(s.url, "reader") as c:
            with pytest.raises(tickerd.PublishError) as e:
                await c.publish("p.ok.a", 1)
            assert e.value.reason.startswith("forbidden: "), e.value

    asyncio.run(main())


def test_a_refused_connection_says_why(server):
    """A wrong token fails `connect` with the status and the server's reason."""
    s = server(ACCESS)

    async def main():
        with pytest.raises(tickerd.ConnectError) as e:
            await tickerd.connect(s.url, "wrong")
        assert "401" in str(e.value) and "wrong" not in str(e.value), e.value

    asyncio.run(main())


def test_sync_wrapper_subscribes_and_publishes_with_plain_calls(server):
    """`tickerd.sync.connect` gives the same client with blocking calls and a
    plain iterator; `next(timeout=...)` gives up with `TimeoutError`."""
    s = server(ACCESS)
    with tickerd.sync.connect(s.url, "desk") as c:
        sub = c.subscribe("p.ok.*")
        with pytest.raises(TimeoutError):
            sub.next(timeout=0.2)
        assert c.publish("p.ok.s", [1, 2])["seq"] == 1
        u = sub.next(timeout=DEADLINE)
        assert (u.topic, u.seq, u.data) == ("p.ok.s", 1, [1, 2])
        c.publish("p.ok.s", "two")
        got = []
        for u in sub:
            got.append(u.data)
            break
        assert got == ["two"]
        sub.close()
        assert list(sub) == []
        with pytest.raises(tickerd.PublishError):
            c.publish("p.nope", 1)


def readme_python_example() -> str:
    """The ```python block of README.md's "Python" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Python\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_as_written(server):
    """README.md's Python example, pointed at a tickerd running the built-in
    default (synthetic `stocks.*`), prints updates and ends by itself."""
    s = server(None)
    code = readme_python_example().replace("http://127.0.0.1:8080", s.url)
    assert s.url in code, "the example connects to http://127.0.0.1:8080"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(line.startswith("stocks.") for line in lines), out.stdout
