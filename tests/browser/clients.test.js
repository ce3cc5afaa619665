// tickerd.js beyond one plain WebSocket (issue #17): field-level deltas merged
// back into whole values, and the fallback to Server-Sent Events when a
// WebSocket cannot be opened. A real tickerd, headless Chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.js';

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

const CONFIG = `[server]
listen = "127.0.0.1:0"

[[feed]]
name = "stocks"
kind = "synthetic"
topic = "stocks.{symbol}"
symbols = ["AAPL", "MSFT"]
interval = "50ms"
volatility = 0.004
`;

/** Proves: with `delta: true` the server sends merge patches and callers still get whole values. */
test('deltas are merged back into whole values', async (t) => {
  const server = await h.Tickerd.start({ config: CONFIG });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  await page.evaluate(async (origin) => {
    const { TickerClient } = await import(`${origin}/tickerd.js`);
    const c = new TickerClient({ server: origin, delta: true });
    window.rawDeltas = 0;
    const onMessage = c._onMessage.bind(c);
    c._onMessage = (text) => {
      if (JSON.parse(text).delta) window.rawDeltas++;
      onMessage(text);
    };
    window.got = [];
    c.subscribe('stocks.AAPL', (u) => window.got.push(u), { every: true });
  }, server.origin);
  await h.eventually('30 updates, some sent as deltas', () =>
    page.evaluate(() => window.got.length >= 30 && window.rawDeltas > 5));
  const got = await page.evaluate(() => window.got);
  for (const u of got) {
    assert.deepEqual(Object.keys(u.data).sort(), ['change', 'change_pct', 'price', 'symbol'], JSON.stringify(u));
    assert.equal(u.data.symbol, 'AAPL');
    assert.equal(u.delta, undefined);
  }
  assert.deepEqual(page.errors, []);
});

/** Proves: where WebSockets never open, the client switches to /sse, resubscribes there, and goes live. */
test('a page without WebSockets falls back to Server-Sent Events', async (t) => {
  const server = await h.Tickerd.start({ config: CONFIG });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.addInitScript(() => {
    // A proxy that refuses upgrades: every WebSocket fails before it opens.
    window.WebSocket = class {
      constructor() {
        this.readyState = 0;
        setTimeout(() => {
          this.readyState = 3;
          this.onerror?.({});
          this.onclose?.({ code: 1006 });
        }, 5);
      }
      send() {}
      close() {}
    };
  });
  await page.goto(`${server.origin}/`);
  await page.evaluate(async (origin) => {
    const { TickerClient } = await import(`${origin}/tickerd.js`);
    const c = new TickerClient({ server: origin, backoffBase: 20, backoffCap: 100 });
    window.client = c;
    window.seen = {};
    c.subscribe('stocks.AAPL', (u) => { window.seen[u.topic] = u; });
  }, server.origin);
  await h.eventually('live over SSE with AAPL', () =>
    page.evaluate(() => window.client.usingSse && window.client.state === 'live' && !!window.seen['stocks.AAPL']));
  // A later subscription reopens the stream with both patterns.
  await page.evaluate(() => window.client.subscribe('stocks.MSFT', (u) => { window.seen[u.topic] = u; }));
  await h.eventually('MSFT arrives too', () => page.evaluate(() => !!window.seen['stocks.MSFT']));
  const seqBefore = await page.evaluate(() => window.seen['stocks.AAPL'].seq);
  await h.eventually('AAPL keeps updating', () =>
    page.evaluate((s) => window.seen['stocks.AAPL'].seq > s, seqBefore));
  assert.deepEqual(page.errors.filter((e) => !/EventSource|sse/.test(e)), []);
});
