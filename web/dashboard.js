// The dashboard at `/`: every topic as a live tile, grouped by prefix, with a
// detail view, feed health, the config banner and the connection state. It is a
// user of tickerd.js like any embedding page: one client, the custom elements,
// and the same formatting helpers.

import {
  connect, format, formatTime, formatAgo, describe, displayRows, chartValue, sparkline, label, matches,
} from './tickerd.js';
import { bindConnection, bindTheme } from './chrome.js';
import { keepEven } from './layout.js';
import { feedsByHealth } from './meaning.js';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const params = new URLSearchParams(location.search);
// backfill: ask for each topic's retained updates at start, so sparklines are full at once.
const client = connect({ token: params.get('token') ?? undefined, backfill: 100 });
window.tickerd = client; // for the console (and the browser tests)

// ---------------------------------------------------------------------------
// Tiles, grouped by the topic's first segment

const tiles = new Map(); // topic -> {link, tile, group}
const groups = new Map(); // prefix -> {section, grid, count, size}
const topicInfo = new Map(); // topic -> {feed, seq, ts, stale} from the `topics` op
let query = '';

function groupFor(prefix) {
  let g = groups.get(prefix);
  if (g) return g;
  const section = el('section', 'group');
  section.dataset.group = prefix;
  const h = el('h2');
  const count = el('span', 'count muted');
  h.append(el('span', '', prefix), count);
  const grid = el('div', 'grid');
  section.append(h, grid);
  keepEven(grid, { min: () => (innerWidth <= 520 ? 140 : 190), gap: 12 }); // even rows: no tile alone on one
  g = { section, grid, count, size: 0 };
  groups.set(prefix, g);
  const next = [...groups.keys()].sort().find((p) => p > prefix);
  $('groups').insertBefore(section, next ? groups.get(next).section : null);
  return g;
}

function addTile(u) {
  const prefix = u.topic.split('.')[0];
  const g = groupFor(prefix);
  const link = el('a', 'tile-link');
  link.href = `#/topic/${encodeURIComponent(u.topic)}`;
  link.dataset.topic = u.topic;
  const d = describe(u.data);
  if (d.primary === undefined && d.rows.length > 3) link.classList.add('wide');
  const tile = document.createElement('ticker-tile');
  tile.setAttribute('topic', u.topic);
  const info = topicInfo.get(u.topic);
  if (info?.stale) tile.setAttribute('stale-since', info.ts);
  link.append(tile);
  const siblings = [...g.grid.children];
  const next = siblings.find((s) => s.dataset.topic > u.topic);
  g.grid.insertBefore(link, next ?? null);
  g.size++;
  // small groups share a row: a group asks for the width of its tiles (up to 4)
  g.units = (g.units ?? 0) + (link.classList.contains('wide') ? 2 : 1);
  g.section.style.flexBasis = `${Math.min(g.units, 4) * 202 - 12}px`;
  tiles.set(u.topic, { link, tile, group: g });
  applyFilter(link);
  refreshCounts();
}

client.subscribe('>', (u) => {
  if (!tiles.has(u.topic)) addTile(u);
});

// updates per second, counted on every update (not conflated)
let counted = 0;
client.subscribe('>', () => { counted++; }, { every: true });
setInterval(() => {
  $('stat-rate').textContent = counted.toLocaleString();
  counted = 0;
}, 1000);

function refreshCounts() {
  let shown = 0;
  for (const g of groups.values()) {
    const visible = [...g.grid.children].filter((c) => !c.hidden).length;
    g.count.textContent = query ? `${visible} of ${g.size}` : String(g.size);
    g.section.hidden = visible === 0;
    shown += visible;
  }
  $('stat-topics').textContent = tiles.size.toLocaleString();
  const empty = $('empty');
  empty.hidden = shown > 0;
  empty.textContent = tiles.size === 0 ? 'Waiting for the first updates…' : `No topic matches “${query}”.`;
}

// ---------------------------------------------------------------------------
// Filter: a substring of the topic, or a pattern when it has `*` or `>`

function applyFilter(link) {
  const t = link.dataset.topic;
  const q = query.trim();
  const isPat = /(^|\.)(\*|>)(\.|$)/.test(q);
  link.hidden = q !== '' && !(isPat ? matches(q, t) : t.toLowerCase().includes(q.toLowerCase()));
}

$('filter').addEventListener('input', (e) => {
  query = e.target.value;
  for (const { link } of tiles.values()) applyFilter(link);
  refreshCounts();
});
$('filter').addEventListener('keydown', (e) => {
  if (e.key === 'Escape') { e.target.value = ''; e.target.dispatchEvent(new Event('input')); }
});
document.addEventListener('keydown', (e) => {
  if (e.key === '/' && document.activeElement?.tagName !== 'INPUT' && !$('detail').open) {
    e.preventDefault();
    $('filter').focus();
  }
});

// ---------------------------------------------------------------------------
// Staleness and feed health

async function pollTopics() {
  const list = await client.topics();
  if (!list) return;
  for (const t of list) {
    topicInfo.set(t.topic, t);
    const tile = tiles.get(t.topic)?.tile;
    if (!tile) continue;
    if (t.stale) {
      if (tile.getAttribute('stale-since') !== String(t.ts)) tile.setAttribute('stale-since', t.ts);
    } else if (tile.hasAttribute('stale-since')) {
      tile.removeAttribute('stale-since');
    }
  }
  if (detail) renderMeta();
}
setInterval(() => {
  if (client.state !== 'live' || document.hidden) return;
  pollTopics();
  loadFeeds();
}, 5000);

const feeds = new Map(); // name -> latest status

async function loadFeeds() {
  try {
    const r = await fetch(client.url('api/feeds'), { cache: 'no-store' });
    if (!r.ok) return;
    for (const f of await r.json()) feeds.set(f.feed, f);
    renderFeeds();
  } catch {
    // offline: the connection indicator says so
  }
}

client.subscribe('$sys.feeds', (u) => {
  if (u.data && typeof u.data === 'object' && u.data.feed) {
    feeds.set(u.data.feed, u.data);
    queueFeeds();
  }
}, { every: true });

let feedsQueued = false;
function queueFeeds() {
  if (feedsQueued) return;
  feedsQueued = true;
  requestAnimationFrame(() => { feedsQueued = false; renderFeeds(); });
}

function renderFeeds() {
  const ul = $('feeds');
  if (feeds.size === 0) return;
  // Failing first, then running, then stopped (meaning.js, as a dashboard's feeds panel).
  const items = feedsByHealth(feeds.values()).map((f) => {
    const li = el('li');
    li.dataset.feed = f.feed;
    li.dataset.state = f.state;
    const head = el('div', 'feed-head');
    const stale = f.stale && f.state !== 'stopped';
    head.append(
      el('span', 'feed-name', f.feed),
      el('span', 'feed-kind', f.kind),
      el('span', `pill ${stale ? 'stale' : f.state}`, stale ? 'stale' : f.state),
    );
    li.append(head);
    const plural = (n, word) => `${format(n, 'number')} ${word}${n === 1 ? '' : 's'}`;
    const bits = [plural(f.updates, 'update'), plural(f.errors, 'error')];
    if (f.node) bits.push(`on ${f.node}`);
    if (f.last_ok && !stale) bits.push(`last ${formatAgo(f.last_ok)}`);
    li.append(el('div', 'feed-line', bits.join(' · ')));
    if (stale) {
      li.append(el('div', 'feed-stale', f.last_ok ? `stale since ${formatTime(f.last_ok)}` : 'stale: no update yet'));
    }
    // A running feed's error matters while nothing got through (e.g. every item
    // lacks a field of its topic template); later it is history.
    if (f.error && (f.state !== 'running' || f.updates === 0)) li.append(el('div', 'feed-error', f.error));
    return li;
  });
  ul.replaceChildren(...items);
}
setInterval(() => { if (feeds.size) renderFeeds(); }, 1000);

// ---------------------------------------------------------------------------
// Cluster mode: `$sys.cluster` {"node","connected","nodes":[..],"feeds":{..}}

client.subscribe('$sys.cluster', (u) => {
  const d = u.data ?? {};
  const dd = $('stat-cluster');
  dd.hidden = $('stat-cluster-dt').hidden = false;
  const nodes = Array.isArray(d.nodes) ? d.nodes.length : 0;
  dd.textContent = d.connected ? `${d.node} · ${nodes} node${nodes === 1 ? '' : 's'}` : `${d.node} · NATS unreachable`;
  dd.dataset.state = d.connected ? 'live' : 'offline';
  dd.title = Object.entries(d.feeds ?? {}).map(([f, n]) => `${f}: ${n ?? 'unowned'}`).join('\n');
}, { every: true });

// ---------------------------------------------------------------------------
// The config banner: `$sys.config` {"ok":false,"error":...} until the next ok

client.subscribe('$sys.config', (u) => {
  const d = u.data ?? {};
  $('banner').hidden = d.ok !== false;
  $('banner-error').textContent = d.ok === false ? String(d.error ?? 'unknown error') : '';
}, { every: true });

// ---------------------------------------------------------------------------
// Connection indicator

bindConnection(client, $('conn'), $('retry'));

client.addEventListener('hello', (e) => {
  $('stat-server').textContent = e.detail.server ?? '—';
  $('stat-server').title = `epoch ${e.detail.epoch}`;
  loadFeeds();
  setTimeout(pollTopics, 300);
});

// ---------------------------------------------------------------------------
// Detail view: #/topic/NAME

let detail = null; // {topic, off}

function route() {
  const m = location.hash.match(/^#\/topic\/(.+)$/);
  const topic = m ? decodeURIComponent(m[1]) : null;
  if (detail && detail.topic !== topic) closeDetail();
  if (topic && !detail) openDetail(topic);
}

function openDetail(topic) {
  detail = { topic, off: null, last: null };
  $('detail-topic').textContent = topic;
  $('detail-value').replaceChildren();
  $('detail-history').replaceChildren();
  $('detail-raw').textContent = 'Waiting for an update…';
  $('detail-range').replaceChildren();
  renderMeta();
  const dialog = $('detail');
  if (!dialog.open) dialog.showModal();
  detail.off = client.subscribe(topic, renderDetail);
}

function closeDetail() {
  detail?.off?.();
  detail = null;
  if ($('detail').open) $('detail').close();
}

$('detail').addEventListener('close', () => {
  detail?.off?.();
  detail = null;
  if (location.hash.startsWith('#/topic/')) history.replaceState(null, '', location.pathname + location.search);
});
$('detail-close').addEventListener('click', () => $('detail').close());
$('detail').addEventListener('click', (e) => { if (e.target === $('detail')) $('detail').close(); });
window.addEventListener('hashchange', route);

function renderMeta() {
  if (!detail) return;
  const info = topicInfo.get(detail.topic);
  const u = client.latest(detail.topic);
  const bits = [];
  if (info?.feed) bits.push(`feed ${info.feed}`);
  if (u) bits.push(`seq ${u.seq}`, `updated ${formatTime(u.ts)}`);
  if (info?.stale) bits.push(`stale since ${formatTime(info.ts)}`);
  $('detail-meta').textContent = bits.join(' · ');
}

function renderDetail(u) {
  if (!detail || u.topic !== detail.topic) return;
  renderMeta();
  const d = describe(u.data);
  const box = $('detail-value');
  const parts = [];
  if (d.primary !== undefined) {
    const big = el('div', '', format(d.primary, 'auto', d.key));
    if (d.change !== undefined) {
      const pct = d.changePct !== undefined ? ` (${format(d.changePct, 'signed:2')}%)` : '';
      const chg = el('span', 'chg', `${format(d.change, 'signed')}${pct}`);
      chg.style.color = d.change > 0 ? 'var(--up)' : d.change < 0 ? 'var(--down)' : '';
      big.append(chg);
    }
    parts.push(big);
  }
  if (d.rows.length) {
    const dl = el('dl');
    for (const [name, text, k] of displayRows(d.rows)) {
      const item = el('div');
      item.append(el('dt', '', name), el('dd', '', text));
      item.title = k;
      dl.append(item);
    }
    parts.push(dl);
  }
  box.replaceChildren(...parts);

  const hist = client.history(u.topic);
  const points = [];
  for (const h of hist) {
    const v = chartValue(h.data);
    if (v !== undefined) points.push([h.ts, v]);
  }
  const svg = $('detail-chart');
  $('detail-chart-wrap').hidden = points.length < 2;
  if (points.length >= 2) {
    const values = points.map((p) => p[1]);
    sparkline(svg, values);
    const trend = values[values.length - 1] - values[0];
    svg.classList.toggle('up', trend > 0);
    svg.classList.toggle('down', trend < 0);
    const key = d.primary !== undefined ? d.key : d.key;
    const min = Math.min(...values);
    const max = Math.max(...values);
    $('detail-range').replaceChildren(
      el('span', '', `${formatTime(points[0][0])} → ${formatTime(points[points.length - 1][0])}`),
      el('span', '', `${label(key ?? 'value')}: min ${format(min, 'auto', key)} · max ${format(max, 'auto', key)} · ${values.length} points`),
    );
  }

  const rows = [];
  for (let i = hist.length - 1; i >= 0 && rows.length < 50; i--) {
    const h = hist[i];
    const tr = el('tr');
    const json = JSON.stringify(h.data);
    tr.append(
      el('td', '', formatTime(h.ts, true)),
      el('td', '', String(h.seq)),
      el('td', '', json.length > 160 ? `${json.slice(0, 160)}…` : json),
    );
    rows.push(tr);
  }
  $('detail-history').replaceChildren(...rows);
  const { topic, seq, ts, data } = u;
  $('detail-raw').textContent = JSON.stringify({ type: 'update', topic, seq, ts, data }, null, 2);
}

route();

// ---------------------------------------------------------------------------
// Theme: auto (the system's) -> light -> dark

bindTheme($('theme'));
