// TLS in the binary (docs/deploy.md, "TLS in the binary") in a real headless
// Chromium that trusts a test CA made with openssl: the page over https:// and
// tickerd.js over wss://, with no certificate error. A real tickerd running
// the page's own [server.tls] config (only the listen address and the file
// paths changed).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.js';

let browser;
let pki;
let home;

/** Runs `program args` in `cwd`; its output is returned, a failure throws with it. */
function run(program, args, cwd) {
  return execFileSync(program, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A test CA and a certificate for 127.0.0.1 it signed, in a temp dir. */
function makePki() {
  const dir = h.tempDir();
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=tickerd browser test CA'], dir);
  run('openssl', ['req', ...ec, '-keyout', 'key.pem', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('openssl', ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-set_serial', '0x6006', '-days', '2', '-extfile', 'san.ext', '-out', 'cert.pem'], dir);
  return dir;
}

/** A HOME whose NSS database (what Chromium on Linux trusts besides its roots) trusts `ca`. */
function homeTrusting(ca) {
  const dir = h.tempDir();
  const db = path.join(dir, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  run('certutil', ['-d', `sql:${db}`, '-N', '--empty-password'], dir);
  run('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'tickerd-test-ca', '-i', ca], dir);
  return dir;
}

/** docs/deploy.md's [server.tls] block, with the pair of `dir`. */
function docConfig(dir) {
  const doc = fs.readFileSync(path.join(h.ROOT, 'docs/deploy.md'), 'utf8');
  const blocks = [...doc.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.filter((b) => b.includes('[server.tls]'));
  assert.equal(block.length, 1, 'one [server.tls] block in docs/deploy.md');
  const subs = [
    ['0.0.0.0:443', '127.0.0.1:0'],
    ['/etc/letsencrypt/live/ticker.example.com/fullchain.pem', path.join(dir, 'cert.pem')],
    ['/etc/letsencrypt/live/ticker.example.com/privkey.pem', path.join(dir, 'key.pem')],
  ];
  let text = block[0];
  for (const [from, to] of subs) {
    assert.ok(text.includes(from), `${from} in the doc's block`);
    text = text.replace(from, to);
  }
  return text;
}

before(async () => {
  pki = makePki();
  home = homeTrusting(path.join(pki, 'ca.pem'));
  browser = await h.launch({ env: { ...process.env, HOME: home } });
});
after(async () => {
  await browser?.close();
  for (const d of [pki, home]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** Proves: Chromium trusting the CA loads the page over https:// and tickerd.js goes live over wss://. */
test('a page over https and tickerd.js over wss, trusting the test CA', async (t) => {
  const server = await h.Tickerd.start({ config: docConfig(pki) });
  t.after(async () => { await server.stop(); server.cleanup(); });
  assert.match(server.origin, /^https:\/\/127\.0\.0\.1:\d+$/);
  const page = await h.newPage(browser);
  const resp = await page.goto(`${server.origin}/auto`);
  assert.equal(resp.status(), 200);
  const got = await page.evaluate(async (origin) => {
    const { TickerClient } = await import(`${origin}/tickerd.js`);
    // WebSocket only: a failed wss:// must not pass through the SSE fallback.
    const c = new TickerClient({ server: origin, transport: 'websocket' });
    return new Promise((resolve) => {
      c.subscribe('$sys.config', (u) => resolve({ url: c.wsUrl, ok: u.data.ok }));
    });
  }, server.origin);
  assert.equal(got.ok, true, JSON.stringify(got));
  assert.match(got.url, /^wss:\/\/127\.0\.0\.1:\d+\/ws/);
  assert.deepEqual(page.errors, []);
});
