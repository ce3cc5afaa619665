"""The asyncio client: one WebSocket to a tickerd server that stays up.

It owns the connection's life, as tickerd.js does for browsers: reconnect
with exponential backoff and full jitter; on each connection every
subscription is sent again with `since` (the last seq seen per topic) and the
`epoch`, so a reconnect resumes with no gap and no duplicate; a resume the
server can only answer with snapshots (`resume.partial`) is refilled from
`/api/topics/{topic}/history` when `backfill` allows, else the snapshot is
taken; deltas are merged back into whole values; with `get_token` a fresh
token is asked for before each connection and before a JWT's `exp` (sent as
the `refresh` op, the connection stays open).
"""

import asyncio
import inspect
import json
import random
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Union

from websockets.exceptions import ConnectionClosed

from .delta import apply_merge_patch
from .errors import ConnectError, PublishError, TickerdError
from .jwt import jwt_expiry
from .resume import missed_updates, since_for
from .subscription import Subscription
from .topics import any_matches, is_pattern
from .transport import base_url, open_ws
from .update import Update

#: A function giving a fresh token (or an awaitable of one).
TokenSource = Callable[[], Union[Optional[str], Awaitable[Optional[str]]]]

# A link that lived this long resets the backoff; one that dies at once does not.
_STABLE_S = 5.0


class Client:
    """A connection to one tickerd server; make it with `tickerd.connect`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        token: Optional[str] = None,
        *,
        get_token: Optional[TokenSource] = None,
        backfill: int = 0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        open_timeout: float = 10.0,
    ) -> None:
        #: The server's HTTP base URL (`http://host:port/`).
        self.server = base_url(url)
        self._token = token
        self._get_token = get_token
        self._backfill = backfill
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._open_timeout = open_timeout
        #: `connecting`, `live`, `reconnecting` or `closed`.
        self.state = "connecting"
        #: The server's epoch (from its hello): seqs mean something within it.
        self.epoch: Optional[str] = None
        #: How many connections were opened (1 + reconnects).
        self.connections = 0
        #: How many token refreshes the server accepted.
        self.refreshes = 0
        #: Why the last connection or refresh failed (None while all is well).
        self.last_error: Optional[str] = None
        self._ws: Any = None
        self._subs: List[Subscription] = []
        self._server_patterns: Set[str] = set()
        self._seq: Dict[str, int] = {}
        self._latest: Dict[str, Update] = {}
        self._refilled: Set[str] = set()
        self._pending: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}
        self._sub_requests: Dict[str, Subscription] = {}
        self._next_id = 1
        self._live = asyncio.Event()
        self._closed = False
        self._run_task: Optional["asyncio.Task[None]"] = None
        self._refresh_task: Optional["asyncio.Task[None]"] = None
        self._joins: Set["asyncio.Task[None]"] = set()

    # -- public -------------------------------------------------------------

    def subscribe(
        self,
        *patterns: str,
        since: Union[None, int, Dict[str, int]] = None,
        max_rate: Optional[float] = None,
        delta: bool = False,
    ) -> Subscription:
        """Subscribes to `patterns`; returns an async iterator of `Update`s:
        each matching topic's snapshot, then its updates.

        `since` resumes instead of starting from snapshots: a dict of topic →
        last seq seen, or one seq for every topic the patterns match (within
        the server's current epoch). `max_rate` asks for at most that many
        updates per second per topic (the latest value always arrives);
        `delta` asks for only the changed fields, merged back here.
        """
        if not patterns:
            raise ValueError("subscribe needs at least one pattern, e.g. 'stocks.*'")
        if self._closed:
            raise TickerdError("the client is closed")
        sub = Subscription(self, tuple(patterns), since, max_rate, delta)
        self._subs.append(sub)
        # Topics the connection already receives get no snapshot from the
        # server again: the values held here stand in for them.
        for topic, u in self._latest.items():
            if sub.wants(topic) and any_matches(self._server_patterns, topic):
                sub.put(Update(u.topic, u.seq, u.ts, u.data, True))
        if self._live.is_set():
            # Held here: the loop keeps only a weak reference to a task.
            task = asyncio.get_running_loop().create_task(self._join_logged(self._ws, sub))
            self._joins.add(task)
            task.add_done_callback(self._joins.discard)
        return sub

    async def publish(self, topic: str, data: Any, *, timeout: float = 30.0) -> Dict[str, Any]:
        """Publishes `data` to `topic` (the WebSocket `publish` op; the token
        needs a `publish` grant). Returns `{"topic", "seq", "ts"}`; a refusal
        raises `PublishError` with the server's reason. While reconnecting it
        waits for the connection (at most `timeout` s in all); a connection
        lost before the answer raises `TickerdError` (it may have been
        published)."""

        async def go() -> Dict[str, Any]:
            await self._live.wait()
            reply = await self._request({"op": "publish", "topic": topic, "data": data})
            if reply.get("type") == "error":
                raise PublishError(topic, f"{reply.get('code')}: {reply.get('message')}")
            result = (reply.get("results") or [{}])[0]
            if "error" in result:
                raise PublishError(topic, str(result["error"]))
            return dict(result)

        return await asyncio.wait_for(go(), timeout)

    async def close(self) -> None:
        """Closes the connection for good; every subscription's iterator ends."""
        if self._closed:
            return
        self._closed = True
        self.state = "closed"
        tasks = [t for t in (self._run_task, self._refresh_task) if t is not None]
        tasks = [t for t in tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending("the client was closed")
        for sub in self._subs:
            sub.end()
        self._subs.clear()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- connection ---------------------------------------------------------

    async def _start(self) -> None:
        """Opens the first connection (a failure raises `ConnectError`), then
        keeps it up in the background."""
        ws = await self._open()
        ready: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.get_running_loop().create_task(self._run(ws, ready))
        try:
            await ready
        except BaseException:
            await self.close()  # no client is handed out: nothing may keep reconnecting
            raise

    async def _open(self) -> Any:
        if self._get_token is not None:
            self._token = await self._fresh_token()
        ws = await open_ws(self.server, self._token, self._open_timeout)
        self.connections += 1
        return ws

    async def _fresh_token(self) -> Optional[str]:
        assert self._get_token is not None
        token = self._get_token()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _run(self, ws: Any, ready: "asyncio.Future[None]") -> None:
        attempt = 0
        while not self._closed:
            opened_at = time.monotonic()
            code = await self._session(ws, ready)
            if self._closed:
                return
            if time.monotonic() - opened_at > _STABLE_S:
                attempt = 0
            if code == 4001 and self._get_token is not None:
                attempt = 0  # an expired token is no reason to wait
            while not self._closed:
                window = min(self._backoff_cap, self._backoff_base * 2 ** min(attempt, 16))
                attempt += 1
                self.state = "reconnecting"
                await asyncio.sleep(random.uniform(0, window))  # full jitter
                try:
                    ws = await self._open()
                    break
                except (ConnectError, TickerdError, OSError) as e:
                    self.last_error = str(e)
                except Exception as e:  # a failing get_token: keep trying
                    self.last_error = f"get_token failed: {e!r}"

    async def _session(self, ws: Any, ready: "asyncio.Future[None]") -> Optional[int]:
        """One connection's life: hello, subscriptions, frames. Returns the
        close code (None when it failed otherwise)."""
        reader: Optional["asyncio.Task[None]"] = None
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), self._open_timeout))
            if hello.get("type") != "hello":
                raise TickerdError(f"{self.server}ws: the first frame was not a hello: {hello}")
            if hello.get("epoch") != self.epoch:
                self._seq.clear()  # seqs of another server life mean nothing
            self.epoch = hello.get("epoch")
            self._ws = ws
            reader = asyncio.get_running_loop().create_task(self._read(ws))
            # Subscriptions made while these are sent are sent too: none is
            # left out between the last check and `live`.
            joined: Set[int] = set()
            while True:
                todo = [sub for sub in self._subs if id(sub) not in joined]
                if not todo:
                    break
                for sub in todo:
                    joined.add(id(sub))
                    await self._join(ws, sub)
            self.state = "live"
            self.last_error = None
            self._live.set()
            self._schedule_refresh()
            if not ready.done():
                ready.set_result(None)
            await reader
        except Exception as e:
            # Closed, timed out, or a frame it could not read: whatever it
            # was, the run loop lives on and a new connection starts clean.
            self.last_error = str(e) or repr(e)
            if not ready.done():
                ready.set_exception(ConnectError(f"{self.server}ws: {self.last_error}"))
        finally:
            if reader is not None:
                reader.cancel()
            self._dropped()
        code = ws.close_code
        return int(code) if code is not None else None

    def _dropped(self) -> None:
        self._ws = None
        self._live.clear()
        self._server_patterns.clear()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            self._refresh_task = None
        self._fail_pending("the connection was lost before the server answered")
        if not self._closed:
            self.state = "reconnecting"

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(TickerdError(why))
        self._pending.clear()
        self._sub_requests.clear()

    async def _read(self, ws: Any) -> None:
        async for text in ws:
            try:
                m = json.loads(text)
            except ValueError:
                continue
            if isinstance(m, dict):
                await self._on_frame(m)

    # -- requests -----------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    async def _request(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise TickerdError("not connected")
        rid = self._id("r")
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await ws.send(json.dumps({**msg, "id": rid}))
        return await fut

    async def _join_logged(self, ws: Any, sub: Subscription) -> None:
        try:
            await self._join(ws, sub)
        except (ConnectionClosed, TickerdError):
            pass  # the reconnect subscribes it again

    async def _join(self, ws: Any, sub: Subscription) -> None:
        """Sends `sub`'s subscribe on `ws`, resuming from the seqs seen."""
        if ws is not self._ws or sub.ended:
            return
        if not sub.joined_once:
            sub.joined_once = True
            await self._seed_since(sub)
        msg: Dict[str, Any] = {"op": "subscribe", "topics": list(sub.patterns)}
        if sub.max_rate is not None:
            msg["max_rate"] = sub.max_rate
        if sub.delta:
            msg["delta"] = True
        since = since_for(self._seq, sub.patterns)
        if since:
            msg["since"] = since
            msg["epoch"] = self.epoch
        rid = self._id("s")
        msg["id"] = rid
        self._sub_requests[rid] = sub
        self._server_patterns.update(sub.patterns)
        await ws.send(json.dumps(msg))

    async def _seed_since(self, sub: Subscription) -> None:
        """The caller's `since` becomes the last seq seen of its topics (an
        int: of every topic the patterns match now)."""
        if sub.since is None:
            return
        if isinstance(sub.since, dict):
            seeds = dict(sub.since)
        else:
            seeds = {p: sub.since for p in sub.patterns if not is_pattern(p)}
            if any(is_pattern(p) for p in sub.patterns):
                reply = await self._request({"op": "topics"})
                for row in reply.get("topics") or []:
                    if any_matches(sub.patterns, row["topic"]):
                        seeds[row["topic"]] = sub.since
        for topic, seq in seeds.items():
            self._seq.setdefault(topic, int(seq))

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.end()
        held = {p for s in self._subs for p in s.patterns}
        gone = [p for p in sub.patterns if p not in held and p in self._server_patterns]
        ws = self._ws
        if gone and ws is not None:
            self._server_patterns.difference_update(gone)
            try:
                await ws.send(json.dumps({"op": "unsubscribe", "topics": gone}))
            except ConnectionClosed:
                pass  # the reconnect does not subscribe it again

    # -- frames -------------------------------------------------------------

    async def _on_frame(self, m: Dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "update":
            self._on_update(m)
            return
        if kind == "gone":
            # Deleted: if published again it starts over at seq 1.
            self._seq.pop(m.get("topic", ""), None)
            self._latest.pop(m.get("topic", ""), None)
            return
        rid: Any = m.get("id")
        if kind == "ack" and m.get("op") == "subscribe":
            self._sub_requests.pop(rid, None)
            partial = (m.get("resume") or {}).get("partial") or []
            if partial:
                await self._on_partial(partial)
        if kind == "error" and rid in self._sub_requests:
            sub = self._sub_requests.pop(rid)
            if sub in self._subs:
                self._subs.remove(sub)
            sub.fail(TickerdError(f"subscribe {list(sub.patterns)}: {m.get('code')}: {m.get('message')}"))
        fut = self._pending.pop(rid, None) if isinstance(rid, str) else None
        if fut is not None and not fut.done():
            fut.set_result(m)

    def _on_update(self, m: Dict[str, Any]) -> None:
        topic, seq = m["topic"], m["seq"]
        snapshot = bool(m.get("snapshot"))
        last = self._seq.get(topic)
        # Seen already (a resume or an overlap). A snapshot at or below the
        # last seq means the topic started over: it is taken, unless a
        # backfill just delivered up to it.
        if last is not None and seq <= last and (not snapshot or topic in self._refilled):
            self._refilled.discard(topic)
            return
        self._refilled.discard(topic)
        data = m.get("data")
        if m.get("delta"):
            base = self._latest.get(topic)
            data = apply_merge_patch(base.data if base else None, data)
        self._deliver(Update(topic, seq, m.get("ts", 0), data, snapshot))

    def _deliver(self, u: Update) -> None:
        self._seq[u.topic] = u.seq
        self._latest[u.topic] = u
        for sub in self._subs:
            if sub.wants(u.topic):
                sub.put(u)

    async def _on_partial(self, topics: List[str]) -> None:
        """A resume could not deliver these topics' backlogs: their snapshots
        follow. With `backfill`, the missed updates come from the history
        route instead, when it still reaches back (read before the next frame,
        so order holds); otherwise the snapshot is taken as it is."""
        if self._backfill <= 0:
            return
        for topic in topics:
            last = self._seq.get(topic)
            if last is None:
                continue
            try:
                missed = await missed_updates(
                    self.server, self._token, topic, last, self._backfill, self._open_timeout
                )
            except Exception as e:  # the snapshot still comes: only the fill is missing
                self.last_error = f"backfill of {topic}: {e}"
                continue
            if missed is None:
                continue  # history does not reach back: the snapshot is taken
            for u in missed:
                self._deliver(u)
            self._refilled.add(topic)

    # -- token refresh ------------------------------------------------------

    def _schedule_refresh(self) -> None:
        """With `get_token` and a JWT: a new token a quarter of its remaining
        life before `exp` (at most 30 s before), sent as `refresh`."""
        if self._refresh_task is not None and self._refresh_task is not asyncio.current_task():
            self._refresh_task.cancel()
        self._refresh_task = None
        exp = jwt_expiry(self._token)
        if self._get_token is None or exp is None or self._closed:
            return
        left = exp - time.time()
        delay = max(0.25, left - min(30.0, left / 4))
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_after(delay))

    async def _refresh_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        ws = self._ws
        try:
            token = await self._fresh_token()
        except Exception as e:
            self.last_error = f"get_token failed: {e!r}"
            return
        if ws is None or ws is not self._ws:
            return  # dropped meanwhile: the reconnect gets its own token
        try:
            reply = await self._request({"op": "refresh", "token": token})
        except (TickerdError, ConnectionClosed):
            return
        if reply.get("type") != "ack":
            # The connection closes at exp (4001); the reconnect asks anew.
            self.last_error = f"token refresh refused: {reply.get('code')}: {reply.get('message')}"
            return
        self._token = token
        self.refreshes += 1
        self._schedule_refresh()
