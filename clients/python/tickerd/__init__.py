"""tickerd's Python client: live topics from a tickerd server.

    import asyncio, tickerd

    async def main():
        async with tickerd.connect("http://127.0.0.1:8080") as c:
            async for u in c.subscribe("stocks.*"):
                print(u.topic, u.seq, u.data)

    asyncio.run(main())

`tickerd.sync.connect(...)` gives the same with plain iterators, for scripts
and notebooks. The wire protocol is the server's docs/protocol.md.
"""

from . import sync
from .client import Client, TokenSource
from .connect import connect
from .delta import apply_merge_patch
from .errors import ConnectError, PublishError, TickerdError
from .jwt import jwt_expiry
from .subscription import Subscription
from .topics import covers, matches
from .update import Update

__all__ = [
    "Client",
    "ConnectError",
    "PublishError",
    "Subscription",
    "TickerdError",
    "TokenSource",
    "Update",
    "apply_merge_patch",
    "connect",
    "covers",
    "jwt_expiry",
    "matches",
    "sync",
]
