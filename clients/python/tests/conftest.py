"""The real tickerd the client tests run against: the debug binary
(`$TICKERD_BIN`, else `$CARGO_TARGET_DIR/debug/tickerd`, else
`target/debug/tickerd`; `cargo build --bin tickerd` makes it) started with a
temporary config on a free port of 127.0.0.1, and helpers that wait for
conditions with generous deadlines (never fixed sleeps)."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Deadline of every wait: generous, for a slow and loaded 2-core machine.
DEADLINE = 30.0
#: The secret of the HS256 tokens the tests make (`[auth.jwt]`).
JWT_SECRET = "a-test-secret-of-at-least-thirty-two-bytes"

T = TypeVar("T")


def binary() -> Path:
    """The tickerd binary to test, failing with what to run when it is missing."""
    if os.environ.get("TICKERD_BIN"):
        path = Path(os.environ["TICKERD_BIN"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
        path = target / "debug" / "tickerd"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build --bin tickerd` (or set TICKERD_BIN)")
    return path


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One tickerd process in `dir` with `config` (no `config`: the built-in
    default), listening on `port`; it can be killed and started again on the
    same port."""

    def __init__(self, dir: Path, config: Optional[str], files: Dict[str, str]) -> None:
        self.dir = dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.config = config
        for name, text in files.items():
            (dir / name).write_text(text)
        if config is not None:
            (dir / "config.toml").write_text(config)

    def start(self) -> "Server":
        """Starts the process and waits until it answers /healthz."""
        args = [str(binary()), "--listen", f"127.0.0.1:{self.port}"]
        if self.config is not None:
            args += ["--config", str(self.dir / "config.toml")]
        log = open(self.dir / "tickerd.log", "ab")
        self.proc = subprocess.Popen(args, cwd=self.dir, stdout=log, stderr=log)
        deadline = time.monotonic() + DEADLINE
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"tickerd exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return self
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"tickerd did not listen within {DEADLINE} s: {self.log()}")
                time.sleep(0.05)  # polling the condition, not waiting a fixed time

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(DEADLINE)

    def log(self) -> str:
        """What the server logged."""
        path = self.dir / "tickerd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def publish(self, topic: str, data: Any, token: str = "pt") -> Dict[str, Any]:
        """`POST /api/publish/{topic}` with the publish token."""
        req = urllib.request.Request(
            f"{self.url}/api/publish/{topic}",
            data=json.dumps(data).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return json.loads(r.read())


@pytest.fixture
def server(tmp_path: Path):
    """`server(config, files)` starts a tickerd with that config (and
    `files`, name → text, beside it); all are killed at the end."""
    started: List[Server] = []

    def start(config: Optional[str], files: Optional[Dict[str, str]] = None) -> Server:
        s = Server(tmp_path, config, files or {}).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


async def publish(server: Server, topic: str, data: Any) -> Dict[str, Any]:
    """`server.publish` in a thread, so that the client's tasks keep running."""
    return await asyncio.get_running_loop().run_in_executor(None, server.publish, topic, data)


def hs256(claims: Dict[str, Any], secret: str = JWT_SECRET) -> str:
    """An HS256 JWT of `claims` (what tests/jwt.rs makes with jsonwebtoken)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def within(aw: Awaitable[T], seconds: float = DEADLINE) -> T:
    """`aw`'s result, failing the test when it takes longer than `seconds`."""
    return await asyncio.wait_for(aw, seconds)


async def take(sub: Any, n: int) -> List[Any]:
    """The next `n` updates of `sub` (within the deadline)."""

    async def go() -> List[Any]:
        out = []
        async for u in sub:
            out.append(u)
            if len(out) == n:
                break
        return out

    return await within(go())


async def eventually(cond: Callable[[], bool], what: str) -> None:
    """Waits until `cond()` holds, failing with `what` past the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.02)
