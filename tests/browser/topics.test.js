// tickerd.js's topic matching (`matches`, `covers`) against the cases the Rust
// tests check too (tests/data/topic_cases.json), run in Chromium on the module
// the server serves.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.js';

const cases = JSON.parse(fs.readFileSync(path.join(h.ROOT, 'tests/data/topic_cases.json'), 'utf8'));

let browser;
before(async () => { browser = await h.launch(); });
after(async () => { await browser?.close(); });

/** Proves: the client library matches and covers topics exactly as the server does. */
test('topic patterns match in the client as on the server', async (t) => {
  const server = await h.Tickerd.start({ config: '[server]\nlisten = "127.0.0.1:0"\n' });
  t.after(async () => { await server.stop(); server.cleanup(); });
  const page = await h.newPage(browser);
  await page.goto(`${server.origin}/`);
  const got = await page.evaluate(async ({ origin, cases }) => {
    const { matches, covers } = await import(`${origin}/tickerd.js`);
    return {
      matches: cases.matches.map((c) => matches(c.pattern, c.topic)),
      covers: cases.covers.map((c) => covers(c.by, c.pattern)),
    };
  }, { origin: server.origin, cases });
  cases.matches.forEach((c, i) => assert.equal(got.matches[i], c.match, JSON.stringify(c)));
  cases.covers.forEach((c, i) => assert.equal(got.covers[i], c.covers, JSON.stringify(c)));
  assert.deepEqual(page.errors, []);
});
