// tickerd.js — the browser client of tickerd and its custom elements.
//
// One <script type="module" src="https://your-tickerd/tickerd.js"></script> in any
// page (any origin) gives live values:
//
//   <ticker-value topic="stocks.AAPL" field="price"></ticker-value>
//   <ticker-tile topic="stocks.AAPL"></ticker-tile>
//   <ticker-table pattern="stocks.*" columns="symbol,price,change_pct"></ticker-table>
//   <ticker-dashboard name="markets"></ticker-dashboard>   (dashboards/markets.toml)
//
// or, from code:
//
//   import { connect } from 'https://your-tickerd/tickerd.js';
//   const client = connect();                       // server = where this file came from
//   const off = client.subscribe('stocks.*', (u) => console.log(u.topic, u.data));
//   client.addEventListener('state', (e) => console.log(e.detail.state));
//
// The server is the one this script was loaded from (import.meta.url); `?token=`
// on the script's URL is passed on. The client reconnects with exponential
// backoff and full jitter, resumes each topic from its last seq (`since` +
// `epoch`), detects dead links with application pings, and conflates: a
// subscriber sees at most one call per topic per animation frame (the latest
// update), so thousands of updates per second cost one DOM pass per frame.
// Options `maxRate` and `delta` ask the server for fewer updates or only the
// changed fields (merged back here: callers always see whole values); where a
// WebSocket cannot be opened (twice in a row while the server answers HTTP), it
// falls back to Server-Sent Events (`/sse`), or uses them from the start with
// `transport: 'sse'`. With `getToken` (a function returning a token, or a
// promise of one) the client asks for a fresh token before every connection
// and, when the token is a JWT, shortly before its `exp`: a WebSocket gets it
// with the `refresh` op (the connection stays open), an SSE stream is reopened
// with it.

import {
  changeOf, feedsByHealth, levelOf, paintTone, timestampMs, tone,
} from './meaning.js';

const SCRIPT_URL = new URL(import.meta.url);

/** The server this script was served by (its directory), e.g. `http://host:8080/`. */
export const SERVER = new URL('.', SCRIPT_URL).href;
/** The `?token=` of this script's URL, if any. */
export const TOKEN = SCRIPT_URL.searchParams.get('token');

// ---------------------------------------------------------------------------
// Topics and patterns (NATS semantics; `$` topics only match by name)

/** True when `pattern` (`*` one segment, `>` one or more at the end) matches `topic`. */
export function matches(pattern, topic) {
  if (pattern === topic) return true;
  const p = pattern.split('.');
  const t = topic.split('.');
  if (t[0].startsWith('$') && (p[0] === '*' || p[0] === '>')) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i === p.length - 1 && t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/** True when every topic `b` matches is also matched by `a`. */
export function covers(a, b) {
  if (a === b) return true;
  const p = a.split('.');
  const q = b.split('.');
  if (q[0].startsWith('$') && (p[0] === '*' || p[0] === '>')) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i === p.length - 1 && q.length > i;
    if (i >= q.length || q[i] === '>') return false;
    if (p[i] !== '*' && p[i] !== q[i]) return false;
  }
  return p.length === q.length;
}

/** The `exp` claim (seconds) of a JWT, read without verifying; null if none. */
export function jwtExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

const isPattern = (s) => s.split('.').some((seg) => seg === '*' || seg === '>');

// ---------------------------------------------------------------------------
// The client

const frame = typeof requestAnimationFrame === 'function'
  ? (fn) => requestAnimationFrame(fn)
  : (fn) => setTimeout(fn, 16);

const MAX_SINCE_BYTES = 32 * 1024; // stay well under the server's max_frame_bytes
const SSE_SINCE_BYTES = 6 * 1024; // `/sse?since=` rides in the URL: under max_header_bytes

/**
 * A connection to one tickerd server. Events (EventTarget):
 * - `state`: `detail = {state, attempt, retryAt, error}` where state is
 *   `connecting`, `live`, `reconnecting` (retryAt: ms timestamp of the next try)
 *   or `offline` (the browser is offline, or `close()` was called).
 * - `hello`: `detail` = the server's hello (epoch, server, heartbeat_ms).
 * - `servererror`: `detail` = an `{"type":"error"}` reply.
 * - `tokenrefresh`: `detail = {ok, error}` after each token refresh (`getToken`).
 * - `resync`: `detail = {topics}`: a resume could not deliver these topics'
 *   backlogs whole (the ack's `resume.partial`); their snapshots follow and
 *   their history was dropped (and, with `backfill`, is fetched anew).
 */
export class TickerClient extends EventTarget {
  /**
   * @param {object} [opts]
   * @param {string} [opts.server] base URL of the server (default: where tickerd.js came from)
   * @param {string} [opts.token] token for `?token=` (default: the script URL's)
   * @param {number} [opts.keep=120] recent updates kept per topic (see `history()`)
   * @param {number} [opts.backfill=0] on first connect, ask the server for up to this
   *   many retained updates per topic (fills `history()` at once)
   * @param {number} [opts.pingInterval=10000] idle time before an application ping
   * @param {number} [opts.pingTimeout=5000] no frame this long after a ping = dead link
   * @param {number} [opts.backoffBase=500] first reconnect window (ms)
   * @param {number} [opts.backoffCap=30000] largest reconnect window (ms)
   * @param {number} [opts.maxRate] at most this many updates per second per topic
   *   (the server merges the rest; the latest value always arrives)
   * @param {boolean} [opts.delta=false] ask for field-level deltas (merged here)
   * @param {string} [opts.transport='auto'] 'websocket', 'sse', or 'auto' (a
   *   WebSocket, falling back to `/sse` after two that never opened)
   * @param {() => (string|Promise<string>)} [opts.getToken] called for a fresh
   *   token before each connection and, for a JWT, before its `exp` (a quarter
   *   of its remaining life before, at most 30 s): sent as `refresh` on a
   *   WebSocket, or the SSE stream is reopened with it
   */
  constructor(opts = {}) {
    super();
    const base = new URL(opts.server ?? SERVER, SCRIPT_URL);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.server = base.href;
    this.token = opts.token !== undefined ? opts.token : TOKEN;
    this.keep = opts.keep ?? 120;
    this.backfill = opts.backfill ?? 0;
    this.pingInterval = opts.pingInterval ?? 10000;
    this.pingTimeout = opts.pingTimeout ?? 5000;
    this.backoffBase = opts.backoffBase ?? 500;
    this.backoffCap = opts.backoffCap ?? 30000;
    this.maxRate = opts.maxRate;
    this.delta = opts.delta ?? false;
    this.transport = opts.transport ?? 'auto';
    this.getToken = opts.getToken ?? null;

    this.state = 'offline';
    this.epoch = null;
    this.attempt = 0;
    this.retryAt = null;
    this.lastError = null;

    this._ws = null;
    this._es = null; // the EventSource, when on Server-Sent Events
    this._wsFailedOpens = 0; // WebSockets in a row that closed before they opened
    this._closed = true;
    this._subs = new Map(); // pattern -> Set<{cb, every}>
    this._every = []; // [pattern, entry] of the `every` subscribers (few; checked per update)
    this._server = new Set(); // patterns subscribed on the current socket
    this._seq = new Map(); // topic -> last seq seen (this epoch)
    this._latest = new Map(); // topic -> latest update
    this._history = new Map(); // topic -> recent updates, oldest first
    this._dirty = new Set(); // topics with an update not yet delivered
    this._fresh = []; // [subscriber, pattern] that still need cached values
    this._matchCache = new Map(); // topic -> [entries] (conflated subscribers)
    this._flushQueued = false;
    this._syncQueued = false;
    this._pending = new Map(); // request id -> resolve
    this._nextId = 1;
    this._timers = { retry: 0, tick: 0, refresh: 0 };
    this._connectGen = 0; // bumped by each connect and close(): a late getToken is dropped
    this._tokenPending = false; // a connect waits for getToken
    this._lastRx = 0;
    this._pingSentAt = 0;
    this._openedAt = 0;
    this._backfilled = false;

    if (typeof window !== 'undefined') {
      window.addEventListener('online', () => { if (!this._closed) this.retryNow(); });
      window.addEventListener('offline', () => {
        if (!this._closed && this.state !== 'live') this._setState('offline');
      });
    }
  }

  /** The WebSocket URL, with the token. */
  get wsUrl() {
    const u = new URL('ws', this.server);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) u.searchParams.set('token', this.token);
    return u.href;
  }

  /** The `/sse` URL for `patterns`, resuming from the seqs seen. */
  sseUrl(patterns) {
    const u = new URL('sse', this.server);
    u.searchParams.set('topics', patterns.join(','));
    if (this.token) u.searchParams.set('token', this.token);
    if (this.maxRate !== undefined) u.searchParams.set('max_rate', String(this.maxRate));
    if (this.delta) u.searchParams.set('delta', 'true');
    if (this.epoch && this._seq.size) {
      const since = [];
      let bytes = 0;
      for (const [topic, seq] of this._seq) {
        if (!patterns.some((p) => matches(p, topic))) continue;
        bytes += topic.length + 16;
        if (bytes > SSE_SINCE_BYTES) break; // the rest get snapshots
        since.push(`${topic}:${seq}`);
      }
      if (since.length) {
        u.searchParams.set('since', since.join(','));
        u.searchParams.set('epoch', this.epoch);
      }
    }
    return u.href;
  }

  /** Which transport the next connection uses. */
  get usingSse() {
    if (typeof EventSource !== 'function') return false;
    return this.transport === 'sse' || (this.transport === 'auto' && this._wsFailedOpens >= 2);
  }

  /** An HTTP URL on the server (`api/topics`), with the token. */
  url(path) {
    const u = new URL(path, this.server);
    if (this.token) u.searchParams.set('token', this.token);
    return u.href;
  }

  /** Opens the connection (subscribing does it too). */
  open() {
    if (!this._closed) return this;
    this._closed = false;
    this._connect();
    return this;
  }

  /** Closes for good (until `open()`); state becomes `offline`. */
  close() {
    this._closed = true;
    this._connectGen++;
    this._tokenPending = false;
    clearTimeout(this._timers.retry);
    clearTimeout(this._timers.refresh);
    clearInterval(this._timers.tick);
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    this._closeSse();
    this._server.clear();
    this._setState('offline');
  }

  /** Skips the backoff wait and reconnects now. */
  retryNow() {
    if (this._closed || this.state === 'live' || this.state === 'connecting') return;
    clearTimeout(this._timers.retry);
    this._connect();
  }

  /**
   * Calls `cb(update)` for updates of topics matching `pattern`; returns a
   * function that unsubscribes. The update is `{topic, seq, ts, data, snapshot}`.
   * By default calls are conflated to one per topic per animation frame (the
   * latest); `{every: true}` calls for every update, synchronously. Values
   * already known are delivered at once.
   */
  subscribe(pattern, cb, { every = false } = {}) {
    const entry = { cb, every };
    let set = this._subs.get(pattern);
    if (!set) this._subs.set(pattern, (set = new Set()));
    set.add(entry);
    if (every) this._every.push([pattern, entry]);
    this._matchCache.clear();
    this._fresh.push([entry, pattern]);
    this._queueFlush();
    this._queueSync();
    this.open();
    return () => {
      const s = this._subs.get(pattern);
      if (!s || !s.delete(entry)) return;
      if (s.size === 0) this._subs.delete(pattern);
      this._every = this._every.filter(([, e]) => e !== entry);
      this._matchCache.clear();
      this._queueSync();
    };
  }

  /** The latest update of `topic`, if one arrived. */
  latest(topic) {
    return this._latest.get(topic);
  }

  /** Recent updates of `topic` (oldest first, at most `keep`). */
  history(topic) {
    return this._history.get(topic) ?? [];
  }

  /** Every topic seen so far. */
  knownTopics() {
    return [...this._latest.keys()];
  }

  /** Asks the server for its topic list (`{"op":"topics"}`). */
  topics() {
    return this._request({ op: 'topics' }).then((m) => m?.topics ?? null);
  }

  // -- connection ----------------------------------------------------------

  _setState(state, extra = {}) {
    this.state = state;
    const detail = {
      state,
      attempt: this.attempt,
      retryAt: state === 'reconnecting' ? this.retryAt : null,
      error: this.lastError,
      ...extra,
    };
    this.dispatchEvent(new CustomEvent('state', { detail }));
  }

  _connect() {
    if (this._closed) return;
    this._setState('connecting');
    if (!this.getToken) return this._connectNow();
    // A fresh token first; a connect or close() meanwhile wins. Until it
    // comes no SSE stream opens (it would open with the old token).
    const gen = ++this._connectGen;
    this._tokenPending = true;
    Promise.resolve()
      .then(() => this.getToken())
      .then((token) => {
        if (gen !== this._connectGen || this._closed) return;
        this._tokenPending = false;
        this.token = token;
        this._connectNow();
      }, (e) => {
        if (gen !== this._connectGen || this._closed) return;
        this._tokenPending = false;
        this.lastError = `getToken failed: ${e?.message ?? e}`;
        this._scheduleRetry();
      });
  }

  _connectNow() {
    if (this.usingSse) {
      this._server.clear();
      this._syncSse();
      return;
    }
    let ws;
    try {
      ws = new WebSocket(this.wsUrl);
    } catch (e) {
      this.lastError = String(e?.message ?? e);
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    this._server.clear();
    this._openedAt = Date.now();
    let opened = false;
    ws.onopen = () => { opened = true; this._wsFailedOpens = 0; };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      if (!opened) this._wsNeverOpened();
      this.lastError = ev.code === 1000 || ev.code === 1001
        ? `server closed (${ev.code})`
        : ev.code === 4001 ? 'token expired (4001)' : `connection lost (${ev.code})`;
      // An expired token is no reason to wait: reconnect soon with a new one.
      if (ev.code === 4001 && this.getToken) this.attempt = 0;
      this._dropped();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /**
   * A WebSocket closed before it opened. It counts towards the SSE fallback
   * only when the server answers HTTP meanwhile (a proxy that strips upgrades),
   * not when it is down (a restart must not switch the client for good).
   */
  _wsNeverOpened() {
    if (this.transport !== 'auto' || typeof fetch !== 'function') return;
    // no-cors: any answer, even opaque (another origin), means reachable.
    fetch(new URL('healthz', this.server).href, { mode: 'no-cors', cache: 'no-store' })
      .then(() => { this._wsFailedOpens++; }, () => { /* down: not counted */ });
  }

  /** Closes a link found dead; onclose does not come in time on a dead link. */
  _kill(reason) {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
    try { ws.close(4000, reason); } catch { /* ignore */ }
    this.lastError = reason;
    this._dropped();
  }

  _dropped() {
    clearInterval(this._timers.tick);
    clearTimeout(this._timers.refresh);
    this._server.clear();
    for (const resolve of this._pending.values()) resolve(null);
    this._pending.clear();
    // A link that lived a while resets the backoff; one that dies at once does not.
    if (this._openedAt && Date.now() - this._openedAt > 5000) this.attempt = 0;
    this._scheduleRetry();
  }

  /** Full jitter: a delay drawn uniformly from [0, min(cap, base * 2^attempt)]. */
  _scheduleRetry() {
    if (this._closed) return;
    const window = Math.min(this.backoffCap, this.backoffBase * 2 ** Math.min(this.attempt, 16));
    const delay = Math.random() * window;
    this.attempt++;
    this.retryAt = Date.now() + delay;
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => this._connect(), delay);
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    this._setState(offline ? 'offline' : 'reconnecting');
  }

  _tick() {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return;
    const now = Date.now();
    if (this._pingSentAt && this._lastRx < this._pingSentAt) {
      if (now - this._pingSentAt > this.pingTimeout) this._kill('no answer to ping');
      return;
    }
    if (now - this._lastRx >= this.pingInterval) {
      this._pingSentAt = now;
      this._send({ op: 'ping' });
    }
  }

  _send(msg) {
    if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify(msg));
  }

  _request(msg) {
    return new Promise((resolve) => {
      const id = `r${this._nextId++}`;
      this._pending.set(id, resolve);
      this._send({ ...msg, id });
      if (!this._ws) { this._pending.delete(id); resolve(null); }
    });
  }

  _onMessage(text) {
    this._lastRx = Date.now();
    let m;
    try { m = JSON.parse(text); } catch { return; }
    switch (m.type) {
      case 'update': return this._onUpdate(m);
      case 'gone': return this._onGone(m);
      case 'hello': return this._onHello(m);
      case 'ack':
        if (m.resume?.partial?.length) this._onPartial(m.resume.partial);
        break;
      case 'error':
        this.dispatchEvent(new CustomEvent('servererror', { detail: m }));
        break;
      default:
        break;
    }
    if (m.id !== undefined && this._pending.has(m.id)) {
      const resolve = this._pending.get(m.id);
      this._pending.delete(m.id);
      resolve(m);
    }
  }

  /**
   * A resume's ack named topics whose backlog does not arrive whole: their
   * snapshots follow, so what is held of their history has a gap. It is
   * dropped and, with `backfill`, fetched anew from what the server retains;
   * a `resync` event names the topics.
   */
  _onPartial(topics) {
    for (const t of topics) this._history.delete(t);
    if (this.backfill > 0 && this.keep > 0) for (const t of topics) this._refill(t);
    this.dispatchEvent(new CustomEvent('resync', { detail: { topics } }));
  }

  /** Puts the server's retained updates of `topic` before those held. */
  async _refill(topic) {
    const limit = Math.min(this.backfill, this.keep);
    let list;
    try {
      const r = await fetch(this.url(`api/topics/${encodeURIComponent(topic)}/history?limit=${limit}`), { cache: 'no-store' });
      if (!r.ok) return;
      list = await r.json();
    } catch {
      return; // the live updates still come; only the backfill is missing
    }
    const h = this._history.get(topic) ?? [];
    const first = h.length ? h[0].seq : Infinity;
    const older = list.filter((u) => u.seq < first).map((u) => ({ ...u, type: 'update', topic }));
    const merged = [...older, ...h];
    if (merged.length > this.keep) merged.splice(0, merged.length - this.keep);
    this._history.set(topic, merged);
    if (!this._latest.has(topic)) return;
    this._dirty.add(topic); // its subscribers redraw with the history filled
    this._queueFlush();
  }

  async _onHello(hello) {
    const ws = this._ws;
    const sameEpoch = this.epoch !== null && hello.epoch === this.epoch;
    if (!sameEpoch) this._seq.clear(); // seqs of another server process mean nothing
    this.epoch = hello.epoch;
    this.hello = hello;
    this.lastError = null;
    this._pingSentAt = 0;
    clearInterval(this._timers.tick);
    this._timers.tick = setInterval(() => this._tick(), 1000);
    this.dispatchEvent(new CustomEvent('hello', { detail: hello }));
    let since = this._seq;
    if (!this._backfilled && this.backfill > 0) {
      this._backfilled = true;
      const topics = await this.topics();
      if (this._ws !== ws) return; // dropped meanwhile; the next hello starts over
      since = new Map(this._seq);
      for (const t of topics ?? []) {
        if (!since.has(t.topic)) since.set(t.topic, Math.max(0, t.seq - this.backfill));
      }
    }
    this._sync(since);
    this._setState('live');
    this._scheduleRefresh();
  }

  /**
   * With `getToken` and a JWT: a new token a quarter of the token's remaining
   * life before its `exp` (at most 30 s before), sent as `refresh` on the
   * WebSocket, or the SSE stream reopened with it. A refused refresh leaves
   * the connection to close at `exp` (4001); the reconnect gets a new token.
   */
  _scheduleRefresh() {
    clearTimeout(this._timers.refresh);
    if (!this.getToken || this._closed) return;
    const exp = jwtExpiry(this.token);
    if (exp === null) return;
    const left = exp * 1000 - Date.now();
    const delay = Math.max(250, left - Math.min(30_000, left / 4));
    this._timers.refresh = setTimeout(() => this._refresh(), delay);
  }

  async _refresh() {
    const ws = this._ws;
    const es = this._es;
    if (!ws && !es) return;
    let token;
    try {
      token = await this.getToken();
    } catch (e) {
      this._refreshed(false, `getToken failed: ${e?.message ?? e}`);
      return;
    }
    if (this._closed) return;
    if (ws) {
      if (this._ws !== ws) return; // dropped meanwhile; the reconnect gets its own
      const reply = await this._request({ op: 'refresh', token });
      if (this._ws !== ws) return;
      if (reply?.type !== 'ack') {
        this._refreshed(false, reply ? `${reply.code}: ${reply.message}` : 'no answer');
        return;
      }
      this.token = token;
    } else {
      if (this._es !== es) return;
      this.token = token;
      this._closeSse(); // reopened with the new token, resuming from the seqs seen
      this._server.clear();
      this._syncSse();
    }
    this._refreshed(true, null);
    this._scheduleRefresh();
  }

  _refreshed(ok, error) {
    this.dispatchEvent(new CustomEvent('tokenrefresh', { detail: { ok, error } }));
  }

  /**
   * On Server-Sent Events one stream is one subscription: when the local
   * patterns change, the stream is opened anew for them, resuming from the
   * seqs seen. No patterns: no stream until there are.
   */
  _syncSse() {
    const desired = this._desired();
    const same = desired.size === this._server.size && [...desired].every((p) => this._server.has(p));
    if (same && this._es) return;
    this._closeSse();
    this._server.clear();
    if (!desired.size || this._closed) return;
    const patterns = [...desired];
    const es = new EventSource(this.sseUrl(patterns));
    this._es = es;
    this._openedAt = Date.now();
    patterns.forEach((p) => this._server.add(p));
    this._scheduleRefresh();
    es.onmessage = (ev) => this._onMessage(ev.data);
    es.onerror = () => {
      // EventSource would retry on its own; the client's backoff and resume do it.
      if (this._es !== es) return;
      this._closeSse();
      this.lastError = 'event stream lost';
      this._dropped();
    };
  }

  _closeSse() {
    const es = this._es;
    if (!es) return;
    this._es = null;
    es.onmessage = es.onerror = null;
    try { es.close(); } catch { /* already closed */ }
  }

  /** Brings the server's subscriptions in line with the local ones. */
  _sync(since) {
    this._syncQueued = false;
    if (this._es || (this.usingSse && !this._ws)) {
      if (!this._closed && !this._tokenPending) this._syncSse();
      return;
    }
    if (!this._ws || this._ws.readyState !== 1 || !this.epoch) return;
    const desired = this._desired();
    const add = [...desired].filter((p) => !this._server.has(p));
    const remove = [...this._server].filter((p) => !desired.has(p));
    if (add.length) {
      const msg = { op: 'subscribe', topics: add, id: `s${this._nextId++}` };
      if (this.maxRate !== undefined) msg.max_rate = this.maxRate;
      if (this.delta) msg.delta = true;
      if (since && since.size) {
        const obj = {};
        let bytes = 0;
        for (const [topic, seq] of since) {
          if (!add.some((p) => matches(p, topic))) continue;
          bytes += topic.length + 16;
          if (bytes > MAX_SINCE_BYTES) break; // the rest get snapshots
          obj[topic] = seq;
        }
        msg.since = obj;
        msg.epoch = this.epoch;
      }
      this._send(msg);
      add.forEach((p) => this._server.add(p));
    }
    if (remove.length) {
      this._send({ op: 'unsubscribe', topics: remove });
      remove.forEach((p) => this._server.delete(p));
    }
  }

  _queueSync() {
    if (this._syncQueued) return;
    this._syncQueued = true;
    queueMicrotask(() => this._sync(this._seq));
  }

  /** The local patterns, less those another local pattern covers. */
  _desired() {
    const all = [...this._subs.keys()];
    return new Set(all.filter((p) => !all.some((q) => q !== p && covers(q, p))));
  }

  // -- updates -------------------------------------------------------------

  _onUpdate(m) {
    const last = this._seq.get(m.topic);
    // Seen (overlap or resume). A snapshot at or below the last seq means the
    // topic started over (deleted and published again, or a crash lost the
    // server's last unsynced interval): take it.
    if (last !== undefined && m.seq <= last && !m.snapshot) return;
    if (m.delta) {
      // Only the changed fields: merged into the value held (never mutated:
      // history keeps the earlier updates).
      const base = this._latest.get(m.topic);
      const { delta, ...whole } = m;
      whole.data = applyMergePatch(base ? base.data : null, m.data);
      m = whole;
    }
    this._seq.set(m.topic, m.seq);
    this._latest.set(m.topic, m);
    if (this.keep > 0) {
      let h = this._history.get(m.topic);
      // A topic first seen by its snapshot, after the first connect's backfill
      // (a pattern subscribed later, e.g. by a dashboard panel): its retained
      // history is fetched too, so that it is drawn full from the start.
      if (!h && m.snapshot && m.seq > 1 && this.backfill > 0 && this._backfilled) this._refill(m.topic);
      if (!h) this._history.set(m.topic, (h = []));
      if (h.length && h[h.length - 1].seq >= m.seq) h.length = 0; // new epoch
      h.push(m);
      if (h.length > this.keep) h.splice(0, h.length - this.keep);
    }
    for (const [pattern, e] of this._every) if (matches(pattern, m.topic)) call(e.cb, m);
    this._dirty.add(m.topic);
    this._queueFlush();
  }

  /**
   * `{"type":"gone","topic":...}`: the topic was deleted on the server. Its
   * resume seq is dropped (if it is published again it starts over at seq 1),
   * so are its latest value and history; a `gone` event tells listeners.
   */
  _onGone(m) {
    this._seq.delete(m.topic);
    this._latest.delete(m.topic);
    this._history.delete(m.topic);
    this._dirty.delete(m.topic);
    this.dispatchEvent(new CustomEvent('gone', { detail: { topic: m.topic } }));
  }

  _queueFlush() {
    if (this._flushQueued) return;
    this._flushQueued = true;
    frame(() => this._flush());
  }

  _subscribersOf(topic) {
    let list = this._matchCache.get(topic);
    if (!list) {
      list = [];
      for (const [pattern, set] of this._subs) {
        if (matches(pattern, topic)) for (const e of set) if (!e.every) list.push(e);
      }
      this._matchCache.set(topic, list);
    }
    return list;
  }

  _flush() {
    this._flushQueued = false;
    const fresh = this._fresh;
    this._fresh = [];
    for (const [entry, pattern] of fresh) {
      const topics = isPattern(pattern) ? this._latest.keys() : [pattern];
      for (const t of topics) {
        const u = this._latest.get(t);
        if (u && matches(pattern, t) && !this._dirty.has(t)) call(entry.cb, u);
      }
    }
    const dirty = this._dirty;
    this._dirty = new Set();
    for (const topic of dirty) {
      const u = this._latest.get(topic);
      for (const e of this._subscribersOf(topic)) call(e.cb, u);
    }
  }
}

/**
 * Applies a JSON merge patch (RFC 7386) to `target` and returns the result;
 * `target` is not changed (what the patch leaves alone is shared).
 */
export function applyMergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target !== null && typeof target === 'object' && !Array.isArray(target)
    ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

function call(cb, arg) {
  try {
    cb(arg);
  } catch (e) {
    if (typeof reportError === 'function') reportError(e);
    else setTimeout(() => { throw e; });
  }
}

const clients = new Map();
let defaultClient = null;

/**
 * The shared, opened client. Without `opts.server` it is the default client
 * (the server tickerd.js came from), which the custom elements use too; the
 * options of the first call create it (a page that wants a token, `getToken`
 * or backfill calls `connect({...})` before adding elements). With `opts.server` it is
 * that server's shared client.
 */
export function connect(opts = {}) {
  if (opts.server === undefined) {
    defaultClient ??= new TickerClient(opts);
    return defaultClient.open();
  }
  const server = new URL(opts.server, SCRIPT_URL).href;
  const token = opts.token !== undefined ? opts.token : TOKEN;
  const key = `${server} ${token ?? ''}`;
  let c = clients.get(key);
  if (!c) clients.set(key, (c = new TickerClient({ ...opts, server, token })));
  return c.open();
}

// ---------------------------------------------------------------------------
// Formatting

/** The value at `field` of `data`: a dot path (`a.b`) or JSON Pointer (`/a/b`). */
export function pick(data, field) {
  if (field === undefined || field === null || field === '') return data;
  const parts = field.startsWith('/')
    ? field.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    : field.split('.');
  let v = data;
  for (const p of parts) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[p];
  }
  return v;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536` -> `1.5 KiB`. */
export function formatBytes(n) {
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < BYTE_UNITS.length - 1) { v /= 1024; i++; }
  const digits = i === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${n < 0 ? '-' : ''}${v.toFixed(digits)} ${BYTE_UNITS[i]}`;
}

/** Seconds -> `3d 4h`, `2h 5m`, `4m 10s`, `12s`. */
export function formatDuration(s) {
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** A timestamp (ms) -> `14:03:07` (`14:03:07.123` with `millis`), with the date when not today. */
export function formatTime(ms, millis = false) {
  const d = new Date(ms);
  const now = new Date();
  let time = d.toLocaleTimeString(undefined, { hour12: false });
  if (millis) time += `.${String(d.getMilliseconds()).padStart(3, '0')}`;
  return d.toDateString() === now.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** A timestamp (ms) -> `5s ago`, `3m ago`. */
export function formatAgo(ms, now = Date.now()) {
  const s = Math.max(0, (now - ms) / 1000);
  return s < 1 ? 'just now' : `${formatDuration(s)} ago`;
}

// One Intl.NumberFormat per option set: `toLocaleString` with options builds a
// new one per call, the largest cost of a page of many live numbers.
const numberFormats = new Map();
function numberFormat(key, opts) {
  let f = numberFormats.get(key);
  if (!f) numberFormats.set(key, (f = new Intl.NumberFormat(undefined, opts)));
  return f;
}

function formatNumber(n, digits) {
  if (!Number.isFinite(n)) return String(n);
  if (digits === undefined) {
    if (Number.isInteger(n)) return numberFormat('int', {}).format(n);
    // fractions: two decimals from 1 up (prices), three significant digits below
    if (Math.abs(n) < 1) return numberFormat('sig3', { maximumSignificantDigits: 3 }).format(n);
    digits = 2;
  }
  const text = numberFormat(digits, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
  return /^-0([.,]0*)?$/.test(text) ? text.slice(1) : text; // no "-0.00"
}

/** The format `auto` picks for a field name and value. */
export function guessFormat(key, value) {
  if (typeof value !== 'number') return 'auto';
  const k = (key ?? '').toLowerCase();
  if (/(^|_)bytes$|_bytes_|^bytes/.test(k)) return 'bytes';
  if (/(^|_)(price|change|open|close|high|low|last|bid|ask)$/.test(k)) return 'number:2';
  if (/(^|_)(pct|percent)$|_pct_/.test(k)) return 'percent';
  if (/(^|_)(uptime|duration)(_s)?$|_secs?$|(^|_)s$/.test(k)) return 'duration';
  if (timestampMs(k, value) !== undefined) return 'time';
  return 'auto';
}

/**
 * Formats a value. `fmt`: `auto` (by key and type), `number[:digits]`,
 * `percent[:digits]` (the value is in percent), `ratio[:digits]` (0..1),
 * `signed[:digits]` (leading +), `bytes`, `duration` (seconds), `time` (ms;
 * a number below 1e11 is Unix seconds),
 * `ago` (ms), `currency:USD`, `compact`, `json`, `text`.
 */
export function format(value, fmt = 'auto', key) {
  if (value === undefined || value === null) return '—';
  let [kind, arg] = String(fmt || 'auto').split(':');
  if (kind === 'auto') [kind, arg] = guessFormat(key, value).split(':');
  const digits = arg !== undefined && arg !== '' && !Number.isNaN(+arg) ? +arg : undefined;
  if (typeof value === 'number') {
    switch (kind) {
      case 'number': return formatNumber(value, digits);
      case 'percent': return `${formatNumber(value, digits ?? 2)}%`;
      case 'ratio': return `${formatNumber(value * 100, digits ?? 1)}%`;
      case 'signed': return `${value > 0 ? '+' : ''}${formatNumber(value, digits ?? 2)}`;
      case 'bytes': return formatBytes(value);
      case 'duration': return formatDuration(value);
      case 'time': return formatTime(value < 1e11 ? value * 1000 : value);
      case 'ago': return formatAgo(value);
      case 'currency':
        return value.toLocaleString(undefined, { style: 'currency', currency: arg || 'USD' });
      case 'compact':
        return value.toLocaleString(undefined, { notation: 'compact', maximumFractionDigits: 1 });
      case 'json': return JSON.stringify(value);
      default: return formatNumber(value);
    }
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return JSON.stringify(value);
}

/**
 * Rows for display: `[label, text, key]`, with `X_used*` and `X_total*` merged
 * into one `X: used / total (pct)` row.
 */
export function displayRows(rows) {
  const byKey = new Map(rows);
  const out = [];
  for (const [k, v] of rows) {
    const used = /^(.*)_used(_\w+)?$/.exec(k);
    const totalKey = used ? `${used[1]}_total${used[2] ?? ''}` : null;
    if (/^(.*)_total(_\w+)?$/.test(k) && byKey.has(k.replace('_total', '_used'))) continue;
    if (totalKey && typeof v === 'number' && typeof byKey.get(totalKey) === 'number') {
      const total = byKey.get(totalKey);
      const pct = total > 0 ? ` (${Math.round((v / total) * 100)}%)` : '';
      out.push([used[1], `${format(v, 'auto', k)} / ${format(total, 'auto', totalKey)}${pct}`, k]);
      continue;
    }
    out.push([label(k), format(v, 'auto', k), k]);
  }
  return out;
}

/** `mem_used_bytes` -> `mem used`. */
export function label(key) {
  return String(key)
    .replace(/_(bytes|pct|percent|s|ms)$/, '')
    .replace(/[_-]+/g, ' ');
}

const PRIMARY = ['price', 'value', 'last', 'close', 'rate', 'count'];

/**
 * How to show an update's data: `{primary, key, change, changePct, rows}` —
 * the headline number (price, value, the number itself, or the first numeric
 * field), its change when the data carries one, and the other fields as rows.
 */
export function describe(data, field) {
  if (field) {
    const v = pick(data, field);
    return { primary: v, key: field.split(/[./]/).pop(), rows: [] };
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { primary: Array.isArray(data) ? JSON.stringify(data) : data, key: '', rows: [] };
  }
  const keys = Object.keys(data);
  const key = PRIMARY.find((k) => typeof data[k] === 'number');
  if (key) {
    const skip = new Set([key, 'change', 'change_pct', 'symbol', 'name']);
    return {
      primary: data[key],
      key,
      change: typeof data.change === 'number' ? data.change : undefined,
      changePct: typeof data.change_pct === 'number' ? data.change_pct : undefined,
      rows: keys.filter((k) => !skip.has(k)).map((k) => [k, data[k]]),
    };
  }
  // No headline: every field is a row; the first numeric one that is not a
  // timestamp is charted.
  const chartKey = keys.find((k) => typeof data[k] === 'number' && timestampMs(k, data[k]) === undefined);
  return { primary: undefined, key: chartKey, rows: keys.map((k) => [k, data[k]]) };
}

/** The number charted for an update (see `describe`), or undefined (also for a timestamp). */
export function chartValue(data, field) {
  const d = describe(data, field);
  const v = d.primary !== undefined ? d.primary : d.key !== undefined ? pick(data, d.key) : undefined;
  return typeof v === 'number' && Number.isFinite(v) && timestampMs(d.key, v) === undefined ? v : undefined;
}

const SVG = 'http://www.w3.org/2000/svg';

/**
 * Draws `values` into `svg` as a line with a soft area below (viewBox 100 x 30,
 * stretched to the element's size).
 */
export function sparkline(svg, values) {
  if (!svg.firstChild) {
    svg.setAttribute('viewBox', '0 0 100 30');
    svg.setAttribute('preserveAspectRatio', 'none');
    const area = document.createElementNS(SVG, 'path');
    area.setAttribute('class', 'area');
    area.setAttribute('fill', 'currentColor');
    area.setAttribute('fill-opacity', '0.12');
    area.setAttribute('stroke', 'none');
    const line = document.createElementNS(SVG, 'path');
    line.setAttribute('class', 'line');
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', 'currentColor');
    line.setAttribute('stroke-width', '1.5');
    line.setAttribute('stroke-linejoin', 'round');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(area, line);
  }
  const [area, line] = svg.children;
  if (values.length < 2) {
    area.setAttribute('d', '');
    line.setAttribute('d', '');
    return;
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) { if (v < min) min = v; if (v > max) max = v; }
  const span = max - min || Math.abs(max) || 1;
  const pad = max === min ? 0.5 : 0;
  const step = 100 / (values.length - 1);
  let d = '';
  for (let i = 0; i < values.length; i++) {
    const y = 28 - ((values[i] - min) / span + pad) * 26;
    d += `${i ? 'L' : 'M'}${(i * step).toFixed(2)} ${y.toFixed(2)}`;
  }
  line.setAttribute('d', d);
  area.setAttribute('d', `${d}L100 30L0 30Z`);
}

// ---------------------------------------------------------------------------
// Custom elements

const UP = '#16a34a';
const DOWN = '#dc2626';

const flashing = new Set();
const calm = typeof matchMedia === 'function' ? matchMedia('(prefers-reduced-motion: reduce)') : null;
let flashTimer = 0;

/**
 * Briefly and faintly tints `el`'s background when its value moved (`dir` not
 * 0), for about 0.3 s. The tint is neutral, not green or red: a value's colour
 * is its meaning (its sign or threshold level, meaning.js's `tone`), and a
 * red tick on a green change would contradict it. A tint set and later
 * cleared by one shared timer, not an animation: an animated background
 * repaints its element on every frame, and hundreds of values flashing at
 * once then take the whole frame budget (bench/browser.mjs: 5 fps against 46
 * for 300 values at 3,000 updates/s). With `prefers-reduced-motion: reduce`
 * there is no flash at all.
 */
export function flash(el, dir) {
  if (!dir || !el.style || calm?.matches) return;
  el.style.backgroundColor = 'color-mix(in srgb, currentColor 9%, transparent)';
  el._flashAt = Date.now();
  flashing.add(el);
  flashTimer ||= setInterval(() => {
    const old = Date.now() - 250;
    for (const e of flashing) {
      if (e._flashAt < old) { e.style.backgroundColor = ''; flashing.delete(e); }
    }
    if (!flashing.size) { clearInterval(flashTimer); flashTimer = 0; }
  }, 100);
}

// What each `data-tone` (meaning.js's `tone`) is painted in, for every element.
const TONE_CSS = `
[data-tone="up"], [data-tone="ok"] { color: var(--tk-up, ${UP}); }
[data-tone="down"], [data-tone="crit"] { color: var(--tk-down, ${DOWN}); }
[data-tone="warn"] { color: var(--tk-warn, #b45309); }
[data-tone="info"] { color: var(--tk-accent, #2563eb); }
`;
const arrow = (n) => (n > 0 ? '▲' : n < 0 ? '▼' : '');

/**
 * A change of meaning.js's `changeOf` as tiles and tapes write it: `▲ +0.64
 * (+0.31%)`, with `over 2m 10s` when it is the move over the points held
 * rather than the value's own `change`; '' for none. `of` is the value it is
 * a change of (two decimals from 1 up, as prices).
 */
function formatChange(chg, of) {
  if (!chg) return '';
  const pct = chg.pct !== undefined ? ` (${chg.pct > 0 ? '+' : ''}${formatNumber(chg.pct, 2)}%)` : '';
  const digits = Math.abs(of ?? 1) >= 1 ? 2 : undefined;
  const over = chg.over === null ? '' : ` over ${formatDuration(chg.over / 1000)}`;
  return `${arrow(chg.change)} ${chg.change > 0 ? '+' : ''}${formatNumber(chg.change, digits)}${pct}${over}`;
}

/** Where an element connects: its `server` and `token` attributes, or the defaults. */
function clientFor(el) {
  const server = el.getAttribute('server');
  const token = el.getAttribute('token');
  if (server === null && token === null) return connect();
  return connect({ server: server ?? SERVER, token: token ?? undefined });
}

// Elements scrolled out of view skip their DOM work until they come back.
const visibility = typeof IntersectionObserver === 'function'
  ? new IntersectionObserver((entries) => {
    for (const e of entries) e.target._setVisible?.(e.isIntersecting);
  }, { rootMargin: '200px' })
  : null;

const Base = typeof HTMLElement === 'function' ? HTMLElement : class {};

class LiveElement extends Base {
  static get observedAttributes() { return ['topic', 'pattern', 'field', 'format', 'server', 'token', 'columns']; }

  connectedCallback() {
    this._connected = true;
    this._visible = true;
    visibility?.observe(this);
    this._resubscribe();
  }

  disconnectedCallback() {
    this._connected = false;
    visibility?.unobserve(this);
    this._off?.();
    this._off = null;
  }

  /** A topic this element shows was deleted: mark it `gone` (CSS can style it). */
  _gone(_topic) {
    this.setAttribute('gone', '');
  }

  attributeChangedCallback(name, old, now) {
    if (old !== now && this._connected) this._resubscribe();
  }

  _setVisible(v) {
    this._visible = v;
    if (v && this._pending) { const u = this._pending; this._pending = null; this._render(u); }
  }

  _resubscribe() {
    this._off?.();
    const what = this.getAttribute('topic') ?? this.getAttribute('pattern');
    if (!what) return;
    this.client = clientFor(this);
    this._reset?.();
    this.removeAttribute('gone');
    const client = this.client;
    const onGone = (e) => { if (matches(what, e.detail.topic)) this._gone(e.detail.topic); };
    client.addEventListener('gone', onGone);
    const off = client.subscribe(what, (u) => {
      if (this.hasAttribute('gone')) this.removeAttribute('gone');
      if (this._visible) this._render(u);
      else this._pending = u;
    });
    this._off = () => { off(); client.removeEventListener('gone', onGone); };
  }
}

/**
 * `<ticker-value topic="stocks.AAPL" field="price" format="number:2">`: one live
 * value as text; flashes on up/down moves (attribute `noflash` turns it off).
 */
class TickerValue extends LiveElement {
  _reset() { this._last = undefined; }

  _gone(topic) {
    super._gone(topic);
    this._pending = null;
    this._last = undefined;
    this.textContent = 'gone';
  }

  _render(u) {
    const field = this.getAttribute('field');
    const v = pick(u.data, field ?? undefined);
    const text = format(v, this.getAttribute('format') ?? 'auto', field?.split(/[./]/).pop());
    if (this.textContent !== text) this.textContent = text;
    if (typeof v === 'number' && typeof this._last === 'number' && v !== this._last) {
      this.dataset.dir = v > this._last ? 'up' : 'down';
      if (!this.hasAttribute('noflash')) flash(this, v - this._last);
    }
    paintTone(this, v, field);
    this._last = v;
    this.dataset.seq = u.seq;
  }
}

const TILE_CSS = `
:host { display: block; contain: content; border-radius: var(--tk-radius, 10px);
  background: var(--tk-surface, transparent); color: var(--tk-text, inherit);
  border: 1px solid var(--tk-border, color-mix(in srgb, currentColor 18%, transparent));
  font-variant-numeric: tabular-nums; min-width: 0; }
:host([stale-since]) { opacity: .62; }
:host([gone]) { opacity: .4; }
.tile { padding: 12px 14px 10px; border-radius: inherit; height: 100%; box-sizing: border-box;
  display: flex; flex-direction: column; gap: 2px; }
.head { display: flex; justify-content: space-between; gap: 8px; align-items: baseline; }
.name { font-weight: 600; font-size: .95em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.topic { color: var(--tk-muted, color-mix(in srgb, currentColor 55%, transparent)); font-size: .75em;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.value { font-size: 1.75em; font-weight: 650; letter-spacing: -.01em; line-height: 1.2;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  align-self: flex-start; max-width: 100%; margin: 2px -6px 0; padding: 0 6px; border-radius: 6px; }
.value.text { font-size: 1.2em; font-weight: 550; white-space: normal; overflow-wrap: anywhere; }
.change { font-size: .9em; font-weight: 550; min-height: 1.2em; }
.rows { display: grid; grid-template-columns: auto 1fr; gap: 1px 10px; font-size: .85em; margin: 2px 0; }
.rows dt { color: var(--tk-muted, color-mix(in srgb, currentColor 55%, transparent)); white-space: nowrap; }
.rows dd { margin: 0; text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
svg { display: block; width: 100%; height: 34px; margin-top: auto; color: var(--tk-accent, #3b82f6); overflow: visible; }
svg[data-tone="neutral"] { color: var(--tk-muted, #6b7280); }
${TONE_CSS}
.chart-label { font-size: .7em; color: var(--tk-muted, color-mix(in srgb, currentColor 55%, transparent)); }
.stale { font-size: .72em; color: var(--tk-warn, #b45309); font-weight: 600; }
.stale:empty, .chart-label:empty { display: none; }
`;

/**
 * `<ticker-tile topic="stocks.AAPL">`: a card with the headline value, its
 * change (coloured), a flash on every up/down move and a sparkline of recent
 * values. Objects without a headline show as key/value rows. Attributes:
 * `field` (the headline), `format`, `label`, `stale-since` (ms: shows
 * "stale since …").
 */
class TickerTile extends LiveElement {
  static get observedAttributes() { return [...super.observedAttributes, 'stale-since', 'label']; }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${TILE_CSS}</style><div class="tile" part="tile">
      <div class="head"><span class="name" part="name"></span></div>
      <div class="topic" part="topic"></div>
      <div class="stale" part="stale"></div>
      <div class="value" part="value">—</div>
      <div class="change" part="change"></div>
      <dl class="rows" part="rows"></dl>
      <div class="chart-label"></div>
      <svg part="sparkline" aria-hidden="true"></svg></div>`;
    const $ = (s) => root.querySelector(s);
    this._el = {
      tile: $('.tile'), name: $('.name'), topic: $('.topic'), value: $('.value'), change: $('.change'),
      rows: $('.rows'), svg: $('svg'), stale: $('.stale'), chartLabel: $('.chart-label'),
    };
  }

  attributeChangedCallback(name, old, now) {
    if (name === 'stale-since' || name === 'label') {
      this._header();
      return;
    }
    super.attributeChangedCallback(name, old, now);
  }

  /** The topic was deleted: dimmed, its value `—`, labelled "gone". */
  _gone(topic) {
    super._gone(topic);
    this._pending = null;
    this._el.value.textContent = '—';
    this._el.change.textContent = '';
    this._el.stale.textContent = 'gone';
    this._named = false; // a later update redraws the header
  }

  _reset() {
    this._last = undefined;
    this._named = false;
    this._series = null;
    this._rowEls = new Map();
    this._el.rows.textContent = '';
    this._header();
  }

  _header(u) {
    const topic = this.getAttribute('topic') ?? '';
    const symbol = u?.data && typeof u.data === 'object' ? u.data.symbol ?? u.data.name : undefined;
    const name = this.getAttribute('label') ?? (typeof symbol === 'string' ? symbol : topic.split('.').pop());
    if (this._el.name.textContent !== name) this._el.name.textContent = name;
    const sub = name === topic ? '' : topic;
    if (this._el.topic.textContent !== sub) this._el.topic.textContent = sub;
    const since = this.getAttribute('stale-since');
    this._el.stale.textContent = since ? `stale since ${formatTime(+since)}` : '';
    this._el.stale.title = since ? `no update since ${new Date(+since).toLocaleString()}` : '';
  }

  _render(u) {
    const el = this._el;
    if (!this._named) { this._header(u); this._named = true; }
    const field = this.getAttribute('field') ?? undefined;
    const d = describe(u.data, field);
    const fmt = this.getAttribute('format') ?? 'auto';
    // headline
    if (d.primary !== undefined) {
      const text = format(d.primary, fmt, d.key);
      if (el.value.textContent !== text) el.value.textContent = text;
      el.value.classList.toggle('text', typeof d.primary !== 'number');
      el.value.hidden = false;
    } else {
      el.value.hidden = true;
    }
    const prev = this._last;
    const cur = typeof d.primary === 'number' ? d.primary : undefined;
    paintTone(el.value, cur, d.key, this.thresholds);
    if (cur !== undefined && prev !== undefined && cur !== prev) flash(el.value, cur - prev);
    this._last = cur;
    // rows
    const rows = displayRows(d.primary === undefined ? d.rows : d.rows.slice(0, 4));
    for (const [name, text, k] of rows) {
      let r = this._rowEls.get(k);
      if (!r) {
        const dt = document.createElement('dt');
        dt.textContent = name;
        dt.title = k;
        const dd = document.createElement('dd');
        el.rows.append(dt, dd);
        this._rowEls.set(k, (r = dd));
      }
      if (r.textContent !== text) { r.textContent = text; r.title = text; }
    }
    el.rows.hidden = rows.length === 0;
    // sparkline from the client's recent history (a backfilled one when the
    // client has `backfill`). The series grows by the history entries not seen
    // yet (no re-scan per frame); older entries put before it (a backfill that
    // came after the first update) or a new epoch start it over.
    const hist = this.client.history(u.topic);
    const lastSeq = hist.length ? hist[hist.length - 1].seq : 0;
    const firstSeq = hist.length ? hist[0].seq : 0;
    if (!this._series || lastSeq < this._seriesSeq || firstSeq < this._seriesFirst) {
      this._series = [];
      this._seriesSeq = 0;
    }
    this._seriesFirst = firstSeq;
    for (let i = hist.length - 1; i >= 0 && hist[i].seq > this._seriesSeq; i--) {
      if (i === 0 || hist[i - 1].seq <= this._seriesSeq) {
        for (let j = i; j < hist.length; j++) {
          const v = chartValue(hist[j].data, field);
          if (v !== undefined) this._series.push([hist[j].ts, v]);
        }
        break;
      }
    }
    this._seriesSeq = lastSeq;
    const keep = this.client.keep || 120;
    if (this._series.length > keep) this._series.splice(0, this._series.length - keep);
    const points = this._series;
    sparkline(el.svg, points.map((p) => p[1]));
    this.dataset.points = String(points.length);
    // change (meaning.js's `changeOf`): the value's own, else over the points drawn
    const chg = d.primary === undefined || timestampMs(d.key, cur) !== undefined ? undefined : changeOf(u.data, d.key, points);
    el.change.textContent = formatChange(chg, cur);
    el.change.title = !chg ? '' : chg.over === null ? 'change, as the value carries it' : `change over the ${points.length} points drawn`;
    paintTone(el.change, chg?.change, 'change');
    el.change.hidden = d.primary === undefined;
    // The line is painted as the change beside it: the two never disagree.
    paintTone(el.svg, chg ? chg.change : points.length > 1 ? points[points.length - 1][1] - points[0][1] : 0, 'change');
    el.svg.style.display = points.length > 1 ? '' : 'none';
    el.chartLabel.textContent = d.primary === undefined && points.length > 1 ? label(d.key) : '';
    this.dataset.seq = u.seq;
  }
}

const TABLE_CSS = `
:host { display: block; overflow-x: auto; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 10px; text-align: right; white-space: nowrap;
  border-bottom: 1px solid var(--tk-border, color-mix(in srgb, currentColor 14%, transparent)); }
th { font-weight: 600; font-size: .85em; color: var(--tk-muted, color-mix(in srgb, currentColor 60%, transparent)); }
th:first-child, td:first-child { text-align: left; }
${TONE_CSS}`;

/**
 * `<ticker-table pattern="stocks.*" columns="symbol,price,change,change_pct">`:
 * one row per matching topic (sorted), one column per field (`topic` is the
 * topic itself; default: the topic and every field of the first update).
 * Cells flash faintly on moves; change-like cells are coloured by sign
 * (meaning.js's `tone`).
 */
class TickerTable extends LiveElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${TABLE_CSS}</style><table part="table"><thead><tr></tr></thead><tbody></tbody></table>`;
    this._head = root.querySelector('thead tr');
    this._body = root.querySelector('tbody');
  }

  _reset() {
    this._rows = new Map();
    this._cols = null;
    this._body.textContent = '';
    this._head.textContent = '';
  }

  /** A deleted topic's row leaves the table. */
  _gone(topic) {
    const row = this._rows.get(topic);
    if (row) {
      row.tr.remove();
      this._rows.delete(topic);
    }
    if (this.getAttribute('topic') === topic) super._gone(topic);
  }

  _columns(u) {
    if (this._cols) return this._cols;
    const attr = this.getAttribute('columns');
    const cols = attr
      ? attr.split(',').map((s) => s.trim()).filter(Boolean)
      : ['topic', ...(u.data && typeof u.data === 'object' && !Array.isArray(u.data) ? Object.keys(u.data) : ['value'])];
    for (const c of cols) {
      const th = document.createElement('th');
      th.textContent = c.replace(/_(pct|percent)$/, ' %').replace(/[_-]+/g, ' ');
      th.title = c;
      this._head.append(th);
    }
    return (this._cols = cols);
  }

  _render(u) {
    const cols = this._columns(u);
    let row = this._rows.get(u.topic);
    if (!row) {
      const tr = document.createElement('tr');
      tr.dataset.topic = u.topic;
      row = { tr, cells: cols.map(() => tr.appendChild(document.createElement('td'))), last: [] };
      this._rows.set(u.topic, row);
      const next = [...this._rows.keys()].sort().find((t) => t > u.topic);
      this._body.insertBefore(tr, next ? this._rows.get(next).tr : null);
    }
    const fmt = this.getAttribute('format') ?? 'auto';
    cols.forEach((c, i) => {
      const v = c === 'topic' ? u.topic
        : c === 'value' && (u.data === null || typeof u.data !== 'object') ? u.data
          : pick(u.data, c);
      const text = format(v, c === 'topic' ? 'text' : fmt, c);
      const td = row.cells[i];
      if (td.textContent !== text) td.textContent = text;
      paintTone(td, v, c);
      if (typeof v === 'number') {
        const prev = row.last[i];
        if (typeof prev === 'number' && prev !== v) flash(td, v - prev);
      }
      row.last[i] = v;
    });
  }
}

// The functions board.js renders with: handed to it, not imported, so that it
// shares this module (and its clients) even when this file came with `?token=`.
const BOARD_API = {
  clientFor, pick, format, formatAgo, formatTime, flash, label, chartValue, matches,
  tone, paintTone, levelOf, changeOf, formatChange, timestampMs, feedsByHealth, describe, sparkline,
};
let boardModule = null;

/**
 * `<ticker-dashboard name="ops">`: a whole dashboard of the server (defined in
 * its `dashboards/ops.toml`), live, and following every edit of that file in
 * place. Attributes `server` and `token` as for the other elements. The
 * renderer (board.js, next to this file) is loaded on first use. Its
 * `data-applied` counts the definitions applied; it fires `definition` events.
 */
class TickerDashboard extends Base {
  static get observedAttributes() { return ['name']; }

  connectedCallback() {
    this._connected = true;
    boardModule ??= import(new URL('board.js', SCRIPT_URL).href);
    boardModule.then((m) => {
      if (!this._connected || this._board) return;
      this._board = new m.Board(this, BOARD_API);
      this._board.start();
    });
  }

  disconnectedCallback() {
    this._connected = false;
    this._board?.stop();
    this._board = null;
  }

  attributeChangedCallback(name, old, now) {
    if (old === now || !this._board) return;
    this.disconnectedCallback();
    this.connectedCallback();
  }
}

if (typeof customElements !== 'undefined') {
  for (const [name, cls] of [['ticker-value', TickerValue], ['ticker-tile', TickerTile], ['ticker-table', TickerTable], ['ticker-dashboard', TickerDashboard]]) {
    if (!customElements.get(name)) customElements.define(name, cls);
  }
}

export { TickerValue, TickerTile, TickerTable, TickerDashboard };
