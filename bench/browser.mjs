// Browser benchmark (not a test): frames per second and update latency of a
// TOML dashboard with 300 panels at about 3,000 updates/s in headless
// Chromium, beside the automatic page (/auto) showing the same 300 topics.
//
// Run from the repository root, after `cargo build --release --bin tickerd`
// (or set TICKERD_BIN) and `cd tests/browser && npm ci`:
//
//   node bench/browser.mjs [seconds=8]
//
// It prints one line per page: updates/s delivered to the page, fps, longest
// frame, and the latency from an update's publish time (`ts`, same machine
// clock) to the first animation frame after it was applied to the DOM (p50,
// p99), i.e. to when it can be on screen.

import fs from 'node:fs';
import path from 'node:path';
import * as h from '../tests/browser/harness.js';

const SECONDS = Number(process.argv[2] ?? 8);
const N = 300;
const symbols = Array.from({ length: N }, (_, i) => `"S${i}"`).join(', ');
const config = `[server]
listen = "127.0.0.1:0"
[[feed]]
name = "load"
kind = "synthetic"
topic = "load.{symbol}"
symbols = [${symbols}]
interval = "100ms"
`;

/** 300 panels: values, bars, gauges, tiles, a few tables and charts. */
function dashboard() {
  // BENCH_KINDS=value,bar measures a mix of your own (tables and charts are added unless BENCH_PLAIN=1).
  const kinds = process.env.BENCH_KINDS?.split(',') ?? ['value', 'value', 'bar', 'gauge', 'tile', 'value'];
  const plain = process.env.BENCH_PLAIN === '1';
  let out = 'title = "Bench"\ncolumns = 10\n';
  for (let i = 0; i < N; i++) {
    let kind = kinds[i % kinds.length];
    if (i % 50 === 7 && !plain) kind = 'chart';
    if (i % 100 === 13 && !plain) kind = 'table';
    out += `\n[[panel]]\nkind = "${kind}"\n`;
    if (kind === 'table') out += 'pattern = "load.*"\ncolumns = ["symbol", "price", "change_pct"]\nspan = 4\n';
    else out += `topic = "load.S${i}"\nfield = "price"\n`;
    if (kind === 'chart') out += 'window = "1m"\nspan = 3\n';
    if (kind === 'bar' || kind === 'gauge') out += 'min = 50\nmax = 150\nthresholds = [{ above = 110, level = "warn" }]\n';
  }
  return out;
}

async function measure(page) {
  return page.evaluate((ms) => new Promise((resolve) => {
    const client = window.tickerd;
    let updates = 0;
    const offEvery = client.subscribe('load.*', () => { updates++; }, { every: true });
    const lat = [];
    let pending = [];
    // Conflated, like the panels: called in the same flush that renders them.
    const off = client.subscribe('load.*', (u) => { pending.push(u.ts); });
    let frames = 0;
    let maxGap = 0;
    const start = performance.now();
    let last = start;
    const step = (now) => {
      frames++;
      maxGap = Math.max(maxGap, now - last);
      last = now;
      const t = Date.now();
      for (const ts of pending) lat.push(t - ts);
      pending = [];
      if (now - start < ms) requestAnimationFrame(step);
      else {
        off(); offEvery();
        lat.sort((a, b) => a - b);
        const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
        const secs = (now - start) / 1000;
        resolve({ fps: frames / secs, rate: updates / secs, maxGap, p50: q(0.5), p99: q(0.99) });
      }
    };
    requestAnimationFrame(step);
  }), SECONDS * 1000);
}

const dir = h.tempDir();
fs.mkdirSync(path.join(dir, 'dashboards'));
fs.writeFileSync(path.join(dir, 'dashboards', 'bench.toml'), dashboard());
const server = await h.Tickerd.start({ config, dir });
const browser = await h.launch();
try {
  console.log(`# ${N} topics at ${N * 10} updates/s offered; ${SECONDS} s per page; headless Chromium (${h.CHROMIUM}), software rendering`);
  console.log('| page | panels | updates/s delivered | fps | longest frame ms | latency p50 ms | latency p99 ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, url, ready] of (process.env.BENCH_ONLY_BOARD ? [[]].slice(1) : []).concat([
    ['/d/bench', '/d/bench', (p) => p.evaluate(() => document.querySelector('ticker-dashboard')?.shadowRoot?.querySelectorAll('.panel').length === 300)],
    ['/auto', '/auto', async (p) => (await p.locator('ticker-tile').count()) === 300],
  ].slice(0, process.env.BENCH_ONLY_BOARD ? 1 : 2))) {
    const page = await h.newPage(browser, { viewport: { width: 1600, height: 1000 } });
    await page.goto(`${server.origin}${url}`);
    await h.eventually(`${name} ready`, () => ready(page), 60_000);
    await new Promise((r) => setTimeout(r, 2000)); // let history backfill and layout settle
    const m = await measure(page);
    console.log(`| ${name} | 300 | ${Math.round(m.rate)} | ${m.fps.toFixed(1)} | ${Math.round(m.maxGap)} | ${Math.round(m.p50)} | ${Math.round(m.p99)} |`);
    if (page.errors.length) console.log(`#   page errors: ${page.errors.join(' / ')}`);
    await page.close();
  }
} finally {
  await browser.close();
  await server.stop();
  server.cleanup();
}
