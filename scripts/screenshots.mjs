// The photographer of scripts/screenshots.sh: starts tickerd on a copy of the
// shipped config, waits until the charts hold some history (so the pictures
// show pages as a user sees them after a while, not an empty first second),
// then saves one PNG per page, width and theme in docs/screenshots/.

import fs from 'node:fs';
import path from 'node:path';
import * as h from '../tests/browser/harness.js';

const OUT = path.join(h.ROOT, 'docs/screenshots');
const PAGES = [['start', '/'], ['markets', '/d/markets'], ['host', '/d/host'], ['auto', '/auto']];
const WIDTHS = [[1400, 900], [400, 860]];
// Enough history for the 5-minute charts to read as lines: ~80 s of the 500 ms stocks.
const HISTORY = 160;

const dir = h.tempDir();
for (const d of ['feeds', 'dashboards']) fs.cpSync(path.join(h.ROOT, d), path.join(dir, d), { recursive: true });
const server = new h.Tickerd({ config: fs.readFileSync(path.join(h.ROOT, 'config.toml'), 'utf8'), dir });
await server.start();
let browser;
try {
  await h.eventually(`${HISTORY} updates of stocks.AAPL retained`, async () => {
    const r = await fetch(`${server.origin}/api/topics/stocks.AAPL/history?limit=${HISTORY}`);
    return r.ok && (await r.json()).length >= HISTORY;
  }, 120_000);
  browser = await h.launch();
  fs.mkdirSync(OUT, { recursive: true });
  for (const [name, url] of PAGES) {
    for (const [width, height] of WIDTHS) {
      for (const scheme of ['light', 'dark']) {
        const page = await h.newPage(browser, { viewport: { width, height }, colorScheme: scheme });
        // Reduced motion: no tick flashes and a still tape, so a picture shows
        // the colours a value keeps, not the instant it was taken.
        await page.emulateMedia({ reducedMotion: 'reduce' });
        await page.goto(`${server.origin}${url}`);
        // Drawn: the connection is live and, on a dashboard, every chart has its points.
        await h.eventually(`${url} drawn`, () => page.evaluate(() => {
          if (document.querySelector('#conn')?.dataset.state !== 'live' && document.querySelector('#conn')) return false;
          const board = document.querySelector('ticker-dashboard')?.shadowRoot;
          if (!board) return true;
          const charts = [...board.querySelectorAll('.panel[data-kind="chart"]')];
          return board.querySelectorAll('.panel').length > 0 && charts.every((c) => Number(c.dataset.points) > 10);
        }));
        const file = path.join(OUT, `${name}-${width}-${scheme}.png`);
        await page.screenshot({ path: file });
        console.log(`${path.relative(h.ROOT, file)} (${Math.round(fs.statSync(file).size / 1024)} KiB)`);
        await page.close();
      }
    }
  }
} finally {
  await browser?.close();
  await server.stop();
  server.cleanup();
}
