// The dashboard and tickerd.js in a real headless Chromium against the real
// tickerd binary. Run: `node --test` here after `cargo build`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import * as h from './harness.js';

// Chromium logs its own line when a WebSocket cannot connect (server down);
// that is expected while a test has the server stopped, and no page's fault.
const WS_REFUSED = /WebSocket connection to .* failed/;
// While the server is down, tickerd.js asks /healthz whether HTTP answers
// (to tell a server that is down from one whose WebSockets are blocked).
const HTTP_REFUSED = /Failed to load resource: net::ERR_CONNECTION_REFUSED/;

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

const liveState = (page) => page.evaluate(() => document.getElementById('conn').dataset.state);

/** Proves: the built-in demo (no config) lists its dashboards at `/`, and `/auto` shows stock and host tiles whose values change, live. */
test('the dashboard shows the built-in demo and its values change', async (t) => {
  const server = await h.Tickerd.start({});
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  assert.equal(await page.title(), 'Live Ticker');
  assert.deepEqual(await page.locator('#dashboards a').evaluateAll((as) => as.map((a) => a.dataset.dashboard)), ['host', 'markets']);
  await page.click('a[href="auto"]');
  await page.waitForURL(`${server.origin}/auto`);
  await h.eventually('eight stock tiles', async () => (await page.locator('ticker-tile[topic^="stocks."]').count()) === 8);
  await h.eventually('the host metrics tile', () => h.tileSeq(page, 'host.metrics'));
  const values = () => page.evaluate(() => [...document.querySelectorAll('ticker-tile[topic^="stocks."]')]
    .map((e) => e.shadowRoot.querySelector('.value').textContent).join(' '));
  const first = await values();
  assert.match(first, /^(\d[\d,]*\.\d\d ?){8}$/, first);
  await h.eventually('a stock price changes', async () => (await values()) !== first);
  assert.equal(await liveState(page), 'live');
  assert.equal(await page.textContent('#conn .text'), 'Live');
  const hostRows = await h.tileText(page, 'host.metrics', '.rows');
  assert.match(hostRows, /\d+(\.\d+)? [KMGT]iB/, `bytes are formatted: ${hostRows}`);
  assert.match(hostRows, /\d%/, `percentages are formatted: ${hostRows}`);
  await h.eventually('both feeds reported running', async () =>
    (await page.locator('#feeds li[data-state="running"]').count()) === 2);
  assert.deepEqual(page.errors, []);
});

/** Proves: strings, objects and stale topics render sensibly; detail view and filter work; screenshots. */
test('non-numeric and stale topics, detail view, filter, themes and phone layout', async (t) => {
  const config = `${h.demoConfig('publish_token = "pub"')}
[[feed]]
name = "fx"
kind = "synthetic"
topic = "fx.{symbol}"
symbols = ["EURUSD"]
start = 1.08
interval = "1h"
stale_after = "1s"
`;
  const server = await h.Tickerd.start({ config });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const publish = async (topic, body) => {
    const r = await fetch(`${server.origin}/api/publish/${topic}`, {
      method: 'POST', headers: { authorization: 'Bearer pub' }, body: JSON.stringify(body),
    });
    assert.equal(r.status, 200);
  };
  await publish('news.headline', 'Markets calm ahead of the long weekend');
  await publish('weather.berlin', { temp_c: 7.5, humidity_pct: 81, conditions: 'light rain' });

  for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
    for (const scheme of ['light', 'dark']) {
      const page = await h.newPage(browser, { viewport, colorScheme: scheme });
      await page.goto(`${server.origin}/`);
      assert.equal(await page.title(), 'Browser Test Ticker');
      await h.eventually('string topic shown', async () =>
        (await h.tileText(page, 'news.headline', '.value')) === 'Markets calm ahead of the long weekend');
      await h.eventually('object rows shown', async () =>
        /humidity\s*81\.00%|humidity81/.test((await h.tileText(page, 'weather.berlin', '.rows')) ?? ''));
      await h.eventually('fx.EURUSD marked stale', async () =>
        /stale since \d\d:\d\d:\d\d/.test((await h.tileText(page, 'fx.EURUSD', '.stale')) ?? ''));
      await h.eventually('feed panel shows fx stale', async () =>
        /stale since/.test((await page.textContent('#feeds li[data-feed="fx"]')) ?? ''));
      await h.eventually('sparklines have history', () => page.evaluate(() =>
        document.querySelector('ticker-tile[topic="stocks.AAPL"]')?.shadowRoot.querySelector('svg .line')?.getAttribute('d')?.split('L').length > 20));
      await h.screenshot(page, `dashboard-${name}-${scheme}`);
      if (name === 'desktop' && scheme === 'light') {
        await page.fill('#filter', 'stocks.*');
        await h.eventually('filter shows only stocks', async () =>
          (await page.locator('.tile-link:not([hidden])').count()) === 6);
        await page.fill('#filter', 'weath');
        await h.eventually('substring filter', async () =>
          (await page.locator('.tile-link:not([hidden])').count()) === 1);
        await page.fill('#filter', '');
      }
      await page.click('a[data-topic="stocks.AAPL"]');
      await h.eventually('detail view open with raw JSON', async () =>
        /"topic": "stocks.AAPL"/.test(await page.textContent('#detail-raw')));
      await h.eventually('detail history rows', async () => (await page.locator('#detail-history tr').count()) > 10);
      await h.screenshot(page, `detail-${name}-${scheme}`);
      await page.click('#detail-close');
      assert.equal(await page.evaluate(() => document.getElementById('detail').open), false);
      assert.deepEqual(page.errors, []);
      await page.close();
    }
  }
});

/** Proves: after the server is killed and started again on the same port, the page reconnects and updates resume. */
test('a server restart is followed by a reconnect and resumed updates', async (t) => {
  const server = await h.Tickerd.start({ config: h.demoConfig() });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser, { allow: [WS_REFUSED, HTTP_REFUSED] });
  await page.goto(`${server.origin}/`);
  await h.eventually('live', async () => (await liveState(page)) === 'live');
  const epoch = await page.evaluate(() => window.tickerd.epoch);
  await h.eventually('AAPL updating', () => h.tileSeq(page, 'stocks.AAPL'));

  await server.kill();
  await h.eventually('indicator shows the countdown', async () =>
    /^Reconnecting/.test(await page.textContent('#conn .text')));
  await h.screenshot(page, 'reconnecting-desktop-light');
  await server.start();
  await h.eventually('live again', async () => (await liveState(page)) === 'live', 40_000);
  const epoch2 = await page.evaluate(() => window.tickerd.epoch);
  assert.notEqual(epoch2, epoch, 'a new server process has a new epoch');
  const seq = await h.tileSeq(page, 'stocks.AAPL');
  await h.eventually('updates resume', async () => (await h.tileSeq(page, 'stocks.AAPL')) > seq);
  assert.deepEqual(page.errors, []);
});

/** A TCP proxy whose current connections can be frozen (a dead link: no FIN, no data). */
function proxy(target) {
  const pairs = new Set();
  let frozen = false;
  const srv = net.createServer((c) => {
    const s = net.connect(target, '127.0.0.1');
    const pair = { c, s, frozen: false };
    pairs.add(pair);
    c.on('data', (b) => { if (!pair.frozen) s.write(b); });
    s.on('data', (b) => { if (!pair.frozen) c.write(b); });
    const end = () => { c.destroy(); s.destroy(); pairs.delete(pair); };
    c.on('close', end); s.on('close', end); c.on('error', end); s.on('error', end);
  });
  return {
    listen: () => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port))),
    freeze() { frozen = true; for (const p of pairs) p.frozen = true; },
    frozen: () => frozen,
    close() { for (const p of pairs) { p.c.destroy(); p.s.destroy(); } srv.close(); },
  };
}

/** Proves: a dead link is found by application pings and the client resumes with since + epoch, losing no update. */
test('a dead link is detected by ping and resumed from the last seq without gaps', async (t) => {
  const server = await h.Tickerd.start({ config: h.demoConfig() });
  const p = proxy(server.port);
  const via = await p.listen();
  t.after(async () => { p.close(); await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  const sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));
  await page.goto(`http://127.0.0.1:${via}/`);
  await page.evaluate(async () => {
    const { TickerClient } = await import('/tickerd.js');
    const c = new TickerClient({ pingInterval: 500, pingTimeout: 1000 });
    window.probe = { client: c, seqs: [], states: [] };
    c.addEventListener('state', (e) => window.probe.states.push(e.detail.state));
    c.subscribe('stocks.AAPL', (u) => window.probe.seqs.push(u.seq), { every: true });
  });
  await h.eventually('probe receives updates', () => page.evaluate(() => window.probe.seqs.length >= 5));
  const epoch = await page.evaluate(() => window.probe.client.epoch);
  p.freeze();
  const before = await page.evaluate(() => window.probe.seqs.length);
  await h.eventually('dead link detected', () => page.evaluate(() => window.probe.states.includes('reconnecting')));
  await h.eventually('live again', () => page.evaluate(() => window.probe.client.state === 'live'));
  await h.eventually('updates after the resume', () => page.evaluate((n) => window.probe.seqs.length > n + 20, before));
  const seqs = await page.evaluate(() => window.probe.seqs);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `no gap or duplicate at ${i}: ${seqs}`);
  const resume = sent.map((s) => JSON.parse(s)).find((m) => m.op === 'subscribe' && m.since?.['stocks.AAPL'] > 0);
  assert.ok(resume, `a subscribe with since was sent: ${sent.join('\n')}`);
  assert.equal(resume.epoch, epoch);
  assert.deepEqual(page.errors, []);
});

/** Proves: elements on a page of another origin load tickerd.js (with ?token=) and show live values. */
test('custom elements on a page of another origin show live values', async (t) => {
  const server = await h.Tickerd.start({ config: h.demoConfig('token = "s3cret"') });
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Embedded</title>
<style>body{font:16px system-ui;margin:24px;max-width:720px} ticker-tile{width:220px;margin:12px 0}</style></head><body>
<h1>My page</h1>
<p>AAPL is at <ticker-value id="aapl" topic="stocks.AAPL" field="price" format="number:2"></ticker-value></p>
<ticker-tile topic="stocks.MSFT"></ticker-tile>
<ticker-table pattern="stocks.*" columns="symbol,price,change,change_pct"></ticker-table>
<script type="module" src="${server.origin}/tickerd.js?token=s3cret"></script>
</body></html>`;
  const site = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  const sitePort = await new Promise((r) => site.listen(0, '127.0.0.1', () => r(site.address().port)));
  t.after(async () => { site.close(); await server.stop(); server.cleanup(); });

  const denied = await fetch(`${server.origin}/api/topics`);
  assert.equal(denied.status, 401, 'the server really wants the token');
  const page = await h.newPage(browser);
  await page.goto(`http://127.0.0.1:${sitePort}/`);
  const value = () => page.textContent('#aapl');
  const first = await h.eventually('a live value', async () => {
    const v = await value();
    return /^\d[\d,]*\.\d\d$/.test(v) && v;
  });
  await h.eventually('the value changes', async () => (await value()) !== first);
  await h.eventually('the tile shows MSFT', async () => /^\d/.test((await h.tileText(page, 'stocks.MSFT', '.value')) ?? ''));
  await h.eventually('the table has a row per stock', () => page.evaluate(() =>
    document.querySelector('ticker-table').shadowRoot.querySelectorAll('tbody tr').length === 6));
  assert.notEqual(new URL(page.url()).origin, server.origin);
  await h.screenshot(page, 'embed-desktop-light');
  assert.deepEqual(page.errors, []);
});

/** Proves: an invalid config written while running shows in the banner (values keep flowing), and a fix clears it. */
test('config errors appear in the banner and clear when fixed', async (t) => {
  const config = h.demoConfig();
  const server = await h.Tickerd.start({ config });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  await h.eventually('live', async () => (await liveState(page)) === 'live');
  assert.equal(await page.isVisible('#banner'), false);
  server.writeConfig(config.replace('[dashboard]', '[dashboard]\ntitel = "typo"'));
  await h.eventually('the banner shows the error', async () =>
    (await page.isVisible('#banner')) && /titel/.test(await page.textContent('#banner-error')));
  assert.match(await page.textContent('#banner-error'), /config\.toml/);
  const seq = await h.tileSeq(page, 'stocks.AAPL');
  await h.eventually('the old config keeps running', async () => (await h.tileSeq(page, 'stocks.AAPL')) > seq);
  await h.screenshot(page, 'banner-desktop-light');
  server.writeConfig(config);
  await h.eventually('the banner clears', async () => !(await page.isVisible('#banner')));
  assert.deepEqual(page.errors, []);
});

/** Proves: under thousands of updates per second the page stays live: updates arrive, frames keep coming, tiles keep following (the figures are printed, not asserted). */
test('thousands of updates per second do not freeze the page', async (t) => {
  const symbols = Array.from({ length: 300 }, (_, i) => `"S${i}"`).join(', ');
  const config = `[server]
listen = "127.0.0.1:0"
[[feed]]
name = "load"
kind = "synthetic"
topic = "load.{symbol}"
symbols = [${symbols}]
interval = "50ms"
`;
  const server = await h.Tickerd.start({ config });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  await h.eventually('300 tiles', async () => (await page.locator('ticker-tile').count()) === 300);
  const m = await page.evaluate(() => new Promise((resolve) => {
    let frames = 0;
    let maxGap = 0;
    let updates = 0;
    const off = window.tickerd.subscribe('>', () => { updates++; }, { every: true });
    const start = performance.now();
    let last = start;
    const step = (now) => {
      frames++;
      maxGap = Math.max(maxGap, now - last);
      last = now;
      if (now - start < 3000) requestAnimationFrame(step);
      else { off(); resolve({ frames, updates, fps: frames / ((now - start) / 1000), maxGap, rate: updates / ((now - start) / 1000) }); }
    };
    requestAnimationFrame(step);
  }));
  // Figures, not assertions: how fast a page renders is a benchmark's
  // question and depends on the machine. The test asserts liveness only.
  console.log(`# load: ${Math.round(m.rate)} updates/s delivered, ${m.fps.toFixed(1)} fps, longest frame ${Math.round(m.maxGap)} ms`);
  assert.ok(m.updates > 0, 'updates arrive under load');
  assert.ok(m.frames >= 2, `the page keeps rendering frames: ${m.frames}`);
  const seq = await h.tileSeq(page, 'load.S0');
  await h.eventually('a tile still follows its topic', async () => (await h.tileSeq(page, 'load.S0')) > seq);
  assert.deepEqual(page.errors, []);
});

/** Proves: a running feed that publishes nothing because its items lack a template field shows that error in the feed panel. */
test('a running feed that drops every item shows why', async (t) => {
  const config = `${h.demoConfig()}
[[feed]]
name = "tm"
kind = "synthetic"
topic = "tm.{ticker}"
symbols = ["A"]
interval = "100ms"
`;
  const server = await h.Tickerd.start({ config });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  await h.eventually('the tm feed shows its error', async () =>
    /item has no field `ticker` for topic `tm\.\{ticker\}`/.test((await page.textContent('#feeds li[data-feed="tm"]')) ?? ''));
  assert.equal(await page.getAttribute('#feeds li[data-feed="tm"]', 'data-state'), 'running');
  assert.deepEqual(page.errors, []);
});
