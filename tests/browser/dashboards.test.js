// Dashboards defined in TOML (dashboards/NAME.toml) in a real headless
// Chromium against the real tickerd binary: every panel kind live, edits
// applied in place on the same WebSocket, an invalid edit shown in the banner,
// charts backfilled from history, a dashboard embedded on another origin, and
// panels that say why they show nothing (no topic yet, a missing field).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as h from './harness.js';

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

/** A dashboard with one panel of every kind over the demo config's feeds. */
const OPS = `title = "Ops wall"
columns = 4

[[panel]]
kind = "text"
label = "Welcome"
text = "Every panel kind, live."
span = 4

[[panel]]
kind = "value"
topic = "stocks.AAPL"
field = "price"
label = "AAPL"
format = "number:2"
unit = "USD"

[[panel]]
kind = "gauge"
topic = "host.metrics"
field = "cpu_pct"
label = "CPU"
format = "percent:0"
thresholds = [{ above = 80, level = "warn" }, { above = 95, level = "crit" }]

[[panel]]
kind = "bar"
topic = "host.metrics"
field = "load1"
label = "Load"
max = 64

[[panel]]
kind = "feeds"

[[panel]]
kind = "tape"
pattern = "stocks.*"
field = "price"

[[panel]]
kind = "chart"
topic = "stocks.MSFT"
field = "price"
label = "MSFT"
window = "2m"
span = 2

[[panel]]
kind = "table"
pattern = "stocks.*"
columns = ["symbol", "price", "change_pct"]
label = "All"
span = 2

[[panel]]
kind = "tile"
pattern = "stocks.*"
field = "price"
`;

/** Starts tickerd with the demo feeds and `dashboards/NAME.toml` files. */
async function start(t, files, extra = '') {
  const dir = h.tempDir();
  fs.mkdirSync(path.join(dir, 'dashboards'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, 'dashboards', `${name}.toml`), text);
  const server = await h.Tickerd.start({ config: h.demoConfig(extra), dir });
  t.after(async () => { await server.stop(); server.cleanup(); });
  server.writeDashboard = (name, text) => {
    const tmp = path.join(dir, 'dashboards', `.${name}.toml.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(dir, 'dashboards', `${name}.toml`));
  };
  return server;
}

/** The `n`th panel of `kind` (a Playwright locator; CSS pierces the shadow root). */
const P = (page, kind, n = 0) => page.locator(`ticker-dashboard .panel[data-kind="${kind}"]`).nth(n);
const kinds = (page) => page.locator('ticker-dashboard .grid > .panel').evaluateAll((ps) => ps.map((p) => p.dataset.kind));
const applied = (page) => page.evaluate(() => Number(document.querySelector('ticker-dashboard')?.dataset.applied ?? 0));
const number = /^\d[\d,]*(\.\d+)?/;

/** Proves: each panel kind of a TOML dashboard renders live values at /d/NAME, the table sorts from the keyboard, and the page works at desktop and phone width in both themes (screenshots in artifacts/). */
test('every panel kind renders live values', async (t) => {
  const server = await start(t, { ops: OPS });
  for (const [name, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
    for (const scheme of ['light', 'dark']) {
      const page = await h.newPage(browser, { viewport, colorScheme: scheme });
      await page.goto(`${server.origin}/d/ops`);
      assert.equal(await page.title(), 'Ops wall');
      await h.eventually('nine panels in order', async () =>
        JSON.stringify(await kinds(page)) === JSON.stringify(['text', 'value', 'gauge', 'bar', 'feeds', 'tape', 'chart', 'table', 'tile']));
      // value: a formatted number with its unit, and it changes
      const value = () => P(page, 'value').locator('.big').textContent();
      const first = await h.eventually('a value', async () => number.test(await value()) && await value());
      assert.match(first, /USD$/);
      await h.eventually('the value changes', async () => (await value()) !== first);
      // gauge and bar
      await h.eventually('the gauge shows a percentage', async () => /^\d+%$/.test(await P(page, 'gauge').locator('.gauge-value').textContent()));
      await h.eventually('the bar is drawn', async () => /%$/.test(await P(page, 'bar').locator('.bar-fill').evaluate((e) => e.style.width)));
      // feeds
      await h.eventually('feed health', async () =>
        (await P(page, 'feeds').locator('li[data-feed="stocks"][data-state="running"]').count()) === 1);
      // tape: two copies per symbol, with prices
      await h.eventually('the tape has every symbol', async () => (await P(page, 'tape').locator('.tape-item').count()) === 12);
      assert.match(await P(page, 'tape').locator('.tape-item .val').nth(0).textContent(), number);
      // chart: points and a line
      await h.eventually('the chart has points', async () => Number(await P(page, 'chart').getAttribute('data-points')) >= 2);
      assert.equal(await P(page, 'chart').locator('path.line').count(), 1);
      // table: a row per stock; sorting by price from the keyboard
      await h.eventually('six table rows', async () => (await P(page, 'table').locator('tbody tr').count()) === 6);
      await P(page, 'table').locator('th button').nth(1).focus();
      await page.keyboard.press('Enter');
      await h.eventually('sorted by price', async () => {
        const prices = await P(page, 'table').locator('tbody tr td:nth-child(2)').allTextContents();
        const n = prices.map((p) => Number(p.replace(/,/g, '')));
        return n.every((v, i) => i === 0 || n[i - 1] <= v);
      });
      assert.equal(await P(page, 'table').locator('th').nth(1).getAttribute('aria-sort'), 'ascending');
      // tiles: one per stock, live
      await h.eventually('six tiles', async () => (await P(page, 'tile').locator('ticker-tile').count()) === 6);
      await h.eventually('tiles show prices', async () => number.test(await P(page, 'tile').locator('ticker-tile[topic="stocks.TSLA"] .value').textContent()));
      // text
      assert.equal(await P(page, 'text').locator('p').textContent(), 'Every panel kind, live.');
      // screen readers: one polite region, not a live region per panel
      assert.equal(await page.locator('ticker-dashboard [aria-live]').count(), 1);
      assert.equal(await page.locator('ticker-dashboard [aria-live]').getAttribute('aria-live'), 'polite');
      await h.screenshot(page, `dashboards-${name}-${scheme}`);
      assert.deepEqual(page.errors, []);
      await page.close();
    }
  }
});

/** Proves: editing a dashboard file changes an open page in place: panels re-ordered, removed, added and re-formatted, the title changed, with no page reload, on the same WebSocket, and the chart keeps its points. */
test('an edited dashboard file changes the open page without reload', async (t) => {
  const server = await start(t, { ops: OPS });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/d/ops`);
  await h.eventually('the chart has points', async () => Number(await P(page, 'chart').getAttribute('data-points')) >= 5);
  await h.eventually('a value', async () => number.test(await P(page, 'value').locator('.big').textContent()));
  await page.evaluate(() => {
    window.__noReload = true;
    window.__socket = window.tickerd._ws;
    window.__hellos = 0;
    window.tickerd.addEventListener('hello', () => { window.__hellos++; });
    document.querySelector('ticker-dashboard').shadowRoot.querySelector('.panel[data-kind="chart"]').__kept = true;
  });
  const pointsBefore = Number(await P(page, 'chart').getAttribute('data-points'));
  const before = await applied(page);

  // Re-order (chart first), remove the gauge, re-format the value, add a panel, rename.
  const panels = OPS.split('\n[[panel]]\n');
  const head = panels[0].replace('Ops wall', 'Ops wall, edited');
  const byKind = Object.fromEntries(panels.slice(1).map((p) => [/kind = "(\w+)"/.exec(p)[1], p]));
  const edited = [
    head,
    byKind.chart,
    byKind.text,
    byKind.value.replace('format = "number:2"', 'format = "number:4"').replace('unit = "USD"', 'unit = "$"'),
    byKind.table,
    'kind = "value"\ntopic = "stocks.NVDA"\nfield = "price"\nlabel = "NVDA"\n',
  ].join('\n[[panel]]\n');
  server.writeDashboard('ops', edited);

  await h.eventually('the new definition is applied', async () => (await applied(page)) > before);
  assert.deepEqual(await kinds(page), ['chart', 'text', 'value', 'table', 'value']);
  assert.equal(await page.title(), 'Ops wall, edited');
  await h.eventually('the value has four decimals and the new unit', async () =>
    /^\d[\d,]*\.\d{4}\$$/.test(await P(page, 'value').locator('.big').textContent()));
  await h.eventually('the added panel shows NVDA', async () => number.test(await P(page, 'value', 1).locator('.big').textContent()));
  const state = await page.evaluate(() => ({
    noReload: window.__noReload === true,
    sameSocket: window.tickerd._ws === window.__socket && window.__socket.readyState === 1,
    hellos: window.__hellos,
    chartKept: document.querySelector('ticker-dashboard').shadowRoot.querySelector('.panel[data-kind="chart"]').__kept === true,
  }));
  assert.deepEqual(state, { noReload: true, sameSocket: true, hellos: 0, chartKept: true });
  assert.ok(Number(await P(page, 'chart').getAttribute('data-points')) >= pointsBefore, 'the chart kept its points');
  assert.deepEqual(page.errors, []);
});

/** Proves: an invalid edit leaves the page as it was (same panels, values still live) and shows the error, with file, line and panel, in the banner; fixing the file clears it. */
test('an invalid dashboard edit shows the banner and changes nothing', async (t) => {
  const server = await start(t, { ops: OPS });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/d/ops`);
  await h.eventually('nine panels', async () => (await kinds(page)).length === 9);
  assert.equal(await page.locator('ticker-dashboard .banner').isVisible(), false);
  const before = await applied(page);
  server.writeDashboard('ops', OPS.replace('Ops wall', 'Broken').replace('window = "2m"', 'window = "2 fortnights-ish"'));
  await h.eventually('the banner shows the error', async () => (await page.locator('ticker-dashboard .banner').isVisible()));
  assert.match(await page.locator('ticker-dashboard .banner pre').textContent(), /ops\.toml:\d+: dashboard "ops": panel #7: window/);
  assert.equal(await applied(page), before);
  assert.equal(await page.title(), 'Ops wall');
  assert.equal((await kinds(page)).length, 9);
  const seq = Number(await P(page, 'value').getAttribute('data-seq'));
  await h.eventually('values keep flowing', async () => Number(await P(page, 'value').getAttribute('data-seq')) > seq);
  await h.screenshot(page, 'dashboards-banner');
  server.writeDashboard('ops', OPS);
  await h.eventually('the banner clears', async () => !(await page.locator('ticker-dashboard .banner').isVisible()));
  assert.deepEqual(page.errors, []);
});

/** Proves: a chart shows the topic's history right after load (from the server's history, not live updates: the topic gets none while the page is open). */
test('a chart is backfilled from history on load', async (t) => {
  const chart = 'title = "History"\n[[panel]]\nkind = "chart"\ntopic = "quiet.x"\nfield = "v"\nwindow = "10m"\n';
  const server = await start(t, { hist: chart }, 'publish_token = "pub"');
  for (let i = 0; i < 30; i++) {
    const r = await fetch(`${server.origin}/api/publish/quiet.x`, {
      method: 'POST', headers: { authorization: 'Bearer pub' }, body: JSON.stringify({ v: i % 7 }),
    });
    assert.equal(r.status, 200);
  }
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/d/hist`);
  await h.eventually('30 points from history', async () => Number(await P(page, 'chart').getAttribute('data-points')) === 30);
  const d = await P(page, 'chart').locator('path.line').getAttribute('d');
  assert.equal(d.split('L').length, 30, 'one line through every point');
  assert.ok((await P(page, 'chart').locator('svg text').count()) >= 3, 'the chart has axis labels');
  assert.deepEqual(page.errors, []);
});

/** Proves: one script tag of tickerd.js (with ?token=) and <ticker-dashboard name="ops"> show a whole live dashboard on a page of another origin. */
test('a dashboard embedded on another origin', async (t) => {
  const server = await start(t, { ops: OPS }, 'token = "s3cret"');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Embedded board</title></head><body>
<h1>Our wall</h1>
<ticker-dashboard name="ops"></ticker-dashboard>
<script type="module" src="${server.origin}/tickerd.js?token=s3cret"></script>
</body></html>`;
  const site = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  const sitePort = await new Promise((r) => site.listen(0, '127.0.0.1', () => r(site.address().port)));
  t.after(() => site.close());
  const page = await h.newPage(browser);
  await page.goto(`http://127.0.0.1:${sitePort}/`);
  await h.eventually('nine panels', async () => (await kinds(page)).length === 9);
  const value = () => P(page, 'value').locator('.big').textContent();
  const first = await h.eventually('a live value', async () => number.test(await value()) && await value());
  await h.eventually('the value changes', async () => (await value()) !== first);
  await h.eventually('the chart has points', async () => Number(await P(page, 'chart').getAttribute('data-points')) >= 2);
  assert.notEqual(new URL(page.url()).origin, server.origin);
  await h.screenshot(page, 'dashboards-embedded');
  assert.deepEqual(page.errors, []);
});

/** Panels that cannot show a value: a topic no feed makes (yet), misspelt fields, a pattern that matches nothing; and one that works. */
const NOTES = `title = "Notes"

[[panel]]
kind = "value"
topic = "stocks.APPL"
field = "price"

[[panel]]
kind = "value"
topic = "stocks.AAPL"
field = "pirce"

[[panel]]
kind = "chart"
topic = "stocks.MSFT"
fields = ["price", "chnage"]

[[panel]]
kind = "tile"
pattern = "stock.*"

[[panel]]
kind = "gauge"
topic = "stocks.MSFT"
field = "price"
max = 1000
`;

/** Proves: instead of "—" forever, a panel whose topic has no data says "no topic T yet" (a pattern: "no topic matches P yet") until the topic appears, and a panel whose field is missing from the latest value says "no field F in T"; a panel that has its value shows no note. */
test('a panel without data or without its field says why', async (t) => {
  const server = await start(t, { notes: NOTES }, 'publish_token = "pub"');
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/d/notes`);
  const note = async (kind, n = 0) => {
    const l = P(page, kind, n).locator('.note');
    return (await l.count()) && (await l.isVisible()) ? l.textContent() : null;
  };
  await h.eventually('the missing topic is named', async () => (await note('value', 0)) === 'no topic stocks.APPL yet');
  await h.eventually('the missing field is named', async () => (await note('value', 1)) === 'no field pirce in stocks.AAPL');
  await h.eventually('the chart names its missing field', async () => (await note('chart')) === 'no field chnage in stocks.MSFT');
  await h.eventually('the empty pattern is named', async () => (await note('tile')) === 'no topic matches stock.* yet');
  await h.eventually('the gauge shows its value', async () => /\d/.test(await P(page, 'gauge').locator('.gauge-value').textContent()));
  assert.equal(await note('gauge'), null);
  // The topic appears: its value replaces the note.
  const r = await fetch(`${server.origin}/api/publish/stocks.APPL`, {
    method: 'POST',
    headers: { authorization: 'Bearer pub', 'content-type': 'application/json' },
    body: JSON.stringify({ price: 12.5 }),
  });
  assert.equal(r.status, 200);
  await h.eventually('the value shows', async () => /12\.5/.test(await P(page, 'value', 0).locator('.big').textContent()));
  assert.equal(await note('value', 0), null);
  assert.deepEqual(page.errors, []);
  await page.close();
});
