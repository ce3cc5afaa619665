"""The blocking client for scripts and notebooks: the asyncio `Client` runs
on an event loop in a background thread, and each call here waits for it.

    with tickerd.sync.connect("http://127.0.0.1:8080") as c:
        for u in c.subscribe("stocks.*"):
            print(u.topic, u.data)

It works where an event loop already runs in the calling thread (Jupyter),
since the client's loop is its own.
"""

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, Dict, Iterator, Optional, TypeVar, Union

from .client import Client, TokenSource
from .subscription import Subscription
from .update import Update

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread until `stop()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tickerd", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        """Runs `coro` on the loop and waits for its result (a timeout
        cancels it and raises `TimeoutError`)."""
        fut: "concurrent.futures.Future[T]" = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except (concurrent.futures.TimeoutError, KeyboardInterrupt):
            fut.cancel()
            raise

    def stop(self) -> None:
        """Stops the loop and waits for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncSubscription:
    """A plain iterator of `Update`s (see `tickerd.Subscription`)."""

    def __init__(self, loop: _Loop, sub: Subscription) -> None:
        self._loop = loop
        #: The asyncio subscription underneath.
        self.subscription = sub

    def __iter__(self) -> Iterator[Update]:
        return self

    def __next__(self) -> Update:
        return self.next()

    def next(self, timeout: Optional[float] = None) -> Update:
        """The next update, waiting at most `timeout` seconds (None: as long
        as it takes); raises `TimeoutError` when none came, `StopIteration`
        once the subscription ended."""

        async def one() -> Update:
            return await self.subscription.__anext__()

        try:
            return self._loop.run(one(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no update within {timeout} s") from None

    def close(self) -> None:
        """Unsubscribes; the iterator ends."""
        self._loop.run(self.subscription.close())

    def __enter__(self) -> "SyncSubscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SyncClient:
    """The blocking face of `tickerd.Client`; make it with `tickerd.sync.connect`."""

    def __init__(self, loop: _Loop, client: Client) -> None:
        self._loop = loop
        #: The asyncio client underneath (its attributes: state, epoch, ...).
        self.client = client

    def subscribe(
        self,
        *patterns: str,
        since: Union[None, int, Dict[str, int]] = None,
        max_rate: Optional[float] = None,
        delta: bool = False,
    ) -> SyncSubscription:
        """As `Client.subscribe`, with a plain iterator."""

        async def sub() -> Subscription:
            return self.client.subscribe(*patterns, since=since, max_rate=max_rate, delta=delta)

        return SyncSubscription(self._loop, self._loop.run(sub()))

    def publish(self, topic: str, data: Any, *, timeout: float = 30.0) -> Dict[str, Any]:
        """As `Client.publish`: `{"topic", "seq", "ts"}`, or `PublishError`."""
        return self._loop.run(self.client.publish(topic, data, timeout=timeout))

    def close(self) -> None:
        """Closes the client and stops its thread."""
        try:
            self._loop.run(self.client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(
    url: str = "http://127.0.0.1:8080",
    token: Optional[str] = None,
    *,
    get_token: Optional[TokenSource] = None,
    **options: Any,
) -> SyncClient:
    """As `tickerd.connect`, blocking: returns a `SyncClient` once the first
    connection is open (`ConnectError` otherwise). `get_token` is called on
    the client's thread; `options` are `connect`'s (backfill, backoff_base,
    backoff_cap, open_timeout)."""
    loop = _Loop()

    async def start() -> Client:
        client = Client(url, token, get_token=get_token, **options)
        await client._start()
        return client

    try:
        return SyncClient(loop, loop.run(start()))
    except BaseException:
        loop.stop()
        raise


__all__ = ["SyncClient", "SyncSubscription", "connect"]
