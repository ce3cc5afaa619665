// tickerd.js beyond one plain WebSocket (issue #17): field-level deltas merged
// back into whole values, and the fallback to Server-Sent Events when a
// WebSocket cannot be opened. A real tickerd, headless Chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
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

const JWT_SECRET = 'a-browser-test-secret-of-at-least-32-bytes';

/** An HS256 JWT for `claims`, minted here as an issuer would. */
function hs256(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** tickerd with `[auth.jwt]` taking JWT_SECRET and no leeway, stopped after `t`. */
async function startWithJwt(t) {
  const dir = h.tempDir();
  fs.writeFileSync(path.join(dir, 'jwt.secret'), `${JWT_SECRET}\n`);
  const config = `${CONFIG}
[auth.jwt]
hs256_secrets = ["file:jwt.secret"]
leeway = "0s"
`;
  const server = await h.Tickerd.start({ config, dir });
  t.after(async () => { await server.stop(); server.cleanup(); });
  return server;
}

/**
 * Proves: with `getToken`, a short-lived JWT is replaced before its `exp`
 * (the `refresh` op on a WebSocket, a reopened stream on SSE), so the
 * connection outlives the first token: no 4001, no reconnect, updates flow.
 */
for (const transport of ['websocket', 'sse']) {
  test(`getToken keeps a ${transport} connection past its JWT's expiry`, async (t) => {
    const server = await startWithJwt(t);
    // /healthz is a blank page of this origin; its favicon.ico is a 404.
    const page = await h.newPage(browser, { allow: [/status of 404/] });
    const minted = [];
    await page.exposeFunction('mintToken', () => {
      const exp = Math.floor(Date.now() / 1000) + 4;
      minted.push(exp);
      return hs256({ sub: 'browser', exp, topics: ['stocks.*'] });
    });
    await page.goto(`${server.origin}/healthz`);
    await page.evaluate(async ([origin, transport]) => {
      const { TickerClient } = await import(`${origin}/tickerd.js`);
      // A token takes a while to come, as from an issuer over the network.
      const getToken = async () => {
        await new Promise((r) => setTimeout(r, 300));
        return window.mintToken();
      };
      const c = new TickerClient({ server: origin, transport, getToken });
      window.client = c;
      window.states = [];
      window.refreshes = [];
      c.addEventListener('state', (e) => window.states.push(e.detail.state));
      c.addEventListener('tokenrefresh', (e) => window.refreshes.push(e.detail));
      c.subscribe('stocks.AAPL', (u) => { window.last = { seq: u.seq, at: Date.now() }; });
    }, [server.origin, transport]);
    await h.eventually('live with AAPL', () =>
      page.evaluate(() => window.client.state === 'live' && !!window.last));
    const firstExp = minted[0];
    // Past the first token's expiry (leeway 0) by well over a second.
    await h.eventually('the first token has expired', () => Date.now() > firstExp * 1000 + 1500);
    const seq = await page.evaluate(() => window.last.seq);
    await h.eventually('AAPL keeps updating', () =>
      page.evaluate((s) => window.last.seq > s && Date.now() - window.last.at < 1000, seq));
    const { states, refreshes, lastError } = await page.evaluate(() => ({
      states: window.states, refreshes: window.refreshes, lastError: window.client.lastError,
    }));
    assert.ok(minted.length >= 2, `getToken called ${minted.length} times`);
    assert.ok(refreshes.length >= 1 && refreshes.every((r) => r.ok), JSON.stringify(refreshes));
    assert.deepEqual(states.filter((s) => s === 'reconnecting'), [], `states ${states}, error ${lastError}`);
    if (transport === 'websocket') assert.deepEqual(states, ['connecting', 'live']);
    assert.deepEqual(page.errors, []);
  });
}

/**
 * Proves: when a refresh is refused (here getToken hands over a forged
 * token), the server closes at `exp` with 4001 and the client reconnects at
 * once with a fresh token from getToken, and goes live again.
 */
test('a refused refresh ends in 4001 and a reconnect with a fresh token', async (t) => {
  const server = await startWithJwt(t);
  const page = await h.newPage(browser, { allow: [/status of 404/] });
  let calls = 0;
  await page.exposeFunction('mintToken', () => {
    calls++;
    const claims = { sub: 'browser', exp: Math.floor(Date.now() / 1000) + 4, topics: ['stocks.*'] };
    const token = hs256(claims);
    // The second token (the refresh) is forged: a bad signature.
    return calls === 2 ? `${token.slice(0, -4)}AAAA` : token;
  });
  await page.goto(`${server.origin}/healthz`);
  await page.evaluate(async (origin) => {
    const { TickerClient } = await import(`${origin}/tickerd.js`);
    const c = new TickerClient({ server: origin, transport: 'websocket', getToken: () => window.mintToken() });
    window.client = c;
    window.states = [];
    window.refreshes = [];
    window.serverErrors = [];
    c.addEventListener('state', (e) => window.states.push([e.detail.state, e.detail.error]));
    c.addEventListener('tokenrefresh', (e) => window.refreshes.push(e.detail));
    c.addEventListener('servererror', (e) => window.serverErrors.push(e.detail.code));
    c.subscribe('stocks.AAPL', (u) => { window.last = { seq: u.seq, at: Date.now() }; });
  }, server.origin);
  await h.eventually('live, then dropped with 4001 and live again', () => page.evaluate(() => {
    const s = window.states;
    const dropped = s.findIndex(([st, err]) => st === 'reconnecting' && err === 'token expired (4001)');
    return dropped > 0 && s.slice(dropped).some(([st]) => st === 'live') && window.client.state === 'live';
  }));
  const seq = await page.evaluate(() => window.last.seq);
  await h.eventually('AAPL keeps updating', () => page.evaluate((s) => window.last.seq > s, seq));
  const { refreshes, serverErrors } = await page.evaluate(() => ({
    refreshes: window.refreshes, serverErrors: window.serverErrors,
  }));
  assert.equal(refreshes[0]?.ok, false, JSON.stringify(refreshes));
  assert.match(refreshes[0].error, /^unauthorized/);
  assert.deepEqual(serverErrors.slice(0, 1), ['unauthorized']);
  assert.ok(calls >= 3, `getToken called ${calls} times`);
  assert.deepEqual(page.errors, []);
});
