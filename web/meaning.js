// meaning.js — what a number on a page means, decided in one place for every
// element and panel (tickerd.js's <ticker-tile>/<ticker-table>/<ticker-value>,
// board.js's panels, the automatic page): the tone it is painted in, the
// change a tile or tape shows beside it, whether it is a point in time, and
// the order feed health is listed in. Pages only paint what these say, so two
// numbers about the same thing never disagree.
//
// It imports nothing: tickerd.js and dashboard.js both import it, and a
// tickerd.js loaded with `?token=` still shares this one copy.

/**
 * A field whose number is a change, so that its sign is its meaning: `change`,
 * `change_pct`, `pct_change`, `*_change`, `*_change_pct`, `delta`, `*_delta`.
 * A share such as `cpu_pct` or `mem_pct` is not one: it is never negative, and
 * painting it green would say "up" about a busy CPU.
 */
export function isChange(key) {
  const k = String(key ?? '').toLowerCase().split(/[./]/).pop();
  return /^(change|chg|delta|diff)(_(pct|percent|abs))?$|^(pct|percent)_change$|_(change|chg|delta|diff)(_(pct|percent))?$/.test(k);
}

/** The level of `value` by `thresholds` (the last that matches wins), or null. */
export function levelOf(value, thresholds) {
  if (typeof value !== 'number' || !thresholds?.length) return null;
  let level = null;
  for (const t of thresholds) {
    if ((t.above !== undefined && value > t.above) || (t.below !== undefined && value < t.below)) level = t.level;
  }
  return level;
}

/**
 * The tone a value is painted in, always (never the last tick's direction):
 * with `thresholds`, the level it reaches (`ok`, `info`, `warn`, `crit`, or
 * `neutral` below them all); else, for a change-like `key` (see `isChange`), its
 * sign (`up`, `down`, `neutral` at zero); else `neutral` (a price, memory,
 * uptime, a clock). Set as `data-tone`; each page's CSS maps it to a colour.
 */
export function tone(value, key, thresholds) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'neutral';
  if (thresholds?.length) return levelOf(value, thresholds) ?? 'neutral';
  if (isChange(key)) return value > 0 ? 'up' : value < 0 ? 'down' : 'neutral';
  return 'neutral';
}

/** Sets `el`'s `data-tone` (see `tone`) when it changed; returns the tone. */
export function paintTone(el, value, key, thresholds) {
  const t = tone(value, key, thresholds);
  if (el.dataset.tone !== t) el.dataset.tone = t;
  return t;
}

// Unix time in seconds (from 2001 to 2286) or milliseconds (from 1973).
const SECONDS = [1e9, 1e10];
const MILLIS = [1e11, 1e14];

/**
 * `value` as a timestamp in ms when `key` names a point in time (`ts`, `time`,
 * `timestamp`, `epoch`, `*_at`, `*_ts`, `*_time`, `*_ms`, `last_ok`) and the
 * number is a plausible Unix time, in seconds or milliseconds; else undefined.
 * Such a value is written as a time and never charted: a sparkline of a clock
 * is a straight line that says nothing.
 */
export function timestampMs(key, value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  const k = String(key ?? '').toLowerCase().split(/[./]/).pop();
  if (!/(^|_)(ts|time|timestamp|epoch|at|unix)$|_ms$|^last_ok$/.test(k)) return undefined;
  if (value >= SECONDS[0] && value < SECONDS[1]) return value * 1000;
  if (value >= MILLIS[0] && value < MILLIS[1]) return value;
  return undefined;
}

/**
 * The change a tile or tape shows beside the headline `key` of `data`: the
 * value's own `change` (and `change_pct`) when it carries them, so that it is
 * the same number a table's `change` column shows; otherwise the move over
 * `points` (`[ts, value]`, oldest first: what the panel holds), with `over`,
 * the milliseconds they span, for its label. Undefined when there is none (a
 * headline that is itself a change, a timestamp, or fewer than two points).
 */
export function changeOf(data, key, points) {
  if (isChange(key)) return undefined;
  if (data && typeof data === 'object' && typeof data.change === 'number') {
    const pct = typeof data.change_pct === 'number' ? data.change_pct : undefined;
    return { change: data.change, pct, over: null };
  }
  if (!points || points.length < 2) return undefined;
  const [t0, v0] = points[0];
  const [t1, v1] = points[points.length - 1];
  if (timestampMs(key, v1) !== undefined) return undefined;
  const change = v1 - v0;
  const pct = v0 !== 0 ? (change / Math.abs(v0)) * 100 : undefined;
  return { change, pct, over: t1 - t0 };
}

/** Health groups of feeds, in the order they are listed (a `feeds` panel's `show`). */
export const FEED_HEALTH = ['failing', 'running', 'stopped'];

/**
 * A feed status's health group: `failing` (failed, backing off, stale, or
 * starting with an error, e.g. waiting for its file), `running`, or `stopped`.
 */
export function feedHealth(f) {
  if (f.state === 'stopped') return 'stopped';
  if (f.state === 'failed' || f.state === 'backoff' || f.stale) return 'failing';
  if (f.state !== 'running' && f.error) return 'failing';
  return 'running';
}

/**
 * Feed statuses as listed: failing first, then running, then stopped, each
 * group by name; only the groups of `show` (default: all).
 */
export function feedsByHealth(feeds, show = FEED_HEALTH) {
  const rank = (f) => FEED_HEALTH.indexOf(feedHealth(f));
  return [...feeds]
    .filter((f) => show.includes(feedHealth(f)))
    .sort((a, b) => rank(a) - rank(b) || a.feed.localeCompare(b.feed));
}
