// Topics that end and restarts that are invisible, as a page sees them: the
// `gone` frame in tickerd.js and its elements, and a SIGKILLed server with a
// durable store ([history] path) that a page resumes from without a snapshot.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.js';

const WS_REFUSED = /WebSocket connection to .* failed/;
// While the server is down, tickerd.js asks /healthz whether HTTP answers
// (to tell a server that is down from one whose WebSockets are blocked).
const HTTP_REFUSED = /Failed to load resource: net::ERR_CONNECTION_REFUSED/;

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

function config(extra = '') {
  return `[server]\nlisten = "127.0.0.1:0"\npublish_token = "pub"\n${extra}`;
}

async function publish(server, topic, body) {
  const r = await fetch(`${server.origin}/api/publish/${topic}`, {
    method: 'POST', headers: { authorization: 'Bearer pub' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200);
  return r.json();
}

/** Proves: on `gone` an element shows the topic as gone and the client forgets it; published again from seq 1, it shows again. */
test('a deleted topic shows as gone, then comes back from seq 1', async (t) => {
  const server = await h.Tickerd.start({ config: config() });
  t.after(async () => { await server.stop(); server.cleanup(); });
  await publish(server, 'orders.x', { n: 41 });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  await page.evaluate(async () => {
    const { connect } = await import('/tickerd.js');
    window.client = connect();
    window.gone = [];
    window.client.addEventListener('gone', (e) => window.gone.push(e.detail.topic));
    const v = document.createElement('ticker-value');
    v.id = 'probe';
    v.setAttribute('topic', 'orders.x');
    v.setAttribute('field', 'n');
    document.body.prepend(v);
  });
  const text = () => page.evaluate(() => document.getElementById('probe').textContent);
  await h.eventually('the value shows', async () => (await text()) === '41');

  const r = await fetch(`${server.origin}/api/topics/orders.x`, {
    method: 'DELETE', headers: { authorization: 'Bearer pub' },
  });
  assert.equal(r.status, 204);
  await h.eventually('the element shows gone', async () => (await text()) === 'gone');
  const state = await page.evaluate(() => ({
    attr: document.getElementById('probe').hasAttribute('gone'),
    latest: window.client.latest('orders.x') ?? null,
    gone: window.gone,
  }));
  assert.deepEqual(state, { attr: true, latest: null, gone: ['orders.x'] });

  const again = await publish(server, 'orders.x', { n: 7 });
  assert.equal(again.seq, 1);
  await h.eventually('the new value shows', async () => (await text()) === '7');
  const after = await page.evaluate(() => ({
    attr: document.getElementById('probe').hasAttribute('gone'),
    seq: document.getElementById('probe').dataset.seq,
  }));
  assert.deepEqual(after, { attr: false, seq: '1' });
  assert.deepEqual(page.errors, []);
});

/** Proves: with [history] path, a page attached through a SIGKILL and restart keeps the epoch and its seqs: no snapshot, no gap. */
test('a durable server killed and restarted is resumed without a snapshot', async (t) => {
  const server = await h.Tickerd.start({ config: config('[history]\npath = "data"\nsync = "always"\n') });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser, { allow: [WS_REFUSED, HTTP_REFUSED] });
  await page.goto(`${server.origin}/`);
  for (let i = 1; i <= 5; i++) await publish(server, 'orders.a', { i });
  await page.evaluate(async () => {
    const { TickerClient } = await import('/tickerd.js');
    const c = new TickerClient({});
    window.probe = { client: c, got: [] };
    c.subscribe('orders.a', (u) => window.probe.got.push([u.seq, !!u.snapshot]), { every: true });
  });
  await h.eventually('the snapshot arrives', () => page.evaluate(() => window.probe.got.length === 1));
  for (let i = 6; i <= 10; i++) await publish(server, 'orders.a', { i });
  await h.eventually('live updates arrive', () => page.evaluate(() => window.probe.got.length === 6));
  const epoch = await page.evaluate(() => window.probe.client.epoch);

  await server.kill();
  await server.start();
  await h.eventually('live again', () => page.evaluate(() => window.probe.client.state === 'live'), 40_000);
  for (let i = 11; i <= 15; i++) await publish(server, 'orders.a', { i });
  await h.eventually('updates after the restart', () => page.evaluate(() => window.probe.got.length >= 11));
  const { got, epoch2 } = await page.evaluate(() => ({ got: window.probe.got, epoch2: window.probe.client.epoch }));
  assert.equal(epoch2, epoch, 'the epoch survives the restart');
  assert.deepEqual(got[0], [5, true]);
  const rest = got.slice(1);
  assert.deepEqual(rest, Array.from({ length: 10 }, (_, k) => [6 + k, false]), JSON.stringify(got));
  assert.deepEqual(page.errors, []);
});

/** Proves: when a resume's ack names `partial` topics (here past `[limits] max_resume`), `/auto`'s client (`backfill: 100`) drops their gapped history and refetches it, so every topic's history is full on first paint. */
test('topics a resume could not deliver whole are backfilled from history', async (t) => {
  const server = await h.Tickerd.start({ config: config('[history]\nsize = 100\n[limits]\nmax_resume = 150\n') });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const topics = Array.from({ length: 12 }, (_, i) => `busy.t${i}`);
  for (let n = 1; n <= 120; n++) {
    const r = await fetch(`${server.origin}/api/publish`, {
      method: 'POST',
      headers: { authorization: 'Bearer pub' },
      body: JSON.stringify(topics.map((topic) => ({ topic, data: { n } }))),
    });
    assert.equal(r.status, 200);
  }
  const page = await h.newPage(browser);
  const received = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
  await page.goto(`${server.origin}/auto`);
  const lengths = () => page.evaluate((ts) => ts.map((t) => window.tickerd.history(t).length), topics);
  await h.eventually('every topic holds its 100 retained updates', async () =>
    (await lengths()).every((n) => n === 100));
  const seqs = await page.evaluate((t) => window.tickerd.history(t).map((u) => u.seq), topics[11]);
  assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => 21 + i), 'in order, no gap');
  const ack = received.map((f) => JSON.parse(f)).find((m) => m.type === 'ack' && m.resume);
  assert.equal(ack?.resume?.partial?.length, 11, `one backlog of 100 fits max_resume = 150: ${JSON.stringify(ack)}`);
  assert.deepEqual(page.errors, []);
});
