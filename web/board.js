// board.js — renders a dashboard defined in TOML (dashboards/NAME.toml) from
// the server's `$sys.dashboards` topic, and follows every change of it in
// place: panels are added, removed, re-ordered and re-formatted without a page
// reload, on the same WebSocket, and charts keep their points.
//
// It is loaded by tickerd.js when a <ticker-dashboard name="ops"> element
// appears (on /d/ops, or on any page of any origin), and gets tickerd.js's
// functions handed in (`api`) rather than importing them: an import would load
// a second copy of tickerd.js whenever the page loaded it with `?token=`
// (layout.js and meaning.js import nothing, so one copy of each is shared).
//
// Screen readers: panels are not live regions (a ticking price would talk
// without end). One polite live region announces what deserves it: a panel
// crossing a threshold level, and a changed dashboard definition.

import { fillRows, keepEven } from './layout.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const LEVELS = ['ok', 'info', 'warn', 'crit'];

const CSS = `
:host { display: block; color: var(--tk-text, inherit); font-variant-numeric: tabular-nums;
  --lv-ok: var(--tk-up, #16a34a); --lv-info: var(--tk-accent, #2563eb);
  --lv-warn: var(--tk-warn, #d97706); --lv-crit: var(--tk-down, #dc2626); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.banner { margin: 0 0 12px; padding: 10px 14px; border-radius: 10px; border: 1px solid var(--tk-down, #dc2626);
  background: color-mix(in srgb, var(--tk-down, #dc2626) 10%, transparent); }
.banner strong { color: var(--tk-down, #dc2626); }
.banner pre { margin: 6px 0 0; white-space: pre-wrap; word-break: break-word; font: .82rem/1.4 ui-monospace, Menlo, Consolas, monospace; }
.missing { padding: 32px; text-align: center; color: var(--tk-muted, #6b7280); }
.note { margin: 0; font-size: .82rem; color: var(--tk-muted, #6b7280); overflow-wrap: anywhere; }
.note[hidden] { display: none; }
.grid { display: grid; gap: 12px; grid-template-columns: repeat(var(--cols, 4), minmax(0, 1fr)); }
.panel { grid-column: span min(var(--span, 1), var(--cols, 4)); min-width: 0; position: relative; contain: layout paint;
  background: var(--tk-surface, transparent); border-radius: var(--tk-radius, 10px);
  border: 1px solid var(--tk-border, color-mix(in srgb, currentColor 18%, transparent));
  padding: 12px 14px; box-sizing: border-box; display: flex; flex-direction: column; gap: 4px; }
.panel:focus-visible { outline: 2px solid var(--tk-accent, #2563eb); outline-offset: 2px; }
.panel[data-kind="tile"], .panel[data-kind="tape"] { padding: 0; border: 0; background: none; }
.panel[data-level="warn"] { border-color: var(--lv-warn); box-shadow: inset 4px 0 0 var(--lv-warn); }
.panel[data-level="crit"] { border-color: var(--lv-crit); box-shadow: inset 4px 0 0 var(--lv-crit); }
.panel[data-level="ok"] { box-shadow: inset 4px 0 0 var(--lv-ok); }
.panel[data-level="info"] { box-shadow: inset 4px 0 0 var(--lv-info); }
h2 { margin: 0; font-size: .78rem; font-weight: 700; text-transform: uppercase; letter-spacing: .07em;
  color: var(--tk-muted, #6b7280); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
h2:empty { display: none; }
.big { font-size: 2rem; font-weight: 700; line-height: 1.15; border-radius: 6px; align-self: flex-start;
  margin: 0 -6px; padding: 0 6px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%; }
.big .unit, .gauge-value .unit { font-size: .55em; font-weight: 600; color: var(--tk-muted, #6b7280); margin-left: 4px; }
[data-tone="up"], [data-tone="ok"] { color: var(--lv-ok); } [data-tone="down"], [data-tone="crit"] { color: var(--lv-crit); }
[data-tone="warn"] { color: var(--lv-warn); } [data-tone="info"] { color: var(--lv-info); }
.sub { font-size: .78rem; color: var(--tk-muted, #6b7280); }
.sub:empty { display: none; }
/* A row as tall as its tallest panel: a value panel's sparkline takes what is left. */
.spark { display: block; width: 100%; flex: 1 1 36px; min-height: 36px; margin-top: 6px; color: var(--tk-accent, #2563eb); }
.tiles { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); }
.tape { overflow: hidden; border-radius: var(--tk-radius, 10px); white-space: nowrap;
  border: 1px solid var(--tk-border, color-mix(in srgb, currentColor 18%, transparent));
  background: var(--tk-surface, transparent); mask-image: linear-gradient(90deg, transparent, #000 4%, #000 96%, transparent); }
.tape-track { display: inline-flex; gap: 28px; padding: 9px 14px; animation: tape var(--tape-s, 30s) linear infinite; }
.tape:hover .tape-track, .tape:focus-within .tape-track { animation-play-state: paused; }
.tape-item { display: inline-flex; gap: 6px; align-items: baseline; }
.tape-item b { font-weight: 700; }
@keyframes tape { from { transform: translateX(0); } to { transform: translateX(-50%); } }
@media (prefers-reduced-motion: reduce) { .tape { overflow-x: auto; mask-image: none; } .tape-track { animation: none; } }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
.table-wrap { overflow-x: auto; }
th, td { padding: 4px 8px; text-align: right; white-space: nowrap;
  border-bottom: 1px solid var(--tk-border, color-mix(in srgb, currentColor 14%, transparent)); }
th:first-child, td:first-child { text-align: left; }
th button { all: unset; cursor: pointer; font-weight: 600; font-size: .8rem; color: var(--tk-muted, #6b7280); }
th button:focus-visible { outline: 2px solid var(--tk-accent, #2563eb); border-radius: 3px; }
th[aria-sort="ascending"] button::after { content: " ▲"; } th[aria-sort="descending"] button::after { content: " ▼"; }
td[data-tone="warn"] { font-weight: 600; } td[data-tone="crit"] { font-weight: 700; }
.chart svg { display: block; width: 100%; height: 180px; overflow: visible; }
.chart .axis { stroke: var(--tk-border, color-mix(in srgb, currentColor 20%, transparent)); stroke-width: 1; }
.chart text { fill: var(--tk-muted, #6b7280); font-size: 10px; }
.chart .line { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
.chart .limit { stroke-dasharray: 4 3; stroke-width: 1; }
.legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: .78rem; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 3px; margin-right: 5px; vertical-align: middle; background: var(--c); }
.gauge svg { display: block; width: 100%; max-width: 220px; height: auto; margin: 0 auto; }
.gauge .track { fill: none; stroke: color-mix(in srgb, currentColor 12%, transparent); stroke-width: 12; stroke-linecap: round; }
.gauge .fill { fill: none; stroke: var(--lv, var(--tk-accent, #2563eb)); stroke-width: 12; stroke-linecap: round; }
.gauge-value { text-align: center; font-size: 1.6rem; font-weight: 700; margin-top: -34px; }
.range { display: flex; justify-content: space-between; font-size: .72rem; color: var(--tk-muted, #6b7280); }
.bar-track { height: 14px; border-radius: 7px; background: color-mix(in srgb, currentColor 12%, transparent); overflow: hidden; }
.bar-fill { height: 100%; width: 0; background: var(--lv, var(--tk-accent, #2563eb)); }
ticker-tile[data-level="warn"] { --tk-border: var(--lv-warn); } ticker-tile[data-level="crit"] { --tk-border: var(--lv-crit); }
[data-level="warn"] { --lv: var(--lv-warn); } [data-level="crit"] { --lv: var(--lv-crit); } [data-level="ok"] { --lv: var(--lv-ok); }
.feeds { list-style: none; margin: 0; padding: 0; font-size: .88rem; }
.feeds li { padding: 6px 0; border-top: 1px solid var(--tk-border, color-mix(in srgb, currentColor 14%, transparent)); }
.feeds li:first-child { border-top: 0; }
.feeds .head { display: flex; gap: 8px; align-items: center; }
.pill { margin-left: auto; padding: 0 8px; border-radius: 999px; font-size: .7rem; font-weight: 700; text-transform: uppercase;
  background: color-mix(in srgb, currentColor 10%, transparent); }
.pill.running { color: var(--lv-ok); } .pill.backoff, .pill.starting, .pill.stale { color: var(--lv-warn); } .pill.failed { color: var(--lv-crit); }
.err { color: var(--lv-crit); font-size: .8rem; overflow-wrap: anywhere; }
.text p { margin: 0; color: var(--tk-muted, #6b7280); }
.text code { font: .9em ui-monospace, Menlo, Consolas, monospace; padding: 1px 5px; border-radius: 4px;
  background: color-mix(in srgb, currentColor 10%, transparent); color: var(--tk-text, inherit); }
.text strong { color: var(--tk-text, inherit); } .text a { color: var(--tk-accent, #2563eb); }
.text h2 { font-size: 1.05rem; text-transform: none; letter-spacing: 0; color: inherit; }
@media (max-width: 640px) {
  .grid { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .panel { grid-column: span min(var(--span, 1), 2); }
  .panel[data-kind="chart"], .panel[data-kind="table"], .panel[data-kind="tape"], .panel[data-kind="feeds"], .panel[data-kind="text"] { grid-column: 1 / -1; }
  .big { font-size: 1.5rem; }
}
`;

const COLORS = ['var(--tk-accent, #2563eb)', '#d97706', '#7c3aed', '#0d9488', '#db2777', '#65a30d', '#0891b2', '#9333ea'];

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

/** Which panels of an old and a new definition are "the same" (kept, updated in place). */
const identity = (p) => JSON.stringify([p.kind, p.topic ?? null, p.pattern ?? null]);

/**
 * One dashboard inside `host` (a <ticker-dashboard>): its shadow root holds
 * the banner, a live region and the panel grid.
 */
export class Board {
  constructor(host, api) {
    this.host = host;
    this.api = api;
    this.name = host.getAttribute('name');
    this.client = api.clientFor(host);
    this.panels = []; // [{def, key, view}]
    this.series = new Map(); // topic -> [{ts, seq, data}] oldest first: survives panel re-creation
    this.applied = 0;
    const root = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${CSS}</style>
      <div class="banner" role="alert" part="banner" hidden><strong>Config reload failed</strong> — the previous dashboards keep running.<pre></pre></div>
      <div class="sr" aria-live="polite" part="announce"></div>
      <div class="missing" part="missing" hidden></div>
      <div class="grid" part="grid"></div>`;
    this.$banner = root.querySelector('.banner');
    this.$announce = root.querySelector('.sr');
    this.$missing = root.querySelector('.missing');
    this.$grid = root.querySelector('.grid');
    this.offs = [];
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => {
      const cols = getComputedStyle(this.$grid).gridTemplateColumns.split(' ').filter(Boolean).length;
      if (cols !== this.layoutCols) this.layout();
    }) : null;
    this.resize?.observe(this.$grid);
  }

  start() {
    if (this.offs.length) return;
    this.offs.push(this.client.subscribe('$sys.dashboards', (u) => this.define(u.data?.[this.name] ?? null)));
    this.offs.push(this.client.subscribe('$sys.config', (u) => {
      const d = u.data ?? {};
      this.$banner.hidden = d.ok !== false;
      this.$banner.querySelector('pre').textContent = d.ok === false ? String(d.error ?? 'unknown error') : '';
      this.host.toggleAttribute('config-error', d.ok === false);
    }, { every: true }));
  }

  stop() {
    this.offs.forEach((off) => off());
    this.offs = [];
    for (const s of this.series.values()) s.off?.();
    this.series.clear();
    for (const p of this.panels) p.view.destroy();
    this.panels = [];
  }

  /** Panels out of view (plus a margin) skip their DOM work until they come back. */
  observe(view) {
    if (typeof IntersectionObserver !== 'function') return;
    this.views ??= new WeakMap();
    this.io ??= new IntersectionObserver((entries) => {
      for (const e of entries) this.views.get(e.target)?.setVisible(e.isIntersecting);
    }, { rootMargin: '200px' });
    this.views.set(view.root, view);
    this.io.observe(view.root);
  }

  unobserve(view) {
    this.io?.unobserve(view.root);
  }

  announce(text) {
    this.$announce.textContent = text;
  }

  /** Applies a definition: keeps panels that are the same, updates them, adds and removes the rest. */
  define(def) {
    this.$missing.hidden = !!def;
    if (!def) {
      this.lastDef = null;
      this.$missing.textContent = `No dashboard named “${this.name}”.`;
      for (const p of this.panels) { p.view.destroy(); p.view.root.remove(); }
      this.panels = [];
      return;
    }
    // Another dashboard's edit republishes every definition: skip ours if unchanged.
    const text = JSON.stringify(def);
    if (text === this.lastDef) return;
    this.lastDef = text;
    const first = this.applied === 0;
    this.host.dataset.title = def.title;
    this.host.dispatchEvent(new CustomEvent('definition', { detail: def }));
    this.$grid.style.setProperty('--cols', def.columns);
    const pool = new Map(); // identity -> [old panels in order]
    for (const p of this.panels) {
      const k = identity(p.def);
      if (!pool.has(k)) pool.set(k, []);
      pool.get(k).push(p);
    }
    const next = [];
    for (const [i, d] of def.panels.entries()) {
      const k = identity(d);
      const old = pool.get(k)?.shift();
      let p;
      if (old) {
        p = old;
        if (JSON.stringify(old.def) !== JSON.stringify(d)) p.view.configure(d);
        p.def = d;
      } else {
        const View = VIEWS[d.kind] ?? TextView;
        p = { def: d, view: new View(this, d) };
      }
      p.view.root.dataset.index = String(i + 1);
      next.push(p);
    }
    for (const rest of pool.values()) for (const p of rest) { p.view.destroy(); p.view.root.remove(); }
    // Re-order with the fewest moves: append in order (a node already in place stays).
    let cursor = this.$grid.firstChild;
    for (const p of next) {
      if (p.view.root === cursor) cursor = cursor.nextSibling;
      else this.$grid.insertBefore(p.view.root, cursor);
    }
    this.panels = next;
    this.layout();
    this.applied++;
    this.host.dataset.applied = String(this.applied);
    if (!first) this.announce(`Dashboard ${def.title} updated.`);
  }

  /**
   * Rows without holes (layout.js's `fillRows`): each panel takes its `span`
   * (a tape, a tile per topic of a pattern: the whole row; on a phone's two
   * columns also charts, tables, feeds and text), and the last panel of a row
   * reaches its end. Run on each definition and when the grid's column count
   * changes with the width.
   */
  layout() {
    const cols = getComputedStyle(this.$grid).gridTemplateColumns.split(' ').filter(Boolean).length || 1;
    this.layoutCols = cols;
    const narrow = cols <= 2;
    fillRows(this.panels.map(({ def, view }) => ({
      el: view.root,
      span: def.span ?? 1,
      full: def.kind === 'tape' || (def.kind === 'tile' && !!def.pattern && def.span === undefined)
        || (narrow && ['chart', 'table', 'feeds', 'text'].includes(def.kind)),
    })), cols);
    this.$grid.dataset.cols = String(cols);
  }

  /** The kept points of `topic` (shared by its charts); filled from the server's history once. */
  seriesOf(topic) {
    let s = this.series.get(topic);
    if (s) return s;
    s = { points: [], listeners: new Set(), off: null, loaded: false };
    this.series.set(topic, s);
    const load = () => fetch(this.client.url(`api/topics/${encodeURIComponent(topic)}/history?limit=10000`), { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : []))
      .catch(() => [])
      .then((list) => {
        const known = new Set(s.points.map((p) => p.seq));
        const older = list.filter((u) => !known.has(u.seq)).map((u) => ({ ts: u.ts, seq: u.seq, data: u.data }));
        s.points = [...older, ...s.points].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
        s.loaded = true;
        for (const l of s.listeners) l();
      });
    const add = (u) => {
      // The history is asked for once the topic is known to exist (its
      // snapshot came): a topic that is not there yet would be a 404.
      if (!s.asked) { s.asked = true; load(); }
      const last = s.points[s.points.length - 1];
      if (last && u.seq <= last.seq && u.ts <= last.ts) return;
      s.points.push({ ts: u.ts, seq: u.seq, data: u.data });
      if (s.points.length > 20000) s.points.splice(0, s.points.length - 20000);
      for (const l of s.listeners) l();
    };
    s.off = this.client.subscribe(topic, add, { every: true });
    return s;
  }
}

// ---------------------------------------------------------------------------
// Panels. Each view has `root` (its grid cell), `configure(def)` (apply a
// changed definition in place) and `destroy()` (unsubscribe).

class View {
  constructor(board, def) {
    this.board = board;
    this.api = board.api;
    this.client = board.client;
    this.root = el('section', 'panel');
    this.root.tabIndex = 0;
    this.$label = el('h2');
    this.root.append(this.$label);
    this.offs = [];
    this.held = [];
    this.visible = true;
    this.def = def;
    board.observe(this);
    this.build();
    this.configure(def);
  }

  build() {}

  configure(def) {
    this.def = def;
    this.root.dataset.kind = def.kind;
    // Without `span`, a tape and a tile per topic of a pattern take the whole row.
    const wide = def.kind === 'tape' || (def.kind === 'tile' && def.pattern);
    this.root.style.setProperty('--span', def.span ?? (wide ? 99 : 1));
    this.$label.textContent = def.label ?? '';
    this.root.setAttribute('aria-label', def.label ?? def.topic ?? def.pattern ?? def.kind);
    this.seen = false;
    this.apply();
    this.probe();
  }

  apply() {}

  /**
   * Says under the panel's content why it shows nothing: `kind` 'topic' ("no
   * topic stocks.APPL yet") or 'field' ("no field pirce in stocks.AAPL"); a
   * typo would otherwise show "—" forever. `null` hides it.
   */
  note(text, kind = null) {
    if (!text && !this.$note) return;
    if (!this.$note) {
      this.$note = el('p', 'note');
      this.$note.setAttribute('part', 'note');
      this.root.append(this.$note);
    }
    if (this.$note.textContent !== (text ?? '')) this.$note.textContent = text ?? '';
    this.$note.hidden = !text;
    this.noteKind = text ? kind : null;
  }

  /**
   * Asks the server once whether the panel's topic (or a topic of its
   * pattern) exists; when none does and no update came meanwhile, says so.
   * The first update takes the note away (`saw`).
   */
  async probe() {
    const d = this.def;
    const gen = (this.probes = (this.probes ?? 0) + 1);
    if (this.noteKind === 'topic') this.note(null);
    if (d.kind === 'feeds' || d.kind === 'text' || (!d.topic && !d.pattern)) return;
    // The list route, also for one topic (a pattern without wildcards): an
    // empty list is not an error, where a 404 would be one in the console.
    const path = `api/topics?pattern=${encodeURIComponent(d.topic ?? d.pattern)}`;
    let missing;
    try {
      const r = await fetch(this.client.url(path), { cache: 'no-store' });
      missing = r.ok && (await r.json()).length === 0;
    } catch {
      return; // offline: the connection state says so already
    }
    if (!missing || this.seen || gen !== this.probes) return;
    this.note(d.topic ? `no topic ${d.topic} yet` : `no topic matches ${d.pattern} yet`, 'topic');
  }

  /** An update of the panel's topic came: a "no topic" note is over. */
  saw() {
    this.seen = true;
    if (this.noteKind === 'topic') this.note(null);
  }

  /** Notes each of `fields` that update `u` lacks (a value of `null` is there). */
  checkFields(u, fields = [this.def.field]) {
    const missing = fields.filter((f) => f && this.api.pick(u.data, f) === undefined);
    if (missing.length) this.note(`no field ${missing.join(', ')} in ${u.topic}`, 'field');
    else if (this.noteKind === 'field') this.note(null);
  }

  /**
   * Subscribes `cb`. While the panel is scrolled out of view, conflated
   * updates are only kept (the latest per topic) and rendered when it comes
   * back: a wall of 300 panels pays for the ones on screen.
   */
  sub(what, cb, opts) {
    if (opts?.every) {
      this.offs.push(this.client.subscribe(what, (u) => { this.saw(); cb(u); }, opts));
      return;
    }
    const held = new Map(); // topic -> latest update while hidden
    this.held.push([cb, held]);
    this.offs.push(this.client.subscribe(what, (u) => {
      this.saw();
      if (this.visible) cb(u);
      else held.set(u.topic, u);
    }));
  }

  /** Called by the board's IntersectionObserver. */
  setVisible(v) {
    this.visible = v;
    if (!v) return;
    for (const [cb, held] of this.held) {
      for (const u of held.values()) cb(u);
      held.clear();
    }
    this.shown?.();
  }

  /** Drops the panel's subscriptions (before it subscribes anew). */
  release() {
    this.offs.forEach((off) => off());
    this.offs = [];
    this.held = [];
  }

  /** The panel is gone for good. */
  destroy() {
    this.release();
    this.board.unobserve(this);
  }

  fmt(v, key) {
    return this.api.format(v, this.def.format ?? 'auto', key ?? this.def.field?.split(/[./]/).pop());
  }

  /** Sets the panel's level from `value`, announcing a change into or out of warn/crit. */
  level(value, node = this.root) {
    const lv = this.api.levelOf(value, this.def.thresholds);
    const before = node.dataset.level ?? null;
    if (lv === before) return;
    if (lv) node.dataset.level = lv; else delete node.dataset.level;
    if (node === this.root && before !== undefined && (lv === 'warn' || lv === 'crit' || before === 'warn' || before === 'crit')) {
      this.board.announce(`${this.def.label ?? this.def.topic}: ${lv ?? 'normal'}, ${this.fmt(value)}${this.def.unit ? ` ${this.def.unit}` : ''}`);
    }
  }
}

class ValueView extends View {
  build() {
    this.$big = el('div', 'big');
    this.$num = el('span', '', '—');
    this.$unit = el('span', 'unit');
    this.$big.append(this.$num, this.$unit);
    this.$sub = el('div', 'sub');
    // As a stat panel's: the value's recent history under it, filling what a
    // taller row leaves (a number alone in a tall panel is mostly empty).
    this.$spark = svg('svg', { class: 'spark', 'aria-hidden': 'true' });
    this.root.append(this.$big, this.$sub, this.$spark);
  }

  apply() {
    this.release();
    this.last = undefined;
    this.$sub.textContent = this.def.label ? '' : this.def.topic;
    this.$unit.textContent = this.def.unit ?? '';
    this.$unit.hidden = !this.def.unit;
    this.sub(this.def.topic, (u) => this.render(u));
    if (this.series?.listeners) this.series.listeners.delete(this.listener);
    this.series = this.board.seriesOf(this.def.topic);
    this.listener = () => this.queue();
    this.series.listeners.add(this.listener);
    this.draw();
  }

  /** Redraws the sparkline at most four times a second. */
  queue() {
    if (this.queued) return;
    this.queued = true;
    setTimeout(() => { this.queued = false; this.draw(); }, 250);
  }

  shown() {
    this.draw();
  }

  destroy() {
    super.destroy();
    this.series?.listeners.delete(this.listener);
  }

  /** The last 240 charted values (none for a timestamp or text): the shared series, backfilled from history. */
  draw() {
    if (!this.series || !this.visible) return;
    const values = [];
    for (const p of this.series.points.slice(-240)) {
      const v = this.api.chartValue(p.data, this.def.field);
      if (v !== undefined) values.push(v);
    }
    this.api.sparkline(this.$spark, values);
    this.$spark.style.display = values.length > 1 ? '' : 'none';
    this.root.dataset.points = String(values.length);
  }

  render(u) {
    const v = this.api.pick(u.data, this.def.field);
    this.checkFields(u);
    const text = this.fmt(v);
    if (this.$num.textContent !== text) this.$num.textContent = text;
    if (typeof v === 'number' && typeof this.last === 'number' && v !== this.last) this.api.flash(this.$big, v - this.last);
    this.api.paintTone(this.$num, v, this.def.field, this.def.thresholds);
    this.last = v;
    this.level(v);
    this.root.dataset.seq = u.seq;
  }
}

class TileView extends View {
  build() {
    this.$tiles = el('div', 'tiles');
    this.root.append(this.$tiles);
    this.tiles = new Map();
    this.unEven = keepEven(this.$tiles, { min: () => (innerWidth <= 520 ? 140 : 170), gap: 12, maxWidth: 320 });
  }

  destroy() {
    super.destroy();
    this.unEven();
  }

  apply() {
    this.release();
    this.$tiles.textContent = '';
    this.tiles = new Map();
    const d = this.def;
    if (d.topic) this.add(d.topic);
    // Subscribed here too (the tile element has its own subscription): the
    // panel's level, its "no topic yet" note and a missing `field`.
    this.sub(d.topic ?? d.pattern, (u) => {
      if (!d.topic && !this.tiles.has(u.topic)) this.add(u.topic);
      this.levelOf(u);
      this.checkFields(u);
    });
  }

  levelOf(u) {
    const t = this.tiles.get(u.topic);
    if (t && this.def.thresholds?.length) this.level(this.api.chartValue(u.data, this.def.field), t);
  }

  add(topic) {
    const t = document.createElement('ticker-tile');
    t.setAttribute('topic', topic);
    t.thresholds = this.def.thresholds; // its value's tone is their level
    for (const a of ['field', 'format']) if (this.def[a]) t.setAttribute(a, this.def[a]);
    if (this.def.topic && this.def.label) t.setAttribute('label', this.def.label);
    const server = this.board.host.getAttribute('server');
    const token = this.board.host.getAttribute('token');
    if (server) t.setAttribute('server', server);
    if (token) t.setAttribute('token', token);
    this.tiles.set(topic, t);
    const next = [...this.tiles.keys()].sort().find((k) => k > topic);
    this.$tiles.insertBefore(t, next ? this.tiles.get(next) : null);
  }
}

class TableView extends View {
  build() {
    const wrap = el('div', 'table-wrap');
    this.$table = el('table');
    this.$head = el('tr');
    const thead = el('thead');
    thead.append(this.$head);
    this.$body = el('tbody');
    this.$table.append(thead, this.$body);
    wrap.append(this.$table);
    this.root.append(wrap);
    this.sort = { col: 0, dir: 1 };
  }

  apply() {
    this.release();
    this.rows = new Map();
    this.$body.textContent = '';
    this.cols = this.def.columns ?? null;
    this.header();
    this.sub(this.def.topic ?? this.def.pattern, (u) => this.render(u));
  }

  header() {
    this.$head.textContent = '';
    if (!this.cols) return;
    this.cols.forEach((c, i) => {
      const th = el('th');
      const b = el('button', '', c.replace(/_(pct|percent)$/, ' %').replace(/[_-]+/g, ' '));
      b.type = 'button';
      b.title = `Sort by ${c}`;
      b.addEventListener('click', () => {
        this.sort = { col: i, dir: this.sort.col === i ? -this.sort.dir : 1 };
        this.header();
        this.resort();
      });
      th.append(b);
      if (this.sort.col === i) th.setAttribute('aria-sort', this.sort.dir > 0 ? 'ascending' : 'descending');
      this.$head.append(th);
    });
  }

  value(u, c) {
    if (c === 'topic') return u.topic;
    if (c === 'value' && (u.data === null || typeof u.data !== 'object')) return u.data;
    return this.api.pick(u.data, c);
  }

  render(u) {
    if (!this.cols) {
      const d = u.data;
      this.cols = ['topic', ...(d && typeof d === 'object' && !Array.isArray(d) ? Object.keys(d) : ['value'])];
      this.header();
    }
    let row = this.rows.get(u.topic);
    if (!row) {
      const tr = el('tr');
      tr.dataset.topic = u.topic;
      row = { tr, cells: this.cols.map(() => tr.appendChild(el('td'))), values: [] };
      this.rows.set(u.topic, row);
      this.$body.append(tr);
    }
    const before = row.values[this.sort.col];
    this.cols.forEach((c, i) => {
      const v = this.value(u, c);
      const text = c === 'topic' ? v : this.api.format(v, this.def.format && c === this.def.field ? this.def.format : 'auto', c);
      const td = row.cells[i];
      if (td.textContent !== text) td.textContent = text;
      const thresholds = !this.def.field || c === this.def.field ? this.def.thresholds : undefined;
      this.api.paintTone(td, v, c, thresholds);
      const prev = row.values[i];
      if (typeof v === 'number' && typeof prev === 'number' && prev !== v) this.api.flash(td, v - prev);
      row.values[i] = v;
    });
    if (row.values[this.sort.col] !== before) this.queueSort();
  }

  queueSort() {
    if (this.sortQueued) return;
    this.sortQueued = true;
    setTimeout(() => { this.sortQueued = false; this.resort(); }, 500);
  }

  resort() {
    const { col, dir } = this.sort;
    const rows = [...this.rows.values()];
    const cmp = (a, b) => {
      const x = a.values[col];
      const y = b.values[col];
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
      return String(x ?? '').localeCompare(String(y ?? '')) * dir;
    };
    rows.sort(cmp);
    let cursor = this.$body.firstChild;
    for (const r of rows) {
      if (r.tr === cursor) cursor = cursor.nextSibling;
      else this.$body.insertBefore(r.tr, cursor);
    }
  }
}

class TapeView extends View {
  build() {
    this.$tape = el('div', 'tape');
    this.$track = el('div', 'tape-track');
    this.$tape.append(this.$track);
    this.root.append(this.$tape);
  }

  apply() {
    this.release();
    this.items = new Map();
    this.$track.textContent = '';
    this.sub(this.def.pattern, (u) => this.render(u));
  }

  render(u) {
    let it = this.items.get(u.topic);
    if (!it) {
      // Two copies of every item: the track scrolls by half its width, seamlessly.
      const make = () => {
        const span = el('span', 'tape-item');
        const name = el('b', '', typeof u.data?.symbol === 'string' ? u.data.symbol : u.topic.split('.').pop());
        const val = el('span', 'val');
        const chg = el('span', 'chg');
        span.append(name, val, chg);
        return { span, val, chg };
      };
      it = { a: make(), b: make(), last: undefined };
      it.b.span.setAttribute('aria-hidden', 'true');
      this.items.set(u.topic, it);
      // The track holds every first copy, then every second copy, each sorted.
      const order = [...this.items.keys()].sort();
      const after = order[order.indexOf(u.topic) + 1];
      const firstOther = order.find((k) => k !== u.topic);
      const bStart = firstOther ? this.items.get(firstOther).b.span : null;
      this.$track.insertBefore(it.a.span, after ? this.items.get(after).a.span : bStart);
      this.$track.insertBefore(it.b.span, after ? this.items.get(after).b.span : null);
      this.$track.style.setProperty('--tape-s', `${Math.max(15, this.items.size * 4)}s`);
    }
    const field = this.def.field;
    this.checkFields(u);
    const key = this.api.describe(u.data, field).key;
    const v = field ? this.api.pick(u.data, field) : this.api.chartValue(u.data);
    // The tiles' rule (changeOf): the value's own change, else the move over
    // the updates the client holds of the topic.
    const own = typeof u.data?.change === 'number'; // then the history is not needed
    const points = own ? [] : this.client.history(u.topic).map((h) => [h.ts, this.api.chartValue(h.data, field)]).filter((p) => p[1] !== undefined);
    const chg = this.api.changeOf(u.data, key, points);
    const text = `${this.fmt(v, field ?? 'price')}${this.def.unit ? ` ${this.def.unit}` : ''}`;
    const change = this.api.formatChange(chg, v);
    for (const c of [it.a, it.b]) {
      if (c.val.textContent !== text) c.val.textContent = text;
      if (c.chg.textContent !== change) c.chg.textContent = change;
      this.api.paintTone(c.chg, chg?.change, 'change');
    }
  }
}

class ChartView extends View {
  build() {
    this.$svg = svg('svg', { role: 'img' });
    this.$legend = el('div', 'legend');
    this.root.classList.add('chart');
    this.root.append(this.$svg, this.$legend);
    this.width = 600;
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver((e) => {
      const w = Math.round(e[0].contentRect.width);
      if (w > 0 && w !== this.width) { this.width = w; this.draw(); }
    }) : null;
    this.resize?.observe(this.$svg);
    this.timer = setInterval(() => this.draw(), 1000); // the time axis moves on with no update
  }

  apply() {
    if (this.series?.listeners) this.series.listeners.delete(this.listener);
    this.series = this.board.seriesOf(this.def.topic);
    this.listener = () => this.queue();
    this.series.listeners.add(this.listener);
    if (this.series.points.length) this.saw();
    this.fields = this.def.fields ?? [this.def.field];
    this.$legend.textContent = '';
    if (this.fields.length > 1) {
      this.fields.forEach((f, i) => {
        const s = el('span', '', this.api.label(f));
        s.style.setProperty('--c', COLORS[i % COLORS.length]);
        this.$legend.append(s);
      });
    }
    this.$svg.setAttribute('aria-label', `${this.def.label ?? this.def.topic}: chart of ${this.fields.join(', ')} over ${Math.round(this.def.window_ms / 60000) || 1} min`);
    this.draw();
  }

  /** Redraws at most four times a second: a line over minutes needs no more. */
  queue() {
    if (this.queued) return;
    this.queued = true;
    setTimeout(() => requestAnimationFrame(() => { this.queued = false; this.draw(); }), 250);
  }

  destroy() {
    super.destroy();
    clearInterval(this.timer);
    this.resize?.disconnect();
    this.series?.listeners.delete(this.listener);
  }

  shown() {
    this.draw();
  }

  draw() {
    if (!this.series || !this.visible) return;
    const W = this.width;
    const H = 180;
    const pad = { l: 48, r: 8, t: 8, b: 18 };
    const now = Date.now();
    const from = now - this.def.window_ms;
    const pts = this.series.points.filter((p) => p.ts >= from);
    this.root.dataset.points = String(pts.length);
    const latest = this.series.points[this.series.points.length - 1];
    if (latest) {
      this.saw();
      this.checkFields({ topic: this.def.topic, data: latest.data }, this.fields);
    }
    const lines = this.fields.map((f) => pts.map((p) => [p.ts, this.api.pick(p.data, f)]).filter(([, v]) => typeof v === 'number' && Number.isFinite(v)));
    let lo = this.def.min ?? Infinity;
    let hi = this.def.max ?? -Infinity;
    if (this.def.min === undefined || this.def.max === undefined) {
      for (const l of lines) for (const [, v] of l) {
        if (this.def.min === undefined && v < lo) lo = v;
        if (this.def.max === undefined && v > hi) hi = v;
      }
    }
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= Math.abs(lo) * 0.01 || 1; hi += Math.abs(hi) * 0.01 || 1; }
    const x = (t) => pad.l + ((t - from) / (now - from)) * (W - pad.l - pad.r);
    const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (H - pad.t - pad.b);
    const parts = [];
    this.$svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    parts.push(svg('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
    // time axis: ticks at a round step giving about 5 labels
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400].map((s) => s * 1000);
    const step = steps.find((s) => (now - from) / s <= 6) ?? steps[steps.length - 1];
    for (let t = Math.ceil(from / step) * step; t <= now; t += step) {
      const tx = x(t);
      parts.push(svg('line', { class: 'axis', x1: tx, x2: tx, y1: H - pad.b, y2: H - pad.b + 4 }));
      const label = svg('text', { x: tx, y: H - 4, 'text-anchor': 'middle' });
      const d = new Date(t);
      label.textContent = step >= 60000
        ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false })
        : d.toLocaleTimeString(undefined, { hour12: false });
      parts.push(label);
    }
    for (const [v, anchor] of [[hi, pad.t + 8], [lo, H - pad.b - 2]]) {
      const t = svg('text', { x: pad.l - 6, y: anchor, 'text-anchor': 'end' });
      t.textContent = this.fmt(v, this.fields[0]);
      parts.push(t);
    }
    for (const th of this.def.thresholds ?? []) {
      const v = th.above ?? th.below;
      if (v > lo && v < hi) {
        parts.push(svg('line', { class: 'limit', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), stroke: `var(--lv-${th.level})` }));
      }
    }
    lines.forEach((l, i) => {
      if (!l.length) return;
      let d = '';
      for (const [t, v] of l) d += `${d ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`;
      parts.push(svg('path', { class: 'line', d, stroke: COLORS[i % COLORS.length], 'data-field': this.fields[i] }));
    });
    this.$svg.replaceChildren(...parts);
    const last = lines[0]?.[lines[0].length - 1]?.[1];
    if (last !== undefined) this.level(last);
  }
}

class GaugeView extends View {
  build() {
    const bar = this.def.kind === 'bar';
    this.root.classList.add(bar ? 'bar' : 'gauge');
    if (bar) {
      this.$value = el('div', 'big', '—');
      const track = el('div', 'bar-track');
      this.$fill = el('div', 'bar-fill');
      track.append(this.$fill);
      this.root.append(this.$value, track);
    } else {
      this.$svg = svg('svg', { viewBox: '0 0 120 70', 'aria-hidden': 'true' });
      const arc = 'M10 62 A50 50 0 0 1 110 62';
      this.$svg.append(svg('path', { class: 'track', d: arc }), (this.$arc = svg('path', { class: 'fill', d: arc, pathLength: '100', 'stroke-dasharray': '100', 'stroke-dashoffset': '100' })));
      this.$value = el('div', 'gauge-value', '—');
      this.root.append(this.$svg, this.$value);
    }
    this.$range = el('div', 'range');
    this.root.append(this.$range);
  }

  apply() {
    this.release();
    const lo = this.def.min ?? 0;
    const hi = this.def.max ?? 100;
    this.$range.replaceChildren(el('span', '', this.fmt(lo)), el('span', '', this.fmt(hi)));
    this.sub(this.def.topic, (u) => this.render(u));
  }

  render(u) {
    const v = this.api.pick(u.data, this.def.field);
    const lo = this.def.min ?? 0;
    const hi = this.def.max ?? 100;
    const frac = typeof v === 'number' ? Math.max(0, Math.min(1, (v - lo) / (hi - lo))) : 0;
    this.checkFields(u);
    this.$value.textContent = this.fmt(v);
    if (this.def.unit) this.$value.append(el('span', 'unit', this.def.unit));
    this.api.paintTone(this.$value, v, this.def.field, this.def.thresholds);
    if (this.$arc) this.$arc.setAttribute('stroke-dashoffset', String(100 - frac * 100));
    if (this.$fill) this.$fill.style.width = `${(frac * 100).toFixed(1)}%`;
    this.root.setAttribute('aria-valuenow', String(v));
    this.level(v);
    this.root.dataset.seq = u.seq;
  }
}

class FeedsView extends View {
  build() {
    this.$list = el('ul', 'feeds');
    this.root.append(this.$list);
    this.feeds = new Map();
    this.onHello = () => this.load();
    this.client.addEventListener('hello', this.onHello);
    this.timer = setInterval(() => { if (this.client.state === 'live' && !document.hidden) this.load(); }, 5000);
  }

  apply() {
    this.release();
    if (!this.def.label) this.$label.textContent = 'Feeds';
    this.sub('$sys.feeds', (u) => {
      if (u.data?.feed) { this.feeds.set(u.data.feed, u.data); this.render(); }
    }, { every: true });
    this.load();
  }

  destroy() {
    super.destroy();
    clearInterval(this.timer);
    this.client.removeEventListener('hello', this.onHello);
  }

  async load() {
    try {
      const r = await fetch(this.client.url('api/feeds'), { cache: 'no-store' });
      if (!r.ok) return;
      for (const f of await r.json()) this.feeds.set(f.feed, f);
      this.render();
    } catch { /* offline */ }
  }

  render() {
    const api = this.api;
    const pat = this.def.pattern;
    const mine = [...this.feeds.values()].filter((f) => !pat || api.matches(pat, f.feed));
    const items = api.feedsByHealth(mine, this.def.show)
      .map((f) => {
        const li = el('li');
        li.dataset.feed = f.feed;
        li.dataset.state = f.state;
        const stale = f.stale && f.state !== 'stopped';
        const head = el('div', 'head');
        head.append(el('b', '', f.feed), el('span', 'sub', f.kind), el('span', `pill ${stale ? 'stale' : f.state}`, stale ? 'stale' : f.state));
        const bits = [`${api.format(f.updates, 'number')} updates`, `${api.format(f.errors, 'number')} errors`];
        if (f.last_ok) bits.push(`last ok ${api.formatAgo(f.last_ok)}`);
        li.append(head, el('div', 'sub', bits.join(' · ')));
        if (f.error && f.state !== 'running') li.append(el('div', 'err', f.error));
        return li;
      });
    this.$list.replaceChildren(...items);
  }
}

class TextView extends View {
  build() {
    this.root.classList.add('text');
    this.$text = el('p');
    this.root.append(this.$text);
    this.root.removeAttribute('tabindex');
  }

  apply() {
    this.$text.replaceChildren(...inline(this.def.text ?? ''));
    this.$text.hidden = !this.def.text;
  }
}

/**
 * A text panel's note as nodes: `inline code`, **bold** and [links](url),
 * the rest as text (never HTML: a dashboard file cannot inject markup). A
 * link's URL must be http(s) or relative; another scheme stays text.
 */
export function inline(text) {
  const out = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) out.push(document.createTextNode(text.slice(at, m.index)));
    if (m[1] !== undefined) out.push(el('code', '', m[1]));
    else if (m[2] !== undefined) out.push(el('strong', '', m[2]));
    else if (/^https?:\/\//i.test(m[4]) || !/^[^/?#]*:/.test(m[4])) {
      const a = el('a', '', m[3]);
      a.href = m[4];
      out.push(a);
    } else out.push(document.createTextNode(m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}

const VIEWS = {
  value: ValueView,
  tile: TileView,
  table: TableView,
  tape: TapeView,
  chart: ChartView,
  gauge: GaugeView,
  bar: GaugeView,
  feeds: FeedsView,
  text: TextView,
};
