"""One `Client.subscribe(...)` call: its patterns and options, and the queue of
updates the connection routes to it, read as an async iterator."""

import asyncio
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

from .topics import any_matches
from .update import Update

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

_END = object()  # queued once the subscription ends; every later read stops


class Subscription:
    """An async iterator of [`Update`]s of the topics `patterns` match.

    Made by `Client.subscribe`; `async for u in sub` yields each update once,
    in seq order per topic, across reconnects. It stops after `close()` (or the
    client's), and raises `TickerdError` when the server refused the
    subscription (a bad pattern, a pattern the token may not read).
    """

    def __init__(
        self,
        client: "Client",
        patterns: Tuple[str, ...],
        since: Union[None, int, Dict[str, int]],
        max_rate: Optional[float],
        delta: bool,
    ) -> None:
        #: The patterns, as given.
        self.patterns = patterns
        #: The `since` asked for (applied once, on the first subscribe).
        self.since = since
        #: At most this many updates per second per topic (None: every one).
        self.max_rate = max_rate
        #: Whether the server sends deltas (merged back: values stay whole).
        self.delta = delta
        self._client = client
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._ended = False
        self.joined_once = False

    @property
    def ended(self) -> bool:
        """True once closed, refused or ended with the client."""
        return self._ended

    def wants(self, topic: str) -> bool:
        """True when this subscription's patterns match `topic`."""
        return not self._ended and any_matches(self.patterns, topic)

    def put(self, update: Update) -> None:
        """Queues `update` for the reader (the client calls it)."""
        if not self._ended:
            self._queue.put_nowait(update)

    def fail(self, error: BaseException) -> None:
        """Ends the subscription with `error`, raised to the reader after the
        updates already queued."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(error)
            self._queue.put_nowait(_END)

    def end(self) -> None:
        """Ends the subscription: the reader stops after what is queued."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Update:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later reads stop too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Update)
        return item

    async def close(self) -> None:
        """Unsubscribes (patterns no other subscription holds leave the
        server) and ends the iterator."""
        await self._client._unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
