"""`tickerd.connect`: makes a `Client` and opens its first connection, used
as `c = await connect(url)` or `async with connect(url) as c:`."""

from typing import Any, Optional

from .client import Client, TokenSource


class _Connecting:
    """What `connect` returns: awaited, the open client; `async with`, the
    client closed at the end of the block."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Client:
        await self._client._start()
        return self._client

    async def __aenter__(self) -> Client:
        return await self._open()

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.close()


def connect(
    url: str = "http://127.0.0.1:8080",
    token: Optional[str] = None,
    *,
    get_token: Optional[TokenSource] = None,
    backfill: int = 0,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
    open_timeout: float = 10.0,
) -> _Connecting:
    """Connects to the tickerd server at `url` (`http://host:port`).

    `c = await connect(url)` or `async with connect(url) as c:`. The first
    connection must open (else `ConnectError` with the server's reason);
    later drops reconnect on their own, with backoff (`backoff_base` s,
    doubling up to `backoff_cap`, full jitter) and resume. `token` is the read
    token (`?token=`); `get_token` (a function, sync or async) is called for a
    fresh one before each connection and before a JWT's `exp`. `backfill`: on
    a resume the server could not serve whole, fetch up to this many retained
    updates per topic to fill the gap (0: take the snapshot).
    """
    return _Connecting(
        Client(
            url,
            token,
            get_token=get_token,
            backfill=backfill,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            open_timeout=open_timeout,
        )
    )
