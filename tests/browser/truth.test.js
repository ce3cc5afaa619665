// Dashboards that tell the truth at a glance (issue #27), on the real pages:
// the shipped dashboards (dashboards/*.toml) and /auto, in headless Chromium
// against the real tickerd binary. Colours follow meaning (sign or threshold
// level, never the last tick), "change" means one thing, first paint is full
// from the retained history, rows leave no holes, and the small lies (text
// markup, timestamps, feed order, /d/nope) are gone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.js';

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

const SYMBOLS = ['AAPL', 'MSFT', 'GOOG', 'AMZN', 'NVDA', 'TSLA', 'META', 'NFLX'];

/** The demo config with the shipped config's eight symbols, plus `extra` feeds. */
function config(extraServer = '', extraFeeds = '') {
  return h.demoConfig(extraServer).replace(/symbols = \[[^\]]*\]/, `symbols = ${JSON.stringify(SYMBOLS)}`) + extraFeeds;
}

/** The names of the shipped dashboards (dashboards/*.toml) and `more`, sorted: what /d/nope lists. */
function shippedDashboards(more) {
  const shipped = fs.readdirSync(path.join(h.ROOT, 'dashboards')).filter((f) => f.endsWith('.toml')).map((f) => f.slice(0, -5));
  return [...shipped, ...more].sort();
}

/** tickerd with the shipped dashboards (and `more`, NAME -> TOML) in its dashboards dir. */
async function start(t, { server = '', feeds = '', more = {} } = {}) {
  const dir = h.tempDir();
  const dash = path.join(dir, 'dashboards');
  fs.mkdirSync(dash);
  for (const f of fs.readdirSync(path.join(h.ROOT, 'dashboards'))) fs.copyFileSync(path.join(h.ROOT, 'dashboards', f), path.join(dash, f));
  for (const [name, text] of Object.entries(more)) fs.writeFileSync(path.join(dash, `${name}.toml`), text);
  const s = await h.Tickerd.start({ config: config(server, feeds), dir });
  t.after(async () => { await s.stop(); s.cleanup(); });
  return s;
}

async function publish(s, topic, data) {
  const r = await fetch(`${s.origin}/api/publish/${topic}`, {
    method: 'POST', headers: { authorization: 'Bearer pub', 'content-type': 'application/json' }, body: JSON.stringify(data),
  });
  assert.equal(r.status, 200);
}

/** The tone a number's text should have: its sign for a change, else neutral. */
const sign = (text) => {
  const n = Number((/[-+]?\d[\d,]*(\.\d+)?/.exec(String(text))?.[0] ?? '0').replace(/,/g, ''));
  return n > 0 ? 'up' : n < 0 ? 'down' : 'neutral';
};

/** Every [text, tone, column] of the markets table and every tile's [value tone, change text, change tone, the data's change]. */
function readMarkets(page) {
  return page.evaluate(() => {
    const root = document.querySelector('ticker-dashboard').shadowRoot;
    const heads = [...root.querySelectorAll('.panel[data-kind="table"] th')].map((th) => th.querySelector('button').title.replace('Sort by ', ''));
    const cells = [...root.querySelectorAll('.panel[data-kind="table"] tbody tr')].flatMap((tr) =>
      [...tr.children].map((td, i) => [td.textContent, td.dataset.tone, heads[i]]));
    const tiles = [...root.querySelectorAll('ticker-tile')].map((t) => {
      const s = t.shadowRoot;
      const latest = window.tickerd.latest(t.getAttribute('topic'));
      return {
        topic: t.getAttribute('topic'),
        shown: Number(t.dataset.seq),
        seq: latest?.seq,
        value: s.querySelector('.value').dataset.tone,
        change: s.querySelector('.change').textContent,
        changeTone: s.querySelector('.change').dataset.tone,
        data: latest?.data,
      };
    });
    const tape = [...root.querySelectorAll('.tape-item:not([aria-hidden]) .chg')].map((c) => [c.textContent, c.dataset.tone]);
    const msft = root.querySelector('.panel[data-kind="value"] .big span');
    return { cells, tiles, tape, msft: [msft.textContent, msft.dataset.tone] };
  });
}

/** Proves: on /d/markets, /d/host and /auto a value's colour is its sign (change fields) or threshold level, in both themes, and neutral otherwise (prices, memory, uptime); the tick flash is a neutral tint, never green or red. */
test('colour follows meaning, not the last tick', async (t) => {
  const s = await start(t);
  for (const scheme of ['light', 'dark']) {
    const page = await h.newPage(browser, { viewport: { width: 1400, height: 1000 }, colorScheme: scheme });
    await page.goto(`${s.origin}/d/markets`);
    await h.eventually('table rows and tiles', async () => {
      const m = await readMarkets(page);
      return m.cells.length === SYMBOLS.length * 4 && m.tiles.length === SYMBOLS.length && m.tiles.every((x) => x.value);
    });
    // Several reads as values move: each must agree with itself.
    for (let round = 0; round < 5; round++) {
      const m = await readMarkets(page);
      for (const [text, tone, col] of m.cells) {
        const want = col === 'change' || col === 'change_pct' ? sign(text) : 'neutral';
        assert.equal(tone, want, `${scheme}: table ${col} ${text}`);
      }
      for (const x of m.tiles) {
        assert.equal(x.value, 'neutral', `${scheme}: ${x.topic}'s price is neutral`);
        assert.equal(x.changeTone, sign(x.change), `${scheme}: ${x.topic} change ${x.change}`);
      }
      for (const [text, tone] of m.tape) assert.equal(tone, sign(text), `${scheme}: tape ${text}`);
      const [text, tone] = m.msft;
      const v = Number(text.replace(/[^\d.-]/g, ''));
      assert.equal(tone, v < -3 ? 'crit' : v < -1 ? 'warn' : 'neutral', `${scheme}: MSFT today ${text} by its thresholds`);
      await page.waitForTimeout(150); // let values move between reads (not a wait for a condition)
    }
    // The flash: a neutral tint of the text's own colour.
    const tint = await page.evaluate(async () => {
      const { flash } = await import('/tickerd.js');
      const e = document.createElement('span');
      document.body.append(e);
      flash(e, -1);
      return e.style.backgroundColor;
    });
    assert.match(tint, /currentcolor/i);
    await page.goto(`${s.origin}/d/host`);
    const host = () => page.evaluate(() => {
      const root = document.querySelector('ticker-dashboard').shadowRoot;
      const tone = (label) => [...root.querySelectorAll('.panel')].find((p) => p.querySelector('h2').textContent === label)?.querySelector('[data-tone]')?.dataset.tone;
      const cpu = root.querySelector('.panel[data-kind="gauge"] .gauge-value');
      return { mem: tone('Memory used'), up: tone('Uptime'), cpu: [cpu.textContent, cpu.dataset.tone] };
    });
    const hv = await h.eventually('host values', async () => { const x = await host(); return x.mem && x.up && x.cpu[1] && x; });
    assert.equal(hv.mem, 'neutral');
    assert.equal(hv.up, 'neutral');
    const cpu = Number(hv.cpu[0].replace('%', ''));
    assert.equal(hv.cpu[1], cpu > 95 ? 'crit' : cpu > 80 ? 'warn' : 'neutral');
    await page.goto(`${s.origin}/auto`);
    await h.eventually('auto tiles agree', async () => {
      const tiles = await page.evaluate(() => [...document.querySelectorAll('ticker-tile[topic^="stocks."]')].map((e) => {
        const sr = e.shadowRoot;
        return [sr.querySelector('.value').dataset.tone, sr.querySelector('.change').textContent, sr.querySelector('.change').dataset.tone];
      }));
      return tiles.length === SYMBOLS.length && tiles.every(([v, c, ct]) => v === 'neutral' && ct === sign(c));
    });
    assert.deepEqual(page.errors, []);
    await page.close();
  }
});

/** Proves: a tile on `price` shows the value's own `change` (the number the table's change column shows), not the last tick's move, on /d/markets and /auto; without a `change` field the tile says the change is over the points it draws. */
test("a tile's change is the value's change field", async (t) => {
  const s = await start(t, { server: 'publish_token = "pub"', more: { plain: 'title = "Plain"\n[[panel]]\nkind = "tile"\ntopic = "plain.x"\nfield = "v"\n' } });
  for (const url of ['/d/markets', '/auto']) {
    const page = await h.newPage(browser, { viewport: { width: 1400, height: 1000 } });
    await page.goto(`${s.origin}${url}`);
    await h.eventually(`${url}: every stock tile shows its value's change`, async () => {
      const tiles = await page.evaluate(() => {
        const scope = document.querySelector('ticker-dashboard')?.shadowRoot ?? document;
        return [...scope.querySelectorAll('ticker-tile[topic^="stocks."]')].map((e) => {
          const latest = window.tickerd.latest(e.getAttribute('topic'));
          return { shown: Number(e.dataset.seq), seq: latest?.seq, data: latest?.data, text: e.shadowRoot.querySelector('.change').textContent };
        });
      });
      if (tiles.length !== SYMBOLS.length) return false;
      for (const x of tiles) {
        if (x.shown !== x.seq) return false; // a newer update is on its way to the tile: read again
        const { change, change_pct: pct } = x.data;
        const want = `${change > 0 ? '▲' : change < 0 ? '▼' : ''} ${change > 0 ? '+' : ''}${change.toFixed(2)} (${pct > 0 ? '+' : ''}${pct.toFixed(2)}%)`;
        assert.equal(x.text.replace(/,/g, ''), want, `${url}: tile ${x.data.symbol}`);
      }
      return true;
    });
    assert.deepEqual(page.errors, []);
    await page.close();
  }
  // No change field: the change over what the tile draws, labelled so.
  for (const v of [10, 11, 12.5]) await publish(s, 'plain.x', { v });
  const page = await h.newPage(browser);
  await page.goto(`${s.origin}/d/plain`);
  await h.eventually('the change over the window', async () =>
    /^▲ \+2\.50 \(\+25\.00%\) over \d+s$/.test(await page.locator('ticker-dashboard ticker-tile .change').textContent()));
  await page.close();
});

/** The first-paint dashboard: tiles over a pattern, a chart and a value (its sparkline) of quiet topics (no updates while the page is open). */
const FIRST = `title = "First paint"
[[panel]]
kind = "tile"
pattern = "quiet.*"
field = "price"
[[panel]]
kind = "chart"
topic = "quiet.a"
field = "price"
window = "10m"
[[panel]]
kind = "value"
topic = "quiet.b"
field = "price"
`;

/** Proves: tiles (dashboard and /auto), charts and value sparklines are drawn full on first paint, from the topic's retained history: their point counts equal the updates the server retains, with no live update after the page opened. */
test('first paint is full from the retained history', async (t) => {
  const s = await start(t, { server: 'publish_token = "pub"', more: { first: FIRST } });
  for (let i = 0; i < 30; i++) {
    await publish(s, 'quiet.a', { price: 100 + (i % 5) });
    await publish(s, 'quiet.b', { price: 50 + (i % 3) });
  }
  const page = await h.newPage(browser, { viewport: { width: 1400, height: 900 } });
  await page.goto(`${s.origin}/d/first`);
  const points = () => page.evaluate(() => {
    const root = document.querySelector('ticker-dashboard').shadowRoot;
    const panels = ['chart', 'value'].map((k) => root.querySelector(`.panel[data-kind="${k}"]`));
    return [...root.querySelectorAll('ticker-tile'), ...panels].map((e) => e?.dataset.points);
  });
  await h.eventually('30 points in both tiles, the chart and the value', async () => JSON.stringify(await points()) === '["30","30","30","30"]');
  const auto = await h.newPage(browser, { viewport: { width: 1400, height: 900 } });
  await auto.goto(`${s.origin}/auto`);
  await h.eventually('/auto: 30 points in both quiet tiles', async () =>
    JSON.stringify(await auto.evaluate(() => [...document.querySelectorAll('ticker-tile[topic^="quiet."]')].map((e) => e.dataset.points))) === '["30","30"]');
  assert.deepEqual([...page.errors, ...auto.errors], []);
  await page.close();
  await auto.close();
});

/** Every panel's box in the grid and the grid's, and every tile's box. */
function boxes(page) {
  return page.evaluate(() => {
    const root = document.querySelector('ticker-dashboard').shadowRoot;
    const grid = root.querySelector('.grid').getBoundingClientRect();
    const panels = [...root.querySelectorAll('.grid > .panel')].map((p) => {
      const r = p.getBoundingClientRect();
      return { kind: p.dataset.kind, top: Math.round(r.top), left: Math.round(r.left), right: Math.round(r.right) };
    });
    const tiles = [...root.querySelectorAll('ticker-tile')].map((e) => Math.round(e.getBoundingClientRect().top));
    return { left: Math.round(grid.left), right: Math.round(grid.right), panels, tiles };
  });
}

/** Proves: at 1400 px the eight stock tiles of /d/markets make two rows of four (not seven and one), and at 1400, 1920 and 400 px in both themes every row of panels of /d/markets and /d/host reaches the grid's right edge (no panel alone beside a hole), and no group of /auto leaves a tile alone on a row (a wide tile counts two columns). */
test('rows have no holes and no tile alone', async (t) => {
  const s = await start(t, { server: 'publish_token = "pub"' });
  await publish(s, 'host.clock', { epoch: Math.floor(Date.now() / 1000) });
  await publish(s, 'host.uptime', { value: 'up 3 days' });
  for (const width of [1400, 1920, 400]) {
    for (const scheme of ['light', 'dark']) {
      const page = await h.newPage(browser, { viewport: { width, height: 900 }, colorScheme: scheme });
      for (const name of ['markets', 'host']) {
        await page.goto(`${s.origin}/d/${name}`);
        await h.eventually(`${name} has its panels`, async () => (await boxes(page)).panels.length >= 7);
        if (name === 'markets') {
          await h.eventually('eight tiles', async () => (await boxes(page)).tiles.length === SYMBOLS.length);
          const rows = new Map();
          for (const top of (await boxes(page)).tiles) rows.set(top, (rows.get(top) ?? 0) + 1);
          const counts = [...rows.values()];
          assert.ok(counts.every((n) => n > 1), `${width}px: tiles per row ${counts}`);
          if (width === 1400) assert.deepEqual(counts, [4, 4]);
        }
        const b = await boxes(page);
        const rows = new Map();
        for (const p of b.panels) rows.set(p.top, [...(rows.get(p.top) ?? []), p]);
        for (const [top, row] of rows) {
          const right = Math.max(...row.map((p) => p.right));
          assert.ok(Math.abs(right - b.right) <= 2, `${name} at ${width}px ${scheme}: the row at ${top} (${row.map((p) => p.kind)}) ends at ${right}, the grid at ${b.right}`);
        }
      }
      await page.goto(`${s.origin}/auto`);
      const groups = () => page.evaluate(() => [...document.querySelectorAll('section.group')].map((g) => {
        const rows = new Map();
        for (const l of g.querySelectorAll('.tile-link')) {
          const top = Math.round(l.getBoundingClientRect().top);
          rows.set(top, (rows.get(top) ?? 0) + (l.classList.contains('wide') ? 2 : 1));
        }
        return [g.dataset.group, g.querySelectorAll('.tile-link').length, [...rows.values()]];
      }));
      await h.eventually('/auto has its groups', async () => (await groups()).some(([name, n]) => name === 'host' && n === 3));
      for (const [name, n, rows] of await groups()) {
        if (n > 1) assert.ok(rows.every((cols) => cols > 1), `/auto at ${width}px: group ${name} has a tile alone (columns per row ${rows})`);
      }
      assert.deepEqual(page.errors, []);
      await page.close();
    }
  }
});

/** Feeds of every health: running (stocks), failing (an HTTP poll of a closed port), stopped (disabled). */
const FEEDS = `
[[feed]]
name = "broken"
kind = "http"
url = "http://127.0.0.1:9/nothing"
topic = "broken.x"
interval = "1s"

[[feed]]
name = "asleep"
kind = "synthetic"
topic = "asleep.{symbol}"
symbols = ["ZZZ"]
enabled = false
`;

/** Proves: the shipped host text panel renders inline code, bold and a link (no literal backticks); a timestamp field renders as a time with no sparkline on /auto; the feeds panel (and /auto's list) orders failing, running, stopped, and `show` hides the rest; /d/nope is an HTML page listing the dashboards. */
test('small lies: text markup, timestamps, feed order, /d/nope', async (t) => {
  const feedsBoard = 'title = "Feeds"\n[[panel]]\nkind = "feeds"\n[[panel]]\nkind = "feeds"\nshow = ["failing", "running"]\n';
  const s = await start(t, { server: 'publish_token = "pub"', feeds: FEEDS, more: { feeds: feedsBoard } });
  const page = await h.newPage(browser, { allow: [/Failed to load resource/] });
  // text: the shipped host note
  await page.goto(`${s.origin}/d/host`);
  const note = page.locator('ticker-dashboard .panel[data-kind="text"] p');
  await h.eventually('the note is rendered', async () => (await note.locator('code').count()) === 1);
  assert.equal(await note.locator('code').textContent(), 'system');
  assert.equal(await note.locator('strong').textContent(), 'Feeds');
  assert.equal(await note.locator('a').getAttribute('href'), '../');
  assert.doesNotMatch(await note.textContent(), /[`*]/);
  // a timestamp: a time, no sparkline
  await publish(s, 'clock.x', { epoch: Math.floor(Date.now() / 1000) });
  await publish(s, 'clock.x', { epoch: Math.floor(Date.now() / 1000) + 1 });
  await page.goto(`${s.origin}/auto`);
  await h.eventually('the epoch reads as a time', async () => /^\d\d:\d\d:\d\d$/.test((await h.tileText(page, 'clock.x', '.rows dd')) ?? ''));
  assert.equal(await page.evaluate(() => document.querySelector('ticker-tile[topic="clock.x"]').shadowRoot.querySelector('svg').style.display), 'none');
  // feed order, on /auto and in the panels
  const order = ['broken', 'host', 'stocks', 'asleep']; // failing; running, by name; stopped
  await h.eventually('/auto lists failing, running, stopped', async () =>
    JSON.stringify(await page.locator('#feeds li').evaluateAll((ls) => ls.map((l) => l.dataset.feed))) === JSON.stringify(order));
  await page.goto(`${s.origin}/d/feeds`);
  const listed = (n) => page.locator('ticker-dashboard .panel[data-kind="feeds"]').nth(n).locator('li').evaluateAll((ls) => ls.map((l) => l.dataset.feed));
  await h.eventually('the panel lists failing, running, stopped', async () => JSON.stringify(await listed(0)) === JSON.stringify(order));
  await h.eventually('show hides stopped feeds', async () => JSON.stringify(await listed(1)) === JSON.stringify(order.slice(0, 3)));
  // /d/nope: a page that lists the dashboards there are
  await page.goto(`${s.origin}/d/nope`);
  assert.match(await page.locator('#missing').textContent(), /There is no dashboard nope/);
  assert.deepEqual(await page.locator('#dashboards a').evaluateAll((as) => as.map((a) => a.dataset.dashboard)), shippedDashboards(['feeds']));
  assert.deepEqual(page.errors.filter((e) => !/404/.test(e)), []);
  await page.close();
});
