"""The client's ways to the server: the WebSocket URL and its opening (with
the server's refusal in the error), and plain HTTP GETs (history backfill)
with stdlib `urllib` in a thread, so the package needs only `websockets`."""

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

import websockets

from .errors import ConnectError


def base_url(url: str) -> str:
    """The server's HTTP base URL, ending in `/`, from `http(s)://host:port`
    or a `ws(s)://` URL (a trailing `/ws` is dropped)."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"server URL {url!r}: expected http://HOST:PORT (or https://, ws://, wss://)"
        )
    path = parts.path
    if path.endswith("/ws"):
        path = path[: -len("ws")]
    if not path.endswith("/"):
        path += "/"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def ws_url(base: str, token: Optional[str]) -> str:
    """The `/ws` URL under `base`, with `?token=` when there is a token."""
    url = "ws" + base[len("http") :] + "ws"
    if token:
        url += "?" + urllib.parse.urlencode({"token": token})
    return url


async def open_ws(base: str, token: Optional[str], timeout: float) -> Any:
    """Opens the WebSocket; a refusal raises `ConnectError` with the URL (never
    the token), the HTTP status and the server's reason."""
    where = base + "ws"
    try:
        return await asyncio.wait_for(
            websockets.connect(ws_url(base, token), max_size=None, open_timeout=None),
            timeout,
        )
    except asyncio.TimeoutError:
        raise ConnectError(f"{where}: no answer within {timeout:g} s") from None
    except OSError as e:
        raise ConnectError(f"{where}: {e}") from None
    except websockets.exceptions.WebSocketException as e:
        raise ConnectError(f"{where}: {_refusal(e)}") from None


def _refusal(e: Exception) -> str:
    """The status and body of a refused upgrade, across websockets versions."""
    response = getattr(e, "response", None)  # websockets >= 14
    status = getattr(response, "status_code", None) or getattr(e, "status_code", None)
    if status is None:
        return str(e)
    body = getattr(response, "body", b"") or b""
    try:
        reason = json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        reason = body.decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {reason}" if reason else "")


async def get_json(base: str, path: str, token: Optional[str], timeout: float) -> Any:
    """GET `path` under `base` as JSON (the token as a Bearer header), in a
    thread; an error status raises `urllib.error.HTTPError`."""

    def fetch() -> Any:
        req = urllib.request.Request(base + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    return await asyncio.get_running_loop().run_in_executor(None, fetch)
