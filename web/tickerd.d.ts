// Type declarations for tickerd.js, the browser client of tickerd and its
// custom elements. Served next to it (`/tickerd.d.ts`); the frames follow
// docs/protocol.md. tests/browser/typings.test.js checks that every name
// declared here exists in tickerd.js and that every public one there is here.

/** The server tickerd.js was served by (its directory), e.g. `http://host:8080/`. */
export declare const SERVER: string;
/** The `?token=` of tickerd.js's URL, if any. */
export declare const TOKEN: string | null;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---------------------------------------------------------------------------
// Frames (docs/protocol.md, "Server → client")

/** `{"type":"hello"}`: the first frame of every connection. */
export interface HelloFrame {
  type: 'hello';
  /** Names the life of the server's topic sequences; resume only within one. */
  epoch: string;
  /** e.g. `tickerd/0.1.0` */
  server: string;
  heartbeat_ms: number;
}

/** `{"type":"ack"}`: a `subscribe`, `unsubscribe` or `refresh` went through. */
export interface AckFrame {
  type: 'ack';
  id?: Json;
  op: 'subscribe' | 'unsubscribe' | 'refresh';
  topics: string[];
  /** A subscribe with `since`: whether the replay asked for was possible. */
  /** With `since`: `ok` when every retained backlog asked for arrives whole;
   * `partial` names the topics that get their snapshot instead. */
  resume?: { ok: boolean; reason?: string; partial?: string[] };
  /** An unsubscribe: patterns this connection did not hold. */
  not_subscribed?: string[];
}

/** An update as the server sends it (with `delta: true`, `data` may be a merge patch). */
export interface UpdateFrame {
  type: 'update';
  topic: string;
  seq: number;
  /** Publish time, ms since the Unix epoch. */
  ts: number;
  data: Json;
  /** The topic's latest update, sent on subscribe. */
  snapshot?: boolean;
  /** `data` is a JSON merge patch (RFC 7386) against the previous value. */
  delta?: boolean;
}

/** `{"type":"gone"}`: the topic was deleted. */
export interface GoneFrame {
  type: 'gone';
  topic: string;
}

/** A row of `{"op":"topics"}` (and of `GET /api/topics`). */
export interface TopicInfo {
  topic: string;
  feed: string;
  seq: number;
  ts: number;
  stale: boolean;
  subscribers: number;
}

export interface TopicsFrame {
  type: 'topics';
  id?: Json;
  topics: TopicInfo[];
  /** Some rows were left out (the reply's size limit). */
  truncated?: boolean;
}

export interface PongFrame {
  type: 'pong';
  id?: Json;
}

export interface PublishedFrame {
  type: 'published';
  id?: Json;
  results: Array<{ topic: string; seq: number; ts: number } | { topic: string; error: string }>;
}

export type ErrorCode =
  | 'bad_request'
  | 'unknown_op'
  | 'invalid_topic'
  | 'too_many_subscriptions'
  | 'forbidden'
  | 'rate_limited'
  | 'unauthorized';

/** `{"type":"error"}`: a reply; the connection stays open. */
export interface ErrorFrame {
  type: 'error';
  id?: Json;
  code: ErrorCode;
  message: string;
}

export type ServerFrame =
  | HelloFrame
  | AckFrame
  | UpdateFrame
  | GoneFrame
  | TopicsFrame
  | PongFrame
  | PublishedFrame
  | ErrorFrame;

/** What subscribers get: always the whole value (deltas are merged back). */
export interface Update {
  type: 'update';
  topic: string;
  seq: number;
  ts: number;
  data: Json;
  snapshot?: boolean;
}

// ---------------------------------------------------------------------------
// The client

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface StateDetail {
  state: ConnectionState;
  attempt: number;
  /** ms timestamp of the next try, when `reconnecting`. */
  retryAt: number | null;
  error: string | null;
}

export interface TokenRefreshDetail {
  ok: boolean;
  error: string | null;
}

export interface TickerClientEventMap {
  state: CustomEvent<StateDetail>;
  hello: CustomEvent<HelloFrame>;
  servererror: CustomEvent<ErrorFrame>;
  gone: CustomEvent<{ topic: string }>;
  tokenrefresh: CustomEvent<TokenRefreshDetail>;
  /** A resume could not deliver these topics' backlogs whole; snapshots follow. */
  resync: CustomEvent<{ topics: string[] }>;
}

export interface TickerClientOptions {
  /** Base URL of the server (default: where tickerd.js came from). */
  server?: string;
  /** Token for `?token=` (default: the script URL's). */
  token?: string | null;
  /** Recent updates kept per topic (see `history()`); default 120. */
  keep?: number;
  /** On first connect, ask for up to this many retained updates per topic; default 0. */
  backfill?: number;
  /** Idle time (ms) before an application ping; default 10000. */
  pingInterval?: number;
  /** No frame this long (ms) after a ping = dead link; default 5000. */
  pingTimeout?: number;
  /** First reconnect window (ms); default 500. */
  backoffBase?: number;
  /** Largest reconnect window (ms); default 30000. */
  backoffCap?: number;
  /** At most this many updates per second per topic (the latest always arrives). */
  maxRate?: number;
  /** Ask for field-level deltas (merged back here); default false. */
  delta?: boolean;
  /** `'auto'` (a WebSocket, falling back to `/sse`), `'websocket'` or `'sse'`. */
  transport?: 'auto' | 'websocket' | 'sse';
  /**
   * A fresh token: called before each connection and, for a JWT, before its
   * `exp` (sent as the `refresh` op on a WebSocket; an SSE stream is reopened).
   */
  getToken?: () => string | Promise<string>;
}

export interface SubscribeOptions {
  /** Call for every update, synchronously, instead of once per frame. */
  every?: boolean;
}

/** Call to unsubscribe. */
export type Unsubscribe = () => void;

export declare class TickerClient extends EventTarget {
  constructor(opts?: TickerClientOptions);
  readonly server: string;
  token: string | null | undefined;
  keep: number;
  backfill: number;
  pingInterval: number;
  pingTimeout: number;
  backoffBase: number;
  backoffCap: number;
  maxRate: number | undefined;
  delta: boolean;
  transport: 'auto' | 'websocket' | 'sse';
  getToken: (() => string | Promise<string>) | null;
  readonly state: ConnectionState;
  /** The epoch of the last hello. */
  readonly epoch: string | null;
  readonly attempt: number;
  readonly retryAt: number | null;
  readonly lastError: string | null;
  /** The last hello. */
  readonly hello?: HelloFrame;

  /** The WebSocket URL, with the token. */
  readonly wsUrl: string;
  /** The `/sse` URL for `patterns`, resuming from the seqs seen. */
  sseUrl(patterns: string[]): string;
  /** Which transport the next connection uses. */
  readonly usingSse: boolean;
  /** An HTTP URL on the server (e.g. `api/topics`), with the token. */
  url(path: string): string;
  /** Opens the connection (subscribing does it too). */
  open(): this;
  /** Closes for good (until `open()`); state becomes `offline`. */
  close(): void;
  /** Skips the backoff wait and reconnects now. */
  retryNow(): void;
  /** Calls `cb` for updates of topics matching `pattern`. */
  subscribe(pattern: string, cb: (update: Update) => void, opts?: SubscribeOptions): Unsubscribe;
  /** The latest update of `topic`, if one arrived. */
  latest(topic: string): Update | undefined;
  /** Recent updates of `topic`, oldest first. */
  history(topic: string): Update[];
  /** Every topic seen so far. */
  knownTopics(): string[];
  /** The server's topic list (`{"op":"topics"}`); null when not connected. */
  topics(): Promise<TopicInfo[] | null>;

  addEventListener<K extends keyof TickerClientEventMap>(
    type: K,
    listener: (ev: TickerClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof TickerClientEventMap>(
    type: K,
    listener: (ev: TickerClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** The shared, opened client (per server and token); see tickerd.js. */
export declare function connect(opts?: TickerClientOptions): TickerClient;

// ---------------------------------------------------------------------------
// Helpers

/** True when `pattern` (`*` one segment, `>` one or more at the end) matches `topic`. */
export declare function matches(pattern: string, topic: string): boolean;
/** True when every topic `b` matches is also matched by `a`. */
export declare function covers(a: string, b: string): boolean;
/** The `exp` claim (seconds) of a JWT, read without verifying; null if none. */
export declare function jwtExpiry(token: string | null | undefined): number | null;
/** Applies a JSON merge patch (RFC 7386); `target` is not changed. */
export declare function applyMergePatch(target: Json, patch: Json): Json;
/** The value at `field` of `data`: a dot path (`a.b`) or JSON Pointer (`/a/b`). */
export declare function pick(data: Json, field?: string | null): Json | undefined;
/** `1536` -> `1.5 KiB`. */
export declare function formatBytes(n: number): string;
/** Seconds -> `3d 4h`, `2h 5m`, `4m 10s`, `12s`. */
export declare function formatDuration(s: number): string;
/** A timestamp (ms) -> `14:03:07` (`14:03:07.123` with `millis`). */
export declare function formatTime(ms: number, millis?: boolean): string;
/** A timestamp (ms) -> `5s ago`, `3m ago`. */
export declare function formatAgo(ms: number, now?: number): string;
/** The format `auto` picks for a field name and value. */
export declare function guessFormat(key: string | undefined, value: Json): string;
/**
 * Formats a value. `fmt`: `auto`, `number[:digits]`, `percent[:digits]`,
 * `ratio[:digits]`, `signed[:digits]`, `bytes`, `duration`, `time`, `ago`,
 * `currency:USD`, `compact`, `json`, `text`.
 */
export declare function format(value: Json | undefined, fmt?: string, key?: string): string;
/** Rows for display: `[label, text, key]`. */
export declare function displayRows(rows: Array<[string, Json]>): Array<[string, string, string]>;
/** `mem_used_bytes` -> `mem used`. */
export declare function label(key: string): string;
/** How to show an update's data. */
export declare function describe(
  data: Json,
  field?: string | null,
): {
  primary: Json | undefined;
  key: string | undefined;
  change?: number;
  changePct?: number;
  rows: Array<[string, Json]>;
};
/** The number charted for an update (see `describe`), or undefined. */
export declare function chartValue(data: Json, field?: string | null): number | undefined;
/** Draws `values` into `svg` as a sparkline. */
export declare function sparkline(svg: SVGSVGElement, values: number[]): void;
/** Briefly and faintly tints `el`'s background when its value moved (`dir` not 0): a neutral tint, never green or red (colour is the value's `data-tone`); none with `prefers-reduced-motion: reduce`. */
export declare function flash(el: HTMLElement, dir: number): void;

// ---------------------------------------------------------------------------
// Custom elements (attributes as in the tag-name maps below)

/**
 * `<ticker-value topic="stocks.AAPL" field="price" format="number:2">`; also
 * `noflash`. Sets `data-dir` (`up`/`down`, the last move), `data-tone` (what
 * its colour means: `up`/`down` for a change-like field by sign, else
 * `neutral`), `data-seq`, and `gone` when the topic was deleted.
 */
export declare class TickerValue extends HTMLElement {}
/**
 * `<ticker-tile topic="stocks.AAPL">`; also `label`, `stale-since` (ms). Sets
 * `data-seq` and `data-points` (the sparkline's points); its value and change
 * carry `data-tone`.
 */
export declare class TickerTile extends HTMLElement {}
/** `<ticker-table pattern="stocks.*" columns="symbol,price,change_pct">` */
export declare class TickerTable extends HTMLElement {}
/** `<ticker-dashboard name="markets">` (dashboards/markets.toml); fires `definition` events. */
export declare class TickerDashboard extends HTMLElement {}

/** The attributes of the live elements (`<ticker-value>`, `<ticker-tile>`, `<ticker-table>`). */
export interface LiveElementAttributes {
  topic?: string;
  pattern?: string;
  field?: string;
  format?: string;
  server?: string;
  token?: string;
  columns?: string;
}

export interface TickerValueAttributes extends LiveElementAttributes {
  /** No up/down flash. */
  noflash?: '' | boolean;
}

export interface TickerTileAttributes extends LiveElementAttributes {
  label?: string;
  'stale-since'?: string;
}

export interface TickerDashboardAttributes {
  name: string;
  server?: string;
  token?: string;
}

declare global {
  interface HTMLElementTagNameMap {
    'ticker-value': TickerValue;
    'ticker-tile': TickerTile;
    'ticker-table': TickerTable;
    'ticker-dashboard': TickerDashboard;
  }
}
